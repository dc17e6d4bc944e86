// The wire format: the committed generated code matches proto/raft.proto, and every message survives a round trip.

import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { describe, expect, it } from 'vitest';
import { EntryType as CoreEntryType } from '../raft/types.js';
import type { Message } from './transport.js';
import { fromEnvelope, toEnvelope } from './grpc.js';
import {
  AppendEntries,
  AppendEntriesResponse,
  Batch,
  Entry,
  EntryType,
  Envelope,
  RequestVote,
  RequestVoteResponse,
  SnapshotAck,
  SnapshotChunk,
  SnapshotHeader,
  SnapshotTrailer,
  StreamClosed,
  TimeoutNow,
} from './gen/raft.js';
import { encodeControlChunk, encodeDataChunk } from './snapshot.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const genDir = 'src/transport/gen';

describe('generated code', () => {
  it('is what `npm run proto` generates from proto/raft.proto (regenerate and commit if this fails)', async () => {
    const out = await mkdtemp(join(tmpdir(), 'rafting-proto-'));
    try {
      await promisify(execFile)(join(root, 'node_modules/.bin/buf'), ['generate', '--output', out], {
        cwd: root,
      });
      const fresh = join(out, genDir);
      const committed = join(root, genDir);
      const names = (await readdir(fresh)).sort();
      expect((await readdir(committed)).sort()).toEqual(names);
      expect(names).toContain('raft.ts');
      for (const name of names) {
        const expected = await readFile(join(fresh, name), 'utf8');
        const actual = await readFile(join(committed, name), 'utf8');
        expect(actual, `${genDir}/${name} is stale: run npm run proto`).toBe(expected);
      }
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });

  it('uses the same entry type numbers as the core', () => {
    // Compile-time: the wire enum and the core's are the same literal types.
    const wire: [typeof CoreEntryType.Normal, typeof CoreEntryType.Noop] = [EntryType.NORMAL, EntryType.NOOP];
    const core: [EntryType.NORMAL, EntryType.NOOP] = [CoreEntryType.Normal, CoreEntryType.Noop];
    expect(wire).toEqual(core);
  });
});

function roundTrip<T>(
  codec: { encode(m: T, w?: BinaryWriter): BinaryWriter; decode(b: Uint8Array): T },
  m: T,
): T {
  return codec.decode(codec.encode(m).finish());
}

const big = Number.MAX_SAFE_INTEGER;

describe('encode/decode round trip', () => {
  it('Entry', () => {
    const normal: Entry = { index: 7, term: 3, type: EntryType.NORMAL, data: new Uint8Array([0, 1, 2, 255]) };
    const noop: Entry = { index: big, term: big, type: EntryType.NOOP, data: new Uint8Array(0) };
    expect(roundTrip(Entry, normal)).toEqual(normal);
    expect(roundTrip(Entry, noop)).toEqual(noop);
  });

  it('RequestVote and RequestVoteResponse', () => {
    const rv: RequestVote = { lastLogIndex: 12, lastLogTerm: big, preVote: false, transfer: false };
    expect(roundTrip(RequestVote, rv)).toEqual(rv);
    expect(
      roundTrip(RequestVote, { lastLogIndex: 0, lastLogTerm: 0, preVote: false, transfer: false }),
    ).toEqual({
      lastLogIndex: 0,
      lastLogTerm: 0,
      preVote: false,
      transfer: false,
    });
    const pre: RequestVote = { lastLogIndex: 3, lastLogTerm: 2, preVote: true, transfer: true };
    expect(roundTrip(RequestVote, pre)).toEqual(pre);
    expect(roundTrip(RequestVoteResponse, { voteGranted: true, preVote: false })).toEqual({
      voteGranted: true,
      preVote: false,
    });
    expect(roundTrip(RequestVoteResponse, { voteGranted: false, preVote: false })).toEqual({
      voteGranted: false,
      preVote: false,
    });
  });

  it('AppendEntries and AppendEntriesResponse', () => {
    const ae: AppendEntries = {
      prevLogIndex: 10,
      prevLogTerm: 2,
      entries: [
        { index: 11, term: 2, type: EntryType.NORMAL, data: new TextEncoder().encode('{"op":"put"}') },
        { index: 12, term: 3, type: EntryType.NOOP, data: new Uint8Array(0) },
        { index: 13, term: 3, type: EntryType.NORMAL, data: new Uint8Array(10_000).fill(7) },
      ],
      leaderCommit: 9,
      context: 0,
    };
    expect(roundTrip(AppendEntries, ae)).toEqual(ae);
    const heartbeat: AppendEntries = {
      prevLogIndex: 0,
      prevLogTerm: 0,
      entries: [],
      leaderCommit: 0,
      context: 0,
    };
    expect(roundTrip(AppendEntries, heartbeat)).toEqual(heartbeat);
    const ok: AppendEntriesResponse = {
      success: true,
      matchIndex: 13,
      rejectedIndex: 0,
      conflictTerm: 0,
      conflictIndex: 0,
      context: 0,
    };
    const rejected: AppendEntriesResponse = {
      success: false,
      matchIndex: 0,
      rejectedIndex: 10,
      conflictTerm: 1,
      conflictIndex: 4,
      context: 0,
    };
    expect(roundTrip(AppendEntriesResponse, ok)).toEqual(ok);
    expect(roundTrip(AppendEntriesResponse, rejected)).toEqual(rejected);
  });

  it('TimeoutNow and StreamClosed (empty)', () => {
    expect(TimeoutNow.encode({}).finish()).toHaveLength(0);
    expect(roundTrip(TimeoutNow, {})).toEqual({});
    expect(roundTrip(StreamClosed, {})).toEqual({});
  });

  it('Envelope with each body, and Batch', () => {
    const envelopes: Envelope[] = [
      {
        from: 'a',
        to: 'b',
        term: 5,
        body: {
          $case: 'requestVote',
          value: { lastLogIndex: 3, lastLogTerm: 2, preVote: false, transfer: false },
        },
      },
      {
        from: 'b',
        to: 'a',
        term: 5,
        body: { $case: 'requestVoteResponse', value: { voteGranted: true, preVote: false } },
      },
      {
        from: 'a',
        to: 'b',
        term: 5,
        body: {
          $case: 'appendEntries',
          value: {
            prevLogIndex: 3,
            prevLogTerm: 2,
            entries: [{ index: 4, term: 5, type: EntryType.NOOP, data: new Uint8Array(0) }],
            leaderCommit: 3,
            context: 0,
          },
        },
      },
      {
        from: 'b',
        to: 'a',
        term: 5,
        body: {
          $case: 'appendEntriesResponse',
          value: {
            success: true,
            matchIndex: 4,
            rejectedIndex: 0,
            conflictTerm: 0,
            conflictIndex: 0,
            context: 0,
          },
        },
      },
      { from: 'a', to: 'b', term: 6, body: { $case: 'timeoutNow', value: {} } },
      { from: 'a', to: 'b', term: 6, body: undefined },
    ];
    for (const envelope of envelopes) expect(roundTrip(Envelope, envelope)).toEqual(envelope);
    const batch: Batch = { clusterId: 'c1', from: 'a', messages: envelopes };
    expect(roundTrip(Batch, batch)).toEqual(batch);
    expect(roundTrip(Batch, { clusterId: '', from: '', messages: [] })).toEqual({
      clusterId: '',
      from: '',
      messages: [],
    });
  });

  it('pins the field numbers (golden bytes)', () => {
    // field 1 varint 1, field 2 varint 2
    expect([
      ...RequestVote.encode({ lastLogIndex: 1, lastLogTerm: 2, preVote: false, transfer: false }).finish(),
    ]).toEqual([0x08, 1, 0x10, 2]);
    // Envelope: from=1 "a", to=2 "b", term=3 varint 4, request_vote_response=5 { vote_granted=1 true }
    const envelope: Envelope = {
      from: 'a',
      to: 'b',
      term: 4,
      body: { $case: 'requestVoteResponse', value: { voteGranted: true, preVote: false } },
    };
    expect([...Envelope.encode(envelope).finish()]).toEqual([
      0x0a, 1, 0x61, 0x12, 1, 0x62, 0x18, 4, 0x2a, 2, 0x08, 1,
    ]);
  });

  it('skips unknown fields: an envelope with a body this node does not know (reserved field 9) has no body', () => {
    const w = new BinaryWriter();
    w.uint32(0x0a).string('a').uint32(0x12).string('b').uint32(0x18).uint64(9);
    w.uint32((9 << 3) | 2).bytes(new Uint8Array([0x08, 0x01]));
    const decoded = Envelope.decode(w.finish());
    expect(decoded).toEqual({ from: 'a', to: 'b', term: 9, body: undefined });
    expect(fromEnvelope(decoded)).toMatch(/no body/);
  });

  it('snapshot messages: SnapshotHeader, SnapshotTrailer, SnapshotChunk (each part) and SnapshotAck', () => {
    const header: SnapshotHeader = {
      clusterId: 'c1',
      from: 'n1',
      to: 'n2',
      term: 9,
      snapshotIndex: big,
      snapshotTerm: 7,
      size: 64 * 1024 ** 3,
      config: new Uint8Array(),
    };
    expect(roundTrip(SnapshotHeader, header)).toEqual(header);
    for (const crc32 of [0, 1, 0x7fffffff, 0x80000000, 0xffffffff]) {
      expect(roundTrip(SnapshotTrailer, { crc32 })).toEqual({ crc32 });
    }
    const chunks: SnapshotChunk[] = [
      { part: { $case: 'header', value: header } },
      { part: { $case: 'data', value: new Uint8Array([0, 1, 2, 255]) } },
      { part: { $case: 'data', value: new Uint8Array(300_000).fill(3) } },
      { part: { $case: 'data', value: new Uint8Array(0) } },
      { part: { $case: 'trailer', value: { crc32: 0xdeadbeef } } },
      { part: undefined },
    ];
    for (const chunk of chunks) expect(roundTrip(SnapshotChunk, chunk)).toEqual(chunk);
    expect(roundTrip(SnapshotAck, { accepted: true, error: '' })).toEqual({ accepted: true, error: '' });
    const refused: SnapshotAck = { accepted: false, error: 'snapshot from n1: checksum mismatch' };
    expect(roundTrip(SnapshotAck, refused)).toEqual(refused);
  });

  it('encodes snapshot chunks as the generated code does, without the generated code’s copies', () => {
    for (const length of [0, 1, 127, 128, 16_383, 16_384, 1024 * 1024]) {
      const data = new Uint8Array(length).map((_, i) => i * 7);
      const expected = SnapshotChunk.encode({ part: { $case: 'data', value: data } }).finish();
      const encoded = encodeDataChunk(data);
      expect(new Uint8Array(encoded)).toEqual(expected);
      const view = new Uint8Array(encoded.buffer, encoded.byteOffset, encoded.byteLength);
      expect(SnapshotChunk.decode(view).part).toEqual({ $case: 'data', value: data });
    }
    const trailer = { $case: 'trailer' as const, value: { crc32: 42 } };
    expect(new Uint8Array(encodeControlChunk(trailer))).toEqual(
      SnapshotChunk.encode({ part: trailer }).finish(),
    );
  });

  it('pins the snapshot field numbers (golden bytes)', () => {
    // SnapshotChunk: header=1 { cluster_id=1 "c", from=2 "a", to=3 "b", term=4 2, snapshot_index=5 3,
    // snapshot_term=6 1, size=7 5 }
    const header: SnapshotHeader = {
      clusterId: 'c',
      from: 'a',
      to: 'b',
      term: 2,
      snapshotIndex: 3,
      snapshotTerm: 1,
      size: 5,
      config: new Uint8Array(),
    };
    expect([...SnapshotChunk.encode({ part: { $case: 'header', value: header } }).finish()]).toEqual([
      0x0a, 17, 0x0a, 1, 0x63, 0x12, 1, 0x61, 0x1a, 1, 0x62, 0x20, 2, 0x28, 3, 0x30, 1, 0x38, 5,
    ]);
    // data=2 [9]; trailer=3 { crc32=1 0xffffffff }
    expect([...encodeDataChunk(new Uint8Array([9]))]).toEqual([0x12, 1, 9]);
    expect([...encodeControlChunk({ $case: 'trailer', value: { crc32: 0xffffffff } })]).toEqual([
      0x1a, 6, 0x08, 0xff, 0xff, 0xff, 0xff, 0x0f,
    ]);
    // SnapshotAck: accepted=1 true, error=2 "x"
    expect([...SnapshotAck.encode({ accepted: true, error: 'x' }).finish()]).toEqual([
      0x08, 1, 0x12, 1, 0x78,
    ]);
  });

  it('refuses uint64 values a JS number cannot hold', () => {
    const bytes = new BinaryWriter()
      .uint32(8)
      .uint64(2n ** 53n)
      .finish();
    expect(() => RequestVote.decode(bytes)).toThrow(/MAX_SAFE_INTEGER/);
  });
});

describe('core messages <-> envelopes', () => {
  const data = new Uint8Array([1, 2, 3]);
  const messages: Message[] = [
    {
      type: 'RequestVote',
      from: 'n1',
      to: 'n2',
      term: 3,
      lastLogIndex: 10,
      lastLogTerm: 2,
      preVote: false,
      transfer: false,
    },
    { type: 'RequestVoteResponse', from: 'n2', to: 'n1', term: 3, voteGranted: true, preVote: false },
    { type: 'RequestVoteResponse', from: 'n2', to: 'n1', term: 4, voteGranted: false, preVote: false },
    {
      type: 'AppendEntries',
      from: 'n1',
      to: 'n2',
      term: 3,
      prevLogIndex: 10,
      prevLogTerm: 2,
      entries: [
        { index: 11, term: 3, type: CoreEntryType.Noop, data: new Uint8Array(0) },
        { index: 12, term: 3, type: CoreEntryType.Normal, data },
      ],
      leaderCommit: 10,
      context: 0,
    },
    {
      type: 'AppendEntries',
      from: 'n1',
      to: 'n2',
      term: 3,
      prevLogIndex: 12,
      prevLogTerm: 3,
      entries: [],
      leaderCommit: 12,
      context: 0,
    },
    {
      type: 'AppendEntriesResponse',
      from: 'n2',
      to: 'n1',
      term: 3,
      success: true,
      matchIndex: 12,
      rejectedIndex: 0,
      conflictTerm: 0,
      conflictIndex: 0,
      context: 0,
    },
    {
      type: 'AppendEntriesResponse',
      from: 'n2',
      to: 'n1',
      term: big,
      success: false,
      matchIndex: 0,
      rejectedIndex: big,
      conflictTerm: big,
      conflictIndex: big,
      context: 0,
    },
    // Forwarded client writes (thesis §6.2), which travel beside the Raft messages.
    {
      type: 'Forward',
      from: 'n2',
      to: 'n1',
      term: 3,
      requests: [
        { id: 1, data },
        { id: big, data: new Uint8Array(0) },
      ],
    },
    {
      type: 'ForwardResponse',
      from: 'n1',
      to: 'n2',
      term: 3,
      results: [
        { id: 1, index: 13, term: 3 },
        { id: 2, error: 'busy' },
        { id: 3, error: 'transferring' },
      ],
      leader: 'n1',
    },
    {
      type: 'ForwardResponse',
      from: 'n3',
      to: 'n2',
      term: 4,
      results: [{ id: 1, error: 'not_leader' }],
      leader: null,
    },
  ];

  it('refuses a forwarded result with an error this node does not know', () => {
    const envelope = Envelope.decode(
      Envelope.encode({
        from: 'n1',
        to: 'n2',
        term: 1,
        body: {
          $case: 'forwardResponse',
          value: { leader: '', results: [{ id: 1, index: 0, term: 0, error: 'boom' }] },
        },
      }).finish(),
    );
    expect(fromEnvelope(envelope)).toMatch(/unknown error "boom"/);
  });

  it('round-trips every message type exactly', () => {
    for (const message of messages) {
      const envelope = toEnvelope(message);
      expect(envelope).toBeDefined();
      const decoded = Envelope.decode(Envelope.encode(envelope!).finish());
      expect(fromEnvelope(decoded)).toEqual(message);
    }
  });

  it('encodes only the wire fields (the core message is used as the body without copying)', () => {
    const m = messages[0]!;
    const envelope = toEnvelope(m)!;
    expect(envelope.body?.value).toBe(m);
    // The `type`, `from`, `to`, `term` of the core message appear once, in the envelope, not in the body.
    expect(Envelope.encode(envelope).finish().length).toBe(
      Envelope.encode({
        ...envelope,
        body: {
          $case: 'requestVote',
          value: { lastLogIndex: 10, lastLogTerm: 2, preVote: false, transfer: false },
        },
      }).finish().length,
    );
  });

  it('rejects entries of an unknown type and bodies the core does not have', () => {
    const w = new BinaryWriter();
    Entry.encode({ index: 1, term: 1, type: EntryType.NORMAL, data: new Uint8Array(0) }, w);
    w.uint32(24).int32(7); // type = 7, the later value wins
    const entry = Entry.decode(w.finish());
    const envelope: Envelope = {
      from: 'a',
      to: 'b',
      term: 1,
      body: {
        $case: 'appendEntries',
        value: { prevLogIndex: 0, prevLogTerm: 0, entries: [entry], leaderCommit: 0, context: 0 },
      },
    };
    expect(fromEnvelope(envelope)).toMatch(/unknown type 7/);
    expect(fromEnvelope({ from: 'a', to: 'b', term: 1, body: { $case: 'timeoutNow', value: {} } })).toEqual({
      type: 'TimeoutNow',
      from: 'a',
      to: 'b',
      term: 1,
    });
  });
});
