// GrpcTransport over real loopback sockets.

import * as grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { AppendEntries, NodeId } from '../raft/types.js';
import { EntryType } from '../raft/types.js';
import { Batch, RaftService, type StreamClosed } from './gen/raft.js';
import {
  CLUSTER_HEADER,
  FROM_HEADER,
  GrpcTransport,
  type GrpcTransportOptions,
  type Logger,
} from './grpc.js';
import type { Message, PeerAddress } from './transport.js';
import { captureLogger, type LogLine } from '../../test/helpers/logger.js';
import { freePorts } from '../../test/helpers/ports.js';
import { waitFor } from '../../test/helpers/wait.js';

async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}

// A pino logger is a Logger (compile-time check).
const _pinoFits: Logger = pino({ level: 'silent' });

/** Polls while calling `action` every `everyMs`, until `condition` holds. */
async function keepDoingUntil(what: string, action: () => void, condition: () => boolean, everyMs = 20) {
  const deadline = Date.now() + 15_000;
  let next = 0;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    if (Date.now() >= next) {
      action();
      next = Date.now() + everyMs;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const open: GrpcTransport[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

interface Node {
  readonly id: NodeId;
  readonly transport: GrpcTransport;
  readonly received: Message[];
  readonly lines: LogLine[];
}

async function startNode(
  id: NodeId,
  port: number,
  peers: readonly PeerAddress[],
  overrides: Partial<GrpcTransportOptions> = {},
): Promise<Node> {
  const { logger, lines } = captureLogger();
  const transport = new GrpcTransport({
    self: id,
    clusterId: 'test-cluster',
    listenAddress: `127.0.0.1:${port}`,
    peers,
    logger,
    ...overrides,
  });
  open.push(transport);
  const received: Message[] = [];
  await transport.start((m) => received.push(m));
  return { id, transport, received, lines };
}

/** Starts a cluster whose nodes all know each other. */
async function cluster(
  ids: readonly NodeId[],
  overrides: Partial<GrpcTransportOptions> = {},
): Promise<{ nodes: Node[]; peers: PeerAddress[] }> {
  const peers: PeerAddress[] = [];
  for (const id of ids) peers.push({ id, grpcAddress: `127.0.0.1:${await freePort()}` });
  const nodes = await Promise.all(peers.map((p) => startNode(p.id, portOf(p), peers, overrides)));
  return { nodes, peers };
}

function portOf(peer: PeerAddress): number {
  return Number(peer.grpcAddress.split(':')[1]);
}

const heartbeat = (from: NodeId, to: NodeId, seq: number): AppendEntries => ({
  type: 'AppendEntries',
  from,
  to,
  term: 1,
  prevLogIndex: seq,
  prevLogTerm: 1,
  entries: [],
  leaderCommit: 0,
  context: 0,
});

function allTypes(from: NodeId, to: NodeId): Message[] {
  return [
    {
      type: 'RequestVote',
      from,
      to,
      term: 2,
      lastLogIndex: 17,
      lastLogTerm: 1,
      preVote: false,
      transfer: false,
    },
    { type: 'RequestVoteResponse', from, to, term: 2, voteGranted: true, preVote: false },
    { type: 'RequestVoteResponse', from, to, term: 3, voteGranted: false, preVote: false },
    {
      type: 'AppendEntries',
      from,
      to,
      term: 3,
      prevLogIndex: 17,
      prevLogTerm: 1,
      entries: [
        { index: 18, term: 3, type: EntryType.Noop, data: new Uint8Array(0) },
        { index: 19, term: 3, type: EntryType.Normal, data: new TextEncoder().encode(`put k ${to}`) },
        { index: 20, term: 3, type: EntryType.Normal, data: new Uint8Array([0, 255, 128, 1]) },
        { index: 21, term: 3, type: EntryType.Normal, data: new Uint8Array(20_000).fill(9) },
      ],
      leaderCommit: 17,
      context: 0,
    },
    heartbeat(from, to, 21),
    {
      type: 'AppendEntriesResponse',
      from,
      to,
      term: 3,
      success: true,
      matchIndex: 21,
      rejectedIndex: 0,
      conflictTerm: 0,
      conflictIndex: 0,
      context: 0,
    },
    {
      type: 'AppendEntriesResponse',
      from,
      to,
      term: Number.MAX_SAFE_INTEGER,
      success: false,
      matchIndex: 0,
      rejectedIndex: 30,
      conflictTerm: 2,
      conflictIndex: 12,
      context: 0,
    },
  ];
}

describe('GrpcTransport', () => {
  it('exchanges every message type between three nodes with exact fields', async () => {
    const { nodes } = await cluster(['a', 'b', 'c']);
    const [a, b, c] = nodes as [Node, Node, Node];
    // One send() with messages for two peers, interleaved: each peer gets its own, in order.
    const toB = allTypes('a', 'b');
    const toC = allTypes('a', 'c');
    a.transport.send(toB.flatMap((m, i) => [m, toC[i]!]));
    await waitFor(
      'b and c receive',
      () => b.received.length === toB.length && c.received.length === toC.length,
    );
    // toStrictEqual: same values, same classes (entry data are plain Uint8Arrays, byte for byte equal).
    expect(b.received).toStrictEqual(toB);
    expect(c.received).toStrictEqual(toC);
    expect(
      b.received.flatMap((m) => (m.type === 'AppendEntries' ? m.entries : [])).map((e) => e.data.constructor),
    ).toEqual([Uint8Array, Uint8Array, Uint8Array, Uint8Array]);

    // Responses travel on the other nodes' own streams.
    b.transport.send(allTypes('b', 'a'));
    c.transport.send(allTypes('c', 'a'));
    await waitFor('a receives', () => a.received.length === 2 * toB.length);
    expect(a.received.filter((m) => m.from === 'b')).toStrictEqual(allTypes('b', 'a'));
    expect(a.received.filter((m) => m.from === 'c')).toStrictEqual(allTypes('c', 'a'));

    expect(a.transport.stats()).toMatchObject({ sentBatches: 2, sentMessages: 14, droppedMessages: 0 });
    expect(b.transport.stats()).toMatchObject({
      receivedBatches: 1,
      receivedMessages: 7,
      rejectedStreams: 0,
    });
    expect(a.transport.stats().receivedMessages).toBe(14);
    for (const node of nodes)
      expect(node.lines.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
  });

  it('preserves the order of many messages over many sends', async () => {
    const { nodes } = await cluster(['a', 'b']);
    const [a, b] = nodes as [Node, Node];
    // Open the stream first, so that nothing is queued behind the connection set-up.
    a.transport.send([heartbeat('a', 'b', 0)]);
    await waitFor('first message', () => b.received.length === 1);
    let seq = 1;
    for (let send = 0; send < 200; send++) {
      const batch: Message[] = [];
      for (let i = 0; i < 1 + (send % 20); i++) batch.push(heartbeat('a', 'b', seq++));
      a.transport.send(batch);
    }
    await waitFor('all messages', () => b.received.length === seq);
    expect(b.received.map((m) => (m as AppendEntries).prevLogIndex)).toEqual([...Array(seq).keys()]);
    expect(a.transport.stats()).toMatchObject({ sentBatches: 201, sentMessages: seq, droppedMessages: 0 });
  });

  it('drops (and counts) messages when a peer stream is backpressured, keeping order of the rest', async () => {
    const pa = { id: 'a', grpcAddress: `127.0.0.1:${await freePort()}` };
    const pb = { id: 'b', grpcAddress: `127.0.0.1:${await freePort()}` };
    const peers = [pa, pb];
    // b listens first: a opens its stream to b as it starts (links are kept warm), and must find it there.
    const b = await startNode('b', portOf(pb), peers);
    const a = await startNode('a', portOf(pa), peers, { maxQueuedBatchesPerPeer: 4 });
    const big = new Uint8Array(200_000);
    let seq = 0;
    for (let i = 0; i < 100; i++) {
      a.transport.send([
        {
          ...heartbeat('a', 'b', seq++),
          entries: [{ index: 1, term: 1, type: EntryType.Normal, data: big }],
        },
      ]);
    }
    expect(a.transport.stats().droppedMessages).toBeGreaterThan(0);
    const sent = a.transport.stats().sentMessages;
    expect(sent + a.transport.stats().droppedMessages).toBe(100);
    await waitFor('the sent ones arrive', () => b.received.length === sent);
    const order = b.received.map((m) => (m as AppendEntries).prevLogIndex);
    expect(order).toEqual([...order].sort((x, y) => x - y));
  });

  it('keeps a stream open to every peer without sending anything, and reopens it when the peer comes back', async () => {
    // Followers send each other nothing until an election; opening a stream then would delay its every round.
    const pa = { id: 'a', grpcAddress: `127.0.0.1:${await freePort()}` };
    const pb = { id: 'b', grpcAddress: `127.0.0.1:${await freePort()}` };
    const a = await startNode('a', portOf(pa), [pa, pb]); // b is not up yet: a's first attempts fail
    const b = await startNode('b', portOf(pb), [pa, pb]);
    await waitFor('a and b hold streams to each other', () => {
      const [sa, sb] = [a.transport.stats(), b.transport.stats()];
      return sa.streamsAccepted === 1 && sb.streamsAccepted === 1;
    });
    expect(a.transport.stats().sentMessages + b.transport.stats().sentMessages).toBe(0);
    // b restarts: a opens a new stream to it by itself.
    await b.transport.close();
    const again = await startNode('b', portOf(pb), [pa, pb]);
    await waitFor('a reopens its stream to the new b', () => again.transport.stats().streamsAccepted === 1);
    await waitFor('the new b opens one to a', () => a.transport.stats().streamsAccepted === 2);
  });

  it('rejects a stream from another cluster', async () => {
    const { nodes, peers } = await cluster(['a', 'b']);
    const [, b] = nodes as [Node, Node];
    // Node "a" of another cluster, configured with b's address.
    const { logger } = captureLogger();
    const intruder = new GrpcTransport({
      self: 'a',
      clusterId: 'other-cluster',
      listenAddress: '127.0.0.1:0',
      peers,
      logger,
    });
    open.push(intruder);
    await intruder.start(() => {});
    await keepDoingUntil(
      'b rejects the stream',
      () => intruder.send([heartbeat('a', 'b', 1)]),
      () => b.transport.stats().rejectedStreams > 0 && intruder.stats().streamFailures > 0,
    );
    expect(b.received).toEqual([]);
    expect(b.transport.stats().receivedBatches).toBe(0);
    const warning = b.lines.find((l) => l.level === 'warn');
    expect(warning?.msg).toMatch(/cluster id mismatch.*other-cluster.*test-cluster/);
    expect(warning?.fields).toMatchObject({ code: 'FAILED_PRECONDITION' });
  });

  it('rejects a stream from an unknown node id', async () => {
    const { nodes, peers } = await cluster(['a', 'b']);
    const [a, b] = nodes as [Node, Node];
    const mallory = await startNode('mallory', 0, peers);
    await keepDoingUntil(
      'b rejects the stream',
      () => mallory.transport.send([heartbeat('mallory', 'b', 1)]),
      () => b.transport.stats().rejectedStreams > 0 && mallory.transport.stats().streamFailures > 0,
    );
    expect(b.received).toEqual([]);
    expect(b.lines.find((l) => l.level === 'warn')?.msg).toMatch(/unknown node id "mallory"/);
    expect(mallory.lines.find((l) => l.level === 'warn')?.fields).toMatchObject({
      code: 'PERMISSION_DENIED',
    });
    // b still serves its real peers.
    a.transport.send([heartbeat('a', 'b', 2)]);
    await waitFor('a reaches b', () => b.received.length === 1);
  });

  it('drops envelopes addressed to another node or with a forged sender, and survives garbage', async () => {
    const { nodes, peers } = await cluster(['a', 'b', 'c']);
    const [a, b] = nodes as [Node, Node, Node];
    const client = new grpc.Client(peers[1]!.grpcAddress, grpc.credentials.createInsecure());
    try {
      const call = (serialize: (value: Uint8Array) => Buffer) => {
        const metadata = new grpc.Metadata();
        metadata.set(CLUSTER_HEADER, 'test-cluster');
        metadata.set(FROM_HEADER, 'a');
        let status: grpc.ServiceError | null | undefined;
        const stream = client.makeClientStreamRequest<Uint8Array, StreamClosed>(
          RaftService.stream.path,
          serialize,
          RaftService.stream.responseDeserialize,
          metadata,
          (err) => (status = err),
        );
        return { stream, status: () => status };
      };
      const asBuffer = (bytes: Uint8Array) => Buffer.from(bytes);
      // A batch, as "a", with one message for c, one claiming to be from c, one valid.
      const good = call(asBuffer);
      const envelope = (from: string, to: string) => ({
        from,
        to,
        term: 1,
        body: { $case: 'requestVoteResponse' as const, value: { voteGranted: true, preVote: false } },
      });
      good.stream.write(
        Batch.encode({
          clusterId: 'test-cluster',
          from: 'a',
          messages: [envelope('a', 'c'), envelope('c', 'b'), envelope('a', 'b')],
        }).finish(),
      );
      good.stream.end();
      await waitFor('the stream ends', () => good.status() !== undefined);
      expect(good.status()).toBeNull();
      expect(b.received).toEqual([
        { type: 'RequestVoteResponse', from: 'a', to: 'b', term: 1, voteGranted: true, preVote: false },
      ]);
      expect(b.transport.stats().rejectedMessages).toBe(2);
      const warnings = b.lines.filter((l) => l.level === 'warn').map((l) => l.msg);
      expect(warnings).toEqual([
        'dropping message addressed to another node',
        'dropping message whose sender is not the stream',
      ]);

      // Bytes that are not a Batch end the stream with an error; b keeps working.
      const garbage = call(() =>
        Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
      );
      garbage.stream.write(new Uint8Array(0));
      await waitFor('the garbage stream ends', () => garbage.status() !== undefined);
      expect(garbage.status()?.code).toBe(grpc.status.INTERNAL);

      // A batch claiming another cluster after a valid stream opening ends the stream too.
      const liar = call(asBuffer);
      liar.stream.write(Batch.encode({ clusterId: 'x', from: 'a', messages: [envelope('a', 'b')] }).finish());
      await waitFor('the lying stream ends', () => liar.status() !== undefined);
      expect(liar.status()?.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(b.received).toHaveLength(1);

      a.transport.send([heartbeat('a', 'b', 5)]);
      await waitFor('a reaches b', () => b.received.length === 2);
    } finally {
      client.close();
    }
  });

  it('reconnects by itself after a peer restarts on the same address', async () => {
    const { nodes, peers } = await cluster(['a', 'b']);
    const [a, b] = nodes as [Node, Node];
    let seq = 0;
    await keepDoingUntil(
      'b receives',
      () => a.transport.send([heartbeat('a', 'b', seq++)]),
      () => b.received.length > 0,
    );
    await b.transport.close();
    const droppedBefore = a.transport.stats().droppedMessages;

    // While b is down, a keeps sending; nothing throws; a fails to reopen the stream and drops messages.
    await keepDoingUntil(
      'a notices b is down',
      () => a.transport.send([heartbeat('a', 'b', seq++)]),
      () => a.transport.stats().streamFailures > 0 && a.transport.stats().droppedMessages > droppedBefore,
    );

    const b2 = await startNode('b', portOf(peers[1]!), peers);
    await keepDoingUntil(
      'the new b receives',
      () => a.transport.send([heartbeat('a', 'b', seq++)]),
      () => b2.received.length >= 3,
    );
    const order = b2.received.map((m) => (m as AppendEntries).prevLogIndex);
    expect(order).toEqual([...order].sort((x, y) => x - y));
    expect(a.transport.stats().streamsOpened).toBeGreaterThanOrEqual(2);
    expect(a.lines.some((l) => l.msg.includes('re-established'))).toBe(true);

    // And the new b reaches a (a's server never stopped).
    b2.transport.send([heartbeat('b', 'a', 1)]);
    await waitFor('a receives from the new b', () => a.received.length === 1);
  });

  it('never throws for unreachable or unknown peers, and drops after close', async () => {
    const peers = [
      { id: 'a', grpcAddress: `127.0.0.1:${await freePort()}` },
      { id: 'nobody-home', grpcAddress: `127.0.0.1:${await freePort()}` },
    ];
    const a = await startNode('a', portOf(peers[0]!), peers);
    await keepDoingUntil(
      'the unreachable peer is in backoff',
      () => a.transport.send([heartbeat('a', 'nobody-home', 1), heartbeat('a', 'stranger', 1)]),
      () => a.transport.stats().streamFailures > 0 && a.transport.stats().droppedMessages > 10,
    );
    expect(a.lines.filter((l) => l.msg === 'dropping message to unknown peer')).toHaveLength(1); // throttled
    await a.transport.close();
    await a.transport.close(); // idempotent
    const dropped = a.transport.stats().droppedMessages;
    a.transport.send([heartbeat('a', 'nobody-home', 2)]);
    expect(a.transport.stats().droppedMessages).toBe(dropped + 1);
    await expect(a.transport.start(() => {})).rejects.toThrow(/after close/);
  });

  it('reports a port that is taken, and exposes the bound port', async () => {
    const a = await startNode('a', 0, []);
    expect(a.transport.port).toBeGreaterThan(0);
    const { logger } = captureLogger();
    const b = new GrpcTransport({
      self: 'b',
      clusterId: 'test-cluster',
      listenAddress: `127.0.0.1:${a.transport.port}`,
      peers: [],
      logger,
    });
    open.push(b);
    grpc.setLogVerbosity(grpc.logVerbosity.NONE); // grpc-js prints the bind error to stderr too
    try {
      await expect(b.start(() => {})).rejects.toThrow(/cannot listen on 127\.0\.0\.1:\d+/);
    } finally {
      grpc.setLogVerbosity(grpc.logVerbosity.ERROR);
    }
    expect(
      () => new GrpcTransport({ self: 'x', clusterId: 'c', listenAddress: '', peers: [], logger }).port,
    ).toThrow(/not started/);
  });

  it('drops a batch over maxMessageBytes and survives an onMessage that throws', async () => {
    const peers = [
      { id: 'a', grpcAddress: `127.0.0.1:${await freePort()}` },
      { id: 'b', grpcAddress: `127.0.0.1:${await freePort()}` },
    ];
    const { logger, lines } = captureLogger();
    const b = new GrpcTransport({
      self: 'b',
      clusterId: 'test-cluster',
      listenAddress: peers[1]!.grpcAddress,
      peers,
      logger,
    });
    open.push(b);
    const received: Message[] = [];
    await b.start((m) => {
      received.push(m);
      if (received.length === 1) throw new Error('core bug');
    });
    // b listens first: a opens its stream to b as it starts (links are kept warm), and must find it there.
    const a = await startNode('a', portOf(peers[0]!), peers, { maxMessageBytes: 1000 });
    const big: Message = {
      ...heartbeat('a', 'b', 1),
      entries: [{ index: 2, term: 1, type: EntryType.Normal, data: new Uint8Array(2000) }],
    };
    a.transport.send([big]);
    expect(a.transport.stats()).toMatchObject({ droppedMessages: 1, sentBatches: 0 });
    expect(a.lines.find((l) => l.level === 'error')?.msg).toMatch(/exceeds maxMessageBytes/);
    a.transport.send([heartbeat('a', 'b', 2), heartbeat('a', 'b', 3)]);
    await waitFor('both arrive', () => received.length === 2);
    expect(lines.find((l) => l.level === 'error')?.msg).toMatch(/onMessage threw/);
  });

  it('closes promptly while peers keep their streams open', async () => {
    // A long grace, so that only a clean shutdown (all calls ended, no forceShutdown) is quick.
    const { nodes } = await cluster(['a', 'b', 'c'], { shutdownGraceMs: 10_000 });
    for (const node of nodes) {
      for (const other of nodes) if (other !== node) node.transport.send([heartbeat(node.id, other.id, 1)]);
    }
    await waitFor('all streams carry a message', () => nodes.every((n) => n.received.length === 2));
    const started = Date.now();
    await nodes[1]!.transport.close();
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('GrpcTransport.setPeers (membership changes, thesis chapter 4)', () => {
  // Short backoffs: these tests watch streams being refused and reopened.
  const quick: Partial<GrpcTransportOptions> = { reconnectBackoffMinMs: 10, reconnectBackoffMaxMs: 100 };
  const peerLines = (node: Node): LogLine[] => node.lines.filter((l) => l.msg.startsWith('raft peer '));

  it('adds a peer to a transport that started with none; messages flow once both sides know each other', async () => {
    const [portA, portB] = (await freePorts(2)) as [number, number];
    const pa = { id: 'a', grpcAddress: `127.0.0.1:${portA}` };
    const pb = { id: 'b', grpcAddress: `127.0.0.1:${portB}` };
    const a = await startNode('a', portA, [], quick);
    const b = await startNode('b', portB, [], quick);
    a.transport.send([heartbeat('a', 'b', 0)]);
    expect(a.transport.stats()).toMatchObject({ droppedMessages: 1, streamsOpened: 0 });

    a.transport.setPeers([pa, pb]); // the entry for a itself is ignored
    expect(peerLines(a).map((l) => [l.msg, l.fields])).toEqual([
      ['raft peer added', { peer: 'b', address: pb.grpcAddress }],
    ]);
    // b does not know a yet: it refuses a's stream, as from any unknown node.
    let seq = 1;
    await keepDoingUntil(
      'b refuses a',
      () => a.transport.send([heartbeat('a', 'b', seq++)]),
      () => b.transport.stats().rejectedStreams > 0,
    );
    expect(b.received).toEqual([]);
    expect(b.lines.find((l) => l.level === 'warn')?.msg).toMatch(/unknown node id "a"/);

    b.transport.setPeers([pa]);
    await keepDoingUntil(
      'b receives from a',
      () => a.transport.send([heartbeat('a', 'b', seq++)]),
      () => b.received.length > 0,
    );
    b.transport.send([heartbeat('b', 'a', 1)]);
    await waitFor('a receives from b', () => a.received.length === 1);
    expect(a.received).toStrictEqual([heartbeat('b', 'a', 1)]);
  });

  it('removing a peer stops delivery both ways, ends its stream, and refuses its new ones', async () => {
    const { nodes, peers } = await cluster(['a', 'b'], quick);
    const [a, b] = nodes as [Node, Node];
    // One message each way, delivered: nothing is in flight afterwards.
    a.transport.send([heartbeat('a', 'b', 1)]);
    b.transport.send([heartbeat('b', 'a', 1)]);
    await waitFor('both delivered', () => a.received.length === 1 && b.received.length === 1);

    a.transport.setPeers([peers[0]!]);
    expect(peerLines(a).map((l) => [l.msg, l.fields])).toEqual([
      ['raft peer removed', { peer: 'b', address: peers[1]!.grpcAddress, incomingCallsEnded: 1 }],
    ]);
    const dropped = a.transport.stats().droppedMessages;
    a.transport.send([heartbeat('a', 'b', 2)]);
    expect(a.transport.stats().droppedMessages).toBe(dropped + 1);

    // b's open stream to a was ended with PERMISSION_DENIED; the streams it opens next are refused.
    let seq = 2;
    await keepDoingUntil(
      'a refuses a new stream from b',
      () => b.transport.send([heartbeat('b', 'a', seq++)]),
      () => a.transport.stats().rejectedStreams > 0,
    );
    expect(a.received).toHaveLength(1);
    expect(b.received).toHaveLength(1);
    expect(b.lines.find((l) => l.msg === 'raft stream to peer failed')?.fields).toMatchObject({
      peer: 'a',
      code: 'PERMISSION_DENIED',
      details: 'node b is no longer a peer of a in cluster "test-cluster"',
    });
    expect(a.lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([
      'dropping message to unknown peer',
      expect.stringMatching(/^unknown node id "b": not a peer of a/),
    ]);

    // Added back, b is heard again.
    a.transport.setPeers(peers);
    await keepDoingUntil(
      'a hears b again',
      () => b.transport.send([heartbeat('b', 'a', seq++)]),
      () => a.received.length > 1,
    );
    a.transport.send([heartbeat('a', 'b', 3)]);
    await waitFor('b hears a again', () => b.received.length === 2);
  });

  it('an address change reconnects to the new address', async () => {
    const { nodes, peers } = await cluster(['a', 'b'], quick);
    const [a, b] = nodes as [Node, Node];
    a.transport.send([heartbeat('a', 'b', 1)]);
    await waitFor('the old b receives', () => b.received.length === 1);

    // b moves to another address; the old one keeps listening, so a message that still went there would show.
    const moved = { id: 'b', grpcAddress: `127.0.0.1:${await freePort()}` };
    const b2 = await startNode('b', portOf(moved), peers, quick);
    const opened = a.transport.stats().streamsOpened;
    a.transport.setPeers([peers[0]!, moved]);
    expect(peerLines(a).map((l) => [l.msg, l.fields])).toEqual([
      ['raft peer address changed', { peer: 'b', from: peers[1]!.grpcAddress, to: moved.grpcAddress }],
    ]);
    a.transport.send([heartbeat('a', 'b', 2)]);
    await waitFor('the new b receives', () => b2.received.length === 1);
    expect(b2.received).toStrictEqual([heartbeat('a', 'b', 2)]);
    expect(b.received).toHaveLength(1);
    expect(a.transport.stats().streamsOpened).toBe(opened + 1);
  });

  it('is idempotent, ignores self, and throws on duplicates without changing anything', async () => {
    const { nodes, peers } = await cluster(['a', 'b', 'c'], quick);
    const [a, b, c] = nodes as [Node, Node, Node];
    a.transport.send([heartbeat('a', 'b', 1), heartbeat('a', 'c', 1)]);
    await waitFor('b and c receive', () => b.received.length === 1 && c.received.length === 1);
    const before = a.transport.stats();

    a.transport.setPeers([...peers].reverse());
    a.transport.setPeers(peers.filter((p) => p.id !== 'a'));
    expect(() => a.transport.setPeers([...peers, { id: 'c', grpcAddress: peers[2]!.grpcAddress }])).toThrow(
      'GrpcTransport: peer c is listed twice',
    );
    expect(() => a.transport.setPeers([peers[1]!, { id: 'b', grpcAddress: '127.0.0.1:1' }])).toThrow(
      'GrpcTransport: peer b is listed twice',
    );
    // The healthy streams carry on: nothing was reopened, nothing was dropped or logged.
    a.transport.send([heartbeat('a', 'b', 2), heartbeat('a', 'c', 2)]);
    await waitFor('b and c receive again', () => b.received.length === 2 && c.received.length === 2);
    expect(a.transport.stats()).toMatchObject({
      streamsOpened: before.streamsOpened,
      streamFailures: 0,
      droppedMessages: 0,
    });
    expect(peerLines(a)).toEqual([]);

    const { logger } = captureLogger();
    expect(
      () =>
        new GrpcTransport({
          self: 'x',
          clusterId: 'c',
          listenAddress: '',
          peers: [peers[1]!, peers[1]!],
          logger,
        }),
    ).toThrow('GrpcTransport: peer b is listed twice');
  });
});
