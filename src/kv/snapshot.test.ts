import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCommand, type Command } from './command.js';
import { SnapshotFormatError } from './snapshot.js';
import { KvStore } from './store.js';

function storeWith(pairs: [string, string][]): KvStore {
  const kv = new KvStore();
  pairs.forEach(([key, value], i) => kv.apply(i + 1, encodeCommand({ op: 'set', key, value })));
  return kv;
}

function run(kv: KvStore, command: Command) {
  return kv.apply(kv.lastApplied + 1, encodeCommand(command));
}

function bytesOf(kv: KvStore, chunkBytes?: number): Buffer {
  return Buffer.concat([...kv.snapshotChunks(chunkBytes)]);
}

/** Cuts a byte stream at arbitrary points, as a network or a file read would. */
function* rechunk(chunks: Iterable<Uint8Array>, sizes: number[]): Generator<Uint8Array> {
  const all = Buffer.concat([...chunks]);
  let at = 0;
  for (let i = 0; at < all.length; i++) {
    const n = Math.max(1, sizes[i % sizes.length] ?? 1);
    yield all.subarray(at, at + n);
    at += n;
  }
}

// Hand-built snapshots, written from the format's description in snapshot.ts rather than by its encoder.
const u8 = (n: number) => Buffer.from([n]);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const f64 = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(n);
  return b;
};
const str = (s: string | Buffer) => {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  return Buffer.concat([u32(b.length), b]);
};
const header = (lastApplied: number, { magic = 'RKV2', flags = 0 } = {}) =>
  Buffer.concat([Buffer.from(magic, 'latin1'), u32(flags), f64(lastApplied)]);
const keyRecord = (key: string | Buffer, value: string | Buffer, index: number) =>
  Buffer.concat([str(key), str(value), f64(index)]);
const tableRecord = (idem: string | Buffer, index: number, kind: number, key: string, ...rest: Buffer[]) =>
  Buffer.concat([str(idem), f64(index), u8(kind), str(key), ...rest]);
const endOfKeys = u32(0xfffffffe);
const end = u32(0xffffffff);
const v2 = (lastApplied: number, keys: Buffer[], table: Buffer[]) =>
  Buffer.concat([header(lastApplied), ...keys, endOfKeys, ...table, end]);

/** Restoring `bytes` fails with a SnapshotFormatError matching `message`, and leaves the store as it was. */
async function refused(bytes: Buffer, message: RegExp): Promise<void> {
  const kv = storeWith([['old', 'state']]);
  run(kv, { op: 'set', key: 'x', value: '1', idempotencyKey: 'old' });
  const before = bytesOf(kv);
  const error: unknown = await kv.restore([bytes]).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SnapshotFormatError);
  expect((error as Error).message).toMatch(message);
  expect(bytesOf(kv)).toEqual(before);
}

describe('KV snapshots (§7)', () => {
  it('restore(snapshot) gives back the same state, however the bytes are cut', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' })), { maxLength: 40 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 5 }),
        async (pairs, sizes) => {
          const source = storeWith(pairs);
          const copy = new KvStore();
          await copy.restore(rechunk(source.snapshotChunks(64), sizes));
          expect(copy.entries()).toEqual(source.entries());
          expect(copy.lastApplied).toBe(source.lastApplied);
        },
      ),
    );
  });

  it('encodes the same bytes however large the chunks, for any Unicode keys and values', () => {
    // A chunk of 8 bytes never has room for a record, so every record goes through keyRecord (measured, then
    // copied); in a chunk of 1 MiB every one is written in place, lengths filled in after. Both must agree.
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary', maxLength: 300 })), {
          maxLength: 40,
        }),
        (pairs) => {
          const kv = storeWith(pairs);
          expect(Buffer.concat([...kv.snapshotChunks(1 << 20)])).toEqual(
            Buffer.concat([...kv.snapshotChunks(8)]),
          );
        },
      ),
    );
  });

  it('cuts a large state into chunks of exactly chunkBytes, the last one shorter', () => {
    const kv = storeWith(
      Array.from({ length: 5000 }, (_, i) => [`key-${i}`, 'v'.repeat(200)] as [string, string]),
    );
    run(kv, { op: 'set', key: 'big', value: 'w'.repeat(200_000), idempotencyKey: 'big' });
    const chunks = [...kv.snapshotChunks(64 * 1024)];
    expect(chunks.length).toBeGreaterThan(10);
    for (const chunk of chunks.slice(0, -1)) expect(chunk.length).toBe(64 * 1024);
    expect(chunks.at(-1)?.length).toBeGreaterThan(0);
    expect(chunks.at(-1)?.length).toBeLessThanOrEqual(64 * 1024);
    expect(() => [...kv.snapshotChunks(0)]).toThrow(RangeError);
  });

  it('writes the documented layout: header, keys, end of keys, idempotency table, end marker', () => {
    const kv = new KvStore();
    run(kv, { op: 'set', key: 'a', value: '1', idempotencyKey: 'i' });
    run(kv, { op: 'delete', key: 'b', condition: { prevValue: 'x' }, idempotencyKey: 'j' });
    kv.skip(3);
    expect(bytesOf(kv)).toEqual(
      v2(3, [keyRecord('a', '1', 1)], [tableRecord('i', 1, 1, 'a', str('1')), tableRecord('j', 2, 6, 'b')]),
    );
  });

  it('after a restore, entries apply from the snapshot index on', async () => {
    const kv = new KvStore();
    await kv.restore(
      storeWith([
        ['a', '1'],
        ['b', '2'],
      ]).snapshotChunks(),
    );
    expect(() => kv.apply(2, encodeCommand({ op: 'get', key: 'a' }))).toThrow(/after 2/);
    kv.apply(3, encodeCommand({ op: 'set', key: 'a', value: '3' }));
    expect(kv.get('a')).toEqual({ value: '3', index: 3 });
  });
});

describe('the idempotency table in snapshots', () => {
  /** One remembered result of every kind the format has. */
  function storeWithEveryKind(): { kv: KvStore; requests: Command[] } {
    const kv = new KvStore();
    run(kv, { op: 'set', key: 'a', value: 'é', idempotencyKey: 'set' });
    const requests: Command[] = [
      { op: 'set', key: 'a', value: '2', idempotencyKey: 'set' },
      { op: 'delete', key: 'none', idempotencyKey: 'delete-absent' },
      { op: 'delete', key: 'a', condition: { prevValue: 'é' }, idempotencyKey: 'delete-deleted' },
      { op: 'set', key: 'a', value: '3', condition: { prevIndex: 1 }, idempotencyKey: 'set-failed-absent' },
      { op: 'set', key: 'b', value: '1' },
      { op: 'set', key: 'b', value: '2', condition: { prevIndex: 0 }, idempotencyKey: 'set-failed-present' },
      { op: 'delete', key: 'a', condition: { prevIndex: 9 }, idempotencyKey: 'delete-failed-absent' },
      { op: 'delete', key: 'b', condition: { prevValue: '0' }, idempotencyKey: 'delete-failed-present' },
    ];
    for (const r of requests.slice(1)) run(kv, r);
    return { kv, requests: requests.filter((r) => r.op !== 'get' && r.idempotencyKey !== undefined) };
  }

  it('a replica restored from a snapshot still answers retries from the table, for every kind of result', async () => {
    const { kv: leader, requests } = storeWithEveryKind();
    expect(leader.rememberedResults).toBe(7);
    const follower = new KvStore();
    await follower.restore(rechunk(leader.snapshotChunks(), [3, 1, 7]));
    expect(follower.rememberedResults).toBe(7);
    for (const r of requests) {
      const answer = run(follower, r);
      expect(answer).toMatchObject({ replayed: true });
      expect(answer).toEqual(run(leader, r));
    }
    expect(bytesOf(follower)).toEqual(bytesOf(leader));
  });

  it('keeps counting the window from the remembered index after a restore', async () => {
    const leader = new KvStore({ idempotencyWindowEntries: 3 });
    run(leader, { op: 'set', key: 'a', value: '1', idempotencyKey: 'k' });
    leader.skip(2);
    const follower = new KvStore({ idempotencyWindowEntries: 3 });
    await follower.restore(leader.snapshotChunks());
    expect(run(follower, { op: 'set', key: 'a', value: '2', idempotencyKey: 'k' })).toMatchObject({
      replayed: true,
    });
    follower.skip(4);
    expect(run(follower, { op: 'set', key: 'a', value: '2', idempotencyKey: 'k' })).toMatchObject({
      ok: true,
      index: 5,
    });
  });

  it('holds a restored table to the restoring store’s limits', async () => {
    const leader = new KvStore();
    for (const k of ['k1', 'k2', 'k3']) run(leader, { op: 'set', key: 'a', value: k, idempotencyKey: k });
    leader.skip(4);
    const small = new KvStore({ maxIdempotencyKeys: 2 });
    await small.restore(leader.snapshotChunks());
    expect(small.rememberedResults).toBe(2);
    const short = new KvStore({ idempotencyWindowEntries: 3 }); // index 1 expired at 4; 2 and 3 remain
    await short.restore(leader.snapshotChunks());
    expect(short.rememberedResults).toBe(2);
  });

  it('restores a version 1 snapshot (written before the table existed) with an empty table', async () => {
    const v1 = Buffer.concat([
      header(7, { magic: 'RKV1' }),
      keyRecord('a', '1', 3),
      keyRecord('b', '', 7),
      end,
    ]);
    const kv = new KvStore();
    await kv.restore(rechunk([v1], [5]));
    expect(kv.entries()).toEqual([
      ['a', { value: '1', index: 3 }],
      ['b', { value: '', index: 7 }],
    ]);
    expect(kv.lastApplied).toBe(7);
    expect(kv.rememberedResults).toBe(0);
    expect(bytesOf(kv).subarray(0, 4).toString('latin1')).toBe('RKV2');
  });
});

describe('snapshot decoding is strict', () => {
  it('refuses a snapshot cut short anywhere, and keeps the old state', async () => {
    const { kv } = (() => {
      const k = storeWith([['a', '1']]);
      run(k, { op: 'set', key: 'b', value: '2', condition: { prevIndex: 0 }, idempotencyKey: 'x' });
      run(k, { op: 'delete', key: 'a', condition: { prevValue: '9' }, idempotencyKey: 'y' });
      return { kv: k };
    })();
    const bytes = bytesOf(kv);
    for (let n = 0; n < bytes.length; n++) await refused(bytes.subarray(0, n), /truncated/);
  });

  it('refuses what is not a snapshot, or has data after the end', async () => {
    await refused(Buffer.from('nope, not a snapshot'), /magic/);
    await refused(Buffer.concat([v2(0, [], []), u8(0)]), /after the end marker/);
    const kv = new KvStore();
    await expect(kv.restore([v2(0, [], []), Buffer.alloc(0), u8(1)])).rejects.toThrow(/after the end marker/);
  });

  it('refuses a bad header', async () => {
    await refused(Buffer.concat([header(0, { flags: 1 }), endOfKeys, end]), /flags 1/);
    for (const lastApplied of [NaN, -1, 1.5, 2 ** 53]) {
      await refused(v2(lastApplied, [], []), /lastApplied/);
    }
  });

  it('refuses bad key records', async () => {
    await refused(v2(2, [keyRecord('a', '1', 3)], []), /key index 3/);
    await refused(v2(2, [keyRecord('a', '1', 0)], []), /key index 0/);
    await refused(v2(2, [keyRecord('a', '1', 1), keyRecord('a', '2', 2)], []), /appears twice/);
    await refused(v2(2, [keyRecord(Buffer.from([0xff]), '1', 1)], []), /key is not valid UTF-8/);
    await refused(v2(2, [keyRecord('a', Buffer.from([0xe2, 0x82]), 1)], []), /value is not valid UTF-8/);
  });

  it('refuses bad table records', async () => {
    const ok = (idem: string, index: number) => tableRecord(idem, index, 2, 'k');
    await refused(v2(5, [], [tableRecord('', 1, 2, 'k')]), /idempotency key of 0 bytes/);
    await refused(v2(5, [], [tableRecord('x'.repeat(129), 1, 2, 'k')]), /idempotency key of 129 bytes/);
    await refused(
      v2(5, [], [tableRecord(Buffer.from([0xc0, 0x80]), 1, 2, 'k')]),
      /idempotency key is not valid/,
    );
    await refused(v2(5, [], [ok('a', 6)]), /remembered index 6/);
    await refused(v2(5, [], [ok('a', 2), ok('b', 2)]), /remembered index 2 is not an index in 3..5/);
    await refused(v2(5, [], [ok('a', 3), ok('b', 1)]), /remembered index 1/);
    await refused(v2(5, [], [ok('a', 1), ok('a', 2)]), /appears twice/);
    await refused(v2(5, [], [tableRecord('a', 1, 0, 'k')]), /unknown result kind 0/);
    await refused(v2(5, [], [tableRecord('a', 1, 8, 'k')]), /unknown result kind 8/);
    await refused(v2(5, [], [tableRecord('a', 1, 1, 'k', str(Buffer.from([0xff])))]), /value is not valid/);
    await refused(v2(5, [], [tableRecord('a', 3, 5, 'k', str('v'), f64(3))]), /current index 3/);
    await refused(v2(5, [], [tableRecord('a', 3, 7, 'k', str('v'), f64(0))]), /current index 0/);
    // The same records, well formed, are accepted.
    const kv = new KvStore();
    await kv.restore([v2(5, [], [ok('a', 1), tableRecord('b', 3, 7, 'k', str('v'), f64(2))])]);
    expect(kv.rememberedResults).toBe(2);
  });

  it('throws nothing but SnapshotFormatError for damaged snapshots, and changes nothing then', async () => {
    const { kv: source } = (() => {
      const k = storeWith([
        ['a', '1'],
        ['b', 'é'],
      ]);
      run(k, { op: 'set', key: 'c', value: '3', idempotencyKey: 'x' });
      run(k, { op: 'set', key: 'c', value: '4', condition: { prevValue: '1' }, idempotencyKey: 'y' });
      run(k, { op: 'delete', key: 'a', idempotencyKey: 'z' });
      return { kv: k };
    })();
    const original = bytesOf(source);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
        async (changes) => {
          const damaged = Buffer.from(original);
          for (const [at, byte] of changes) damaged[at % damaged.length] = byte;
          const kv = storeWith([['old', 'state']]);
          const before = bytesOf(kv);
          try {
            await kv.restore(rechunk([damaged], [17]));
          } catch (e) {
            expect(e).toBeInstanceOf(SnapshotFormatError);
            expect(bytesOf(kv)).toEqual(before);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('a snapshot taken while the store goes on applying', () => {
  const key = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'ü', 'long-key-'.repeat(20));
  const write = fc.oneof(
    fc.record({ op: fc.constant('set' as const), key, value: fc.string({ maxLength: 300 }) }),
    fc.record({ op: fc.constant('delete' as const), key }),
    fc.record({
      op: fc.constant('set' as const),
      key,
      value: fc.string({ maxLength: 5 }),
      idempotencyKey: fc.constantFrom('i1', 'i2', 'i3'),
    }),
  );

  it('holds exactly the state at the moment it began, whatever is applied while it is read', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(write, { maxLength: 40 }),
        fc.array(write, { maxLength: 40 }),
        fc.integer({ min: 16, max: 400 }),
        async (before, during, chunkBytes) => {
          const kv = new KvStore();
          for (const c of before) run(kv, c);
          const expected = bytesOf(kv, chunkBytes);
          const view = kv.beginSnapshot(chunkBytes);
          expect(view.lastApplied).toBe(kv.lastApplied);
          // Interleave: one write between every two chunks, the rest at the end.
          const chunks: Uint8Array[] = [];
          let i = 0;
          for await (const chunk of view.chunks()) {
            chunks.push(Buffer.from(chunk));
            const c = during[i++];
            if (c !== undefined) run(kv, c);
          }
          for (; i < during.length; i++) run(kv, during[i] as Command);
          expect(Buffer.concat(chunks)).toEqual(expected);
          // Released: a new snapshot can begin, and it sees the new state.
          const next = kv.beginSnapshot();
          const copy = new KvStore();
          await copy.restore(next.chunks());
          expect(copy.entries()).toEqual(kv.entries());
        },
      ),
      { numRuns: 200 },
    );
  });

  it('is one at a time, released even when never read, and a restore abandons it', async () => {
    const kv = storeWith([['a', '1']]);
    const view = kv.beginSnapshot();
    expect(() => kv.beginSnapshot()).toThrow(/already being taken/);
    view.release();
    // What it listed is let go: reading it afterwards is an error, not an empty snapshot.
    await expect(view.chunks().next()).rejects.toThrow(/released before it was read/);
    const again = kv.beginSnapshot(8);
    const it = again.chunks();
    await it.next();
    await kv.restore(storeWith([['b', '2']]).snapshotChunks());
    await expect(it.next()).rejects.toThrow(/abandoned/);
    expect(() => kv.beginSnapshot().release()).not.toThrow();
  });
});
