// Snapshot transfers (GrpcTransport.sendSnapshot / onSnapshot) over real loopback sockets.

import { createHash } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { ConfState, InstallSnapshot, Message, NodeId } from '../raft/types.js';
import type { SnapshotMeta, SnapshotSource } from '../storage/storage.js';
import { crc32 } from '../util/crc32.js';
import { captureLogger, type LogLine } from '../../test/helpers/logger.js';
import { waitFor } from '../../test/helpers/wait.js';
import { RaftService, SnapshotChunk, type SnapshotAck, type SnapshotHeader } from './gen/raft.js';
import { CLUSTER_HEADER, FROM_HEADER, GrpcTransport, type GrpcTransportOptions } from './grpc.js';
import type { PeerAddress, SnapshotHandler } from './transport.js';

interface Deferred {
  readonly promise: Promise<void>;
  resolve(): void;
}

function deferred(): Deferred {
  let resolve: () => void = () => {};
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const open: GrpcTransport[] = [];
const releases: Deferred[] = [];
afterEach(async () => {
  for (const d of releases.splice(0)) d.resolve();
  await Promise.all(open.splice(0).map((t) => t.close()));
});

interface Node {
  readonly id: NodeId;
  readonly transport: GrpcTransport;
  readonly address: string;
  readonly lines: LogLine[];
}

async function startNode(
  id: NodeId,
  peers: readonly PeerAddress[],
  onSnapshot?: SnapshotHandler,
  overrides: Partial<GrpcTransportOptions> = {},
): Promise<Node> {
  const { logger, lines } = captureLogger();
  const transport = new GrpcTransport({
    self: id,
    clusterId: 'test-cluster',
    listenAddress: '127.0.0.1:0',
    peers,
    logger,
    ...overrides,
  });
  open.push(transport);
  await transport.start(() => {}, onSnapshot);
  return { id, transport, address: `127.0.0.1:${transport.port}`, lines };
}

/**
 * Receiver "b" (which knows "a" as a peer) and sender "a" (which knows b's address). b's snapshots go to
 * `onSnapshot`.
 */
async function pair(
  onSnapshot: SnapshotHandler | undefined,
  options: { a?: Partial<GrpcTransportOptions>; b?: Partial<GrpcTransportOptions> } = {},
): Promise<{ a: Node; b: Node }> {
  // b never sends to a, so a's address does not matter to it.
  const b = await startNode('b', [{ id: 'a', grpcAddress: '127.0.0.1:1' }], onSnapshot, options.b);
  const a = await startNode('a', [{ id: 'b', grpcAddress: b.address }], undefined, options.a);
  return { a, b };
}

const meta: SnapshotMeta = { index: 120, term: 7 };
const installSnapshot = (to: NodeId, snapshot: SnapshotMeta = meta, from: NodeId = 'a'): InstallSnapshot => ({
  type: 'InstallSnapshot',
  from,
  to,
  term: 9,
  snapshot,
});

/** Deterministic pseudo-random bytes (xorshift32), `length` of them, for piece `seq`. */
function pseudoRandom(length: number, seq: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(length / 4));
  let x = (seq + 1) * 2654435761;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return new Uint8Array(words.buffer, 0, length);
}

interface TestSource extends SnapshotSource {
  /** SHA-256 of every byte the source has produced so far. */
  hash(): string;
  /** Bytes produced so far. */
  produced(): number;
  /** The reader stopped early (the iterator's return() ran). */
  closedEarly(): boolean;
}

/**
 * A snapshot whose pieces (of the given sizes) are generated only when the reader asks for the next one, and whose
 * claimed `size` may lie.
 */
function lazySource(
  pieceSizes: readonly number[],
  size?: number,
  snapshotMeta: SnapshotMeta = meta,
): TestSource {
  const sha = createHash('sha256');
  let produced = 0;
  let closedEarly = false;
  return {
    meta: snapshotMeta,
    size: size ?? pieceSizes.reduce((sum, n) => sum + n, 0),
    chunks: async function* () {
      let done = false;
      try {
        for (const [seq, length] of pieceSizes.entries()) {
          const piece = pseudoRandom(length, seq);
          sha.update(piece);
          produced += length;
          yield piece;
        }
        done = true;
      } finally {
        if (!done) closedEarly = true;
      }
    },
    hash: () => sha.copy().digest('hex'),
    produced: () => produced,
    closedEarly: () => closedEarly,
  };
}

/**
 * A forced full garbage collection, so that memory measurements count only what is still referenced. Twice: V8
 * frees the memory of dead ArrayBuffers in the background after a collection, and the next one waits for that.
 */
function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  return () => {
    gc();
    gc();
  };
}

const MiB = 1024 * 1024;

/** A handler that reads everything, hashing it, and records what it saw. */
function hashingHandler() {
  const seen: { message: InstallSnapshot | null; hash: string; bytes: number; error: Error | null } = {
    message: null,
    hash: '',
    bytes: 0,
    error: null,
  };
  const handler: SnapshotHandler = async (message, chunks) => {
    seen.message = message;
    const sha = createHash('sha256');
    try {
      for await (const chunk of chunks) {
        sha.update(chunk);
        seen.bytes += chunk.length;
      }
    } catch (err) {
      seen.error = err as Error;
      throw err;
    }
    seen.hash = sha.digest('hex');
  };
  return { seen, handler };
}

describe('GrpcTransport snapshots', () => {
  it('streams a 40 MB snapshot in bounded chunks with bounded memory', async () => {
    const gc = exposeGc();
    // Pieces of 300 KB and 1.7 MB (cut by the sender to 1 MiB), an empty one, and an odd tail.
    const sizes: number[] = [];
    for (let i = 0; i < 20; i++) sizes.push(300_000, 1_700_000);
    sizes.splice(7, 0, 0);
    sizes.push(12_345);
    const source = lazySource(sizes);
    expect(source.size).toBe(40_012_345);

    const chunkSizes: number[] = [];
    let message: InstallSnapshot | null = null;
    let receivedHash = '';
    let baseline = 0;
    let peak = 0;
    let nextSample = 0;
    const memory = (): number => {
      const usage = process.memoryUsage();
      return usage.heapUsed + usage.arrayBuffers;
    };
    const { a, b } = await pair(async (m, chunks) => {
      message = m;
      const sha = createHash('sha256');
      let received = 0;
      for await (const chunk of chunks) {
        chunkSizes.push(chunk.length);
        expect(chunk).toBeInstanceOf(Uint8Array);
        sha.update(chunk);
        received += chunk.length;
        // A consumer slower than the network: the sender has to wait for it.
        for (let i = 0; i < 3; i++) await new Promise(setImmediate);
        if (received >= nextSample) {
          gc();
          peak = Math.max(peak, memory() - baseline);
          nextSample += 4 * MiB;
        }
      }
      receivedHash = sha.digest('hex');
    });

    gc();
    baseline = memory();
    await a.transport.sendSnapshot(installSnapshot('b'), source);

    expect(message).toEqual(installSnapshot('b'));
    expect(receivedHash).toBe(source.hash());
    expect(source.produced()).toBe(source.size);
    expect(chunkSizes.reduce((sum, n) => sum + n, 0)).toBe(source.size);
    expect(Math.max(...chunkSizes)).toBe(MiB); // the 1.7 MB pieces were cut at chunkBytes
    expect(chunkSizes.every((n) => n > 0 && n <= MiB)).toBe(true);
    // Both ends live in this process: what they hold together (a few chunks each, plus HTTP/2 windows; about 7 MiB
    // when this was written) stays far below the snapshot's 40 MB.
    expect(peak).toBeLessThan(16 * MiB);
    expect(a.transport.stats()).toMatchObject({ snapshotsSent: 1, snapshotsFailed: 0 });
    expect(b.transport.stats()).toMatchObject({ snapshotsReceived: 1, snapshotsFailed: 0 });
    expect(a.lines.find((l) => l.msg === 'snapshot sent')?.fields).toMatchObject({
      peer: 'b',
      bytes: source.size,
    });
    expect(b.lines.find((l) => l.msg === 'snapshot received')?.fields).toMatchObject({
      from: 'a',
      index: 120,
    });
  });

  it('respects a smaller chunk size, and transfers an empty snapshot', async () => {
    const chunkSizes: number[][] = [];
    const hashes: string[] = [];
    const { a } = await pair(
      async (_m, chunks) => {
        const sizes: number[] = [];
        const sha = createHash('sha256');
        for await (const chunk of chunks) {
          sizes.push(chunk.length);
          sha.update(chunk);
        }
        chunkSizes.push(sizes);
        hashes.push(sha.digest('hex'));
      },
      { a: { snapshotChunkBytes: 1000 } },
    );
    const source = lazySource([2500, 999, 1000, 1001]);
    await a.transport.sendSnapshot(installSnapshot('b'), source);
    const empty = lazySource([]);
    await a.transport.sendSnapshot(installSnapshot('b'), empty);
    expect(chunkSizes).toEqual([[1000, 1000, 500, 999, 1000, 1000, 1], []]);
    expect(hashes).toEqual([source.hash(), empty.hash()]);
    expect(a.transport.stats().snapshotsSent).toBe(2);
  });

  it('carries the configuration in force at the snapshot’s index (header field 8, thesis §5.1)', async () => {
    const config: ConfState = {
      voters: ['a', 'b', 'd'],
      outgoing: ['a', 'b', 'c'],
      learners: ['e'],
      context: '{"d":"127.0.0.1:7004"}',
    };
    const received: InstallSnapshot[] = [];
    const { a } = await pair(async (m, chunks) => {
      received.push(m);
      for await (const _chunk of chunks);
    });
    const withConfig: SnapshotMeta = { index: 120, term: 7, config };
    await a.transport.sendSnapshot(
      installSnapshot('b', withConfig),
      lazySource([100], undefined, withConfig),
    );
    // Without one (a snapshot from before membership changes), it arrives without one: no `config` key at all.
    await a.transport.sendSnapshot(installSnapshot('b'), lazySource([100]));
    expect(received).toStrictEqual([installSnapshot('b', withConfig), installSnapshot('b')]);
  });

  it('rejects with the receiver’s error when its handler fails, and stops reading the source', async () => {
    const { a, b } = await pair(async (_m, chunks) => {
      let n = 0;
      for await (const _chunk of chunks) {
        if (++n === 3) throw new Error('disk full');
      }
    });
    const source = lazySource(Array<number>(20).fill(MiB));
    await expect(a.transport.sendSnapshot(installSnapshot('b'), source)).rejects.toThrow(
      'snapshot transfer to b: b refused it: disk full',
    );
    // The receiver's refusal came while the sender was still streaming: it stopped reading the source.
    expect(source.produced()).toBeLessThan(source.size);
    expect(source.closedEarly()).toBe(true);
    expect(a.transport.stats()).toMatchObject({ snapshotsSent: 0, snapshotsFailed: 1 });
    expect(b.transport.stats()).toMatchObject({ snapshotsReceived: 0, snapshotsFailed: 1 });
    expect(b.lines.find((l) => l.msg === 'incoming snapshot failed')?.fields).toMatchObject({
      error: 'disk full',
    });
  });

  it('refuses a snapshot the handler did not read to the end, even if the handler resolves', async () => {
    const { a } = await pair(async (_m, chunks) => {
      for await (const _chunk of chunks) break;
    });
    await expect(a.transport.sendSnapshot(installSnapshot('b'), lazySource([MiB, MiB]))).rejects.toThrow(
      /b refused it: node b stopped reading after \d+ of 2097152 bytes/,
    );
  });

  it('fails both ends when the source holds more or fewer bytes than its size', async () => {
    const errors: string[] = [];
    let gate = deferred();
    const { a, b } = await pair(async (_m, chunks) => {
      try {
        for await (const _chunk of chunks) gate.resolve();
      } catch (err) {
        errors.push((err as Error).message);
        throw err;
      }
    });
    // 1000 bytes, then (once the receiver has them, so that it surely saw the transfer) 1000 more.
    const lying = (size: number): SnapshotSource => ({
      meta,
      size,
      chunks: async function* () {
        yield new Uint8Array(1000);
        await gate.promise;
        yield new Uint8Array(1000);
      },
    });
    await expect(a.transport.sendSnapshot(installSnapshot('b'), lying(1500))).rejects.toThrow(
      'snapshot transfer to b: reading the snapshot failed: the source holds more than its size of 1500 bytes',
    );
    await waitFor('b gives up', () => b.transport.stats().snapshotsFailed === 1);
    gate = deferred();
    await expect(a.transport.sendSnapshot(installSnapshot('b'), lying(2500))).rejects.toThrow(
      'the source holds 2000 bytes, but its size is 2500',
    );
    await waitFor('b gives up', () => b.transport.stats().snapshotsFailed === 2);
    // The receiver's iteration threw for both: the call ended before a trailer.
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(/^snapshot from a: .*1000 of 1500 bytes.*(without a trailer|cancelled)/);
    expect(errors[1]).toMatch(/^snapshot from a: .*2000 of 2500 bytes.*(without a trailer|cancelled)/);
    expect(a.transport.stats()).toMatchObject({ snapshotsSent: 0, snapshotsFailed: 2 });
  });

  it('rejects at once a second transfer to the same peer while one is running', async () => {
    const release = deferred();
    releases.push(release);
    const arrived = deferred();
    const { a } = await pair(async (_m, chunks) => {
      arrived.resolve();
      await release.promise;
      for await (const _chunk of chunks);
    });
    const first = a.transport.sendSnapshot(installSnapshot('b'), lazySource([MiB]));
    await arrived.promise;
    await expect(a.transport.sendSnapshot(installSnapshot('b'), lazySource([10]))).rejects.toThrow(
      'snapshot transfer to b: a transfer to this peer is already running',
    );
    release.resolve();
    await first;
    // Once done, the next one may go.
    await a.transport.sendSnapshot(installSnapshot('b'), lazySource([10]));
    expect(a.transport.stats()).toMatchObject({ snapshotsSent: 2, snapshotsFailed: 1 });
  });

  it('rejects an unknown peer, a peer that is down, a mismatching source, and a closed transport', async () => {
    const down = await startNode('down', [], undefined);
    const downAddress = down.address;
    await down.transport.close();
    const a = await startNode('a', [{ id: 'down', grpcAddress: downAddress }]);
    await expect(a.transport.sendSnapshot(installSnapshot('zed'), lazySource([10]))).rejects.toThrow(
      'snapshot transfer to zed: unknown peer',
    );
    const started = Date.now();
    await expect(a.transport.sendSnapshot(installSnapshot('down'), lazySource([10]))).rejects.toThrow(
      /snapshot transfer to down: UNAVAILABLE/,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    await expect(
      a.transport.sendSnapshot(installSnapshot('down', { index: 1, term: 1 }), lazySource([10])),
    ).rejects.toThrow('message is for snapshot index 1 term 1, the source holds index 120 term 7');
    await expect(
      a.transport.sendSnapshot(installSnapshot('down', meta, 'x'), lazySource([10])),
    ).rejects.toThrow('message is from x, this is a');
    await a.transport.close();
    await expect(a.transport.sendSnapshot(installSnapshot('down'), lazySource([10]))).rejects.toThrow(
      'transport of a is not running',
    );
    expect(a.transport.stats().snapshotsFailed).toBe(5);
  });

  it('refuses snapshots from another cluster, from unknown nodes, and when no handler is set', async () => {
    const { seen, handler } = hashingHandler();
    const { b } = await pair(handler);
    const peers = [{ id: 'b', grpcAddress: b.address }];
    const intruder = await startNode('a', peers, undefined, { clusterId: 'other-cluster' });
    await expect(intruder.transport.sendSnapshot(installSnapshot('b'), lazySource([10]))).rejects.toThrow(
      /FAILED_PRECONDITION: cluster id mismatch.*other-cluster.*test-cluster/,
    );
    const mallory = await startNode('mallory', peers);
    await expect(
      mallory.transport.sendSnapshot(installSnapshot('b', meta, 'mallory'), lazySource([10])),
    ).rejects.toThrow(/PERMISSION_DENIED: unknown node id "mallory"/);
    expect(seen.message).toBeNull();
    // Both snapshot calls were refused (and so were the intruders' message streams, which they open as they start).
    expect(b.transport.stats().rejectedStreams).toBeGreaterThanOrEqual(2);
    expect(b.transport.stats()).toMatchObject({ snapshotsReceived: 0, snapshotsFailed: 0 });

    const deaf = await startNode('deaf', [{ id: 'a', grpcAddress: '127.0.0.1:1' }]);
    const a = await startNode('a', [{ id: 'deaf', grpcAddress: deaf.address }]);
    await expect(a.transport.sendSnapshot(installSnapshot('deaf'), lazySource([10]))).rejects.toThrow(
      'UNIMPLEMENTED: node deaf does not accept snapshots',
    );
  });

  it('fails a transfer that exceeds its deadline, and the receiver’s iteration with it', async () => {
    const release = deferred();
    releases.push(release);
    const arrived = deferred();
    let iterationError: unknown = null;
    const { a, b } = await pair(
      async (_m, chunks) => {
        arrived.resolve();
        await release.promise;
        try {
          for await (const _chunk of chunks);
        } catch (err) {
          iterationError = err;
          throw err;
        }
      },
      { a: { snapshotTimeoutMs: 1000 } },
    );
    // Far more than the receiver reads ahead: the sender is still writing when the deadline passes.
    await expect(
      a.transport.sendSnapshot(installSnapshot('b'), lazySource(Array<number>(20).fill(MiB))),
    ).rejects.toThrow(/snapshot transfer to b: DEADLINE_EXCEEDED/);
    await arrived.promise;
    release.resolve();
    await waitFor('b gives up', () => b.transport.stats().snapshotsFailed === 1);
    expect(String(iterationError)).toMatch(/transfer broken.*cancelled|without a trailer/);
  });

  it('fails the transfer when either end closes', async () => {
    const arrived = deferred();
    const { seen, handler } = hashingHandler();
    const { a, b } = await pair(async (m, chunks) => {
      arrived.resolve();
      await handler(m, chunks);
    });
    // A source that never ends until the transport closes.
    const stuck: SnapshotSource = {
      meta,
      size: 10 * MiB,
      chunks: async function* () {
        yield new Uint8Array(1000);
        await new Promise(() => {});
      },
    };
    const transfer = a.transport.sendSnapshot(installSnapshot('b'), stuck);
    await arrived.promise;
    await waitFor('b has the first bytes', () => seen.bytes === 1000);
    const rejected = expect(transfer).rejects.toThrow('snapshot transfer to b: transport of a closed');
    await a.transport.close();
    await rejected;
    await waitFor('b gives up', () => b.transport.stats().snapshotsFailed === 1);
    expect(seen.error?.message).toMatch(
      /snapshot from a: .*1000 of 10485760 bytes.*(cancelled|without a trailer)/,
    );

    // The receiver closing.
    const arrived2 = deferred();
    const second = await pair(async (_m, chunks) => {
      arrived2.resolve();
      for await (const _chunk of chunks);
    });
    const transfer2 = second.a.transport.sendSnapshot(installSnapshot('b'), stuck);
    await arrived2.promise;
    const rejected2 = expect(transfer2).rejects.toThrow(
      /snapshot transfer to b: UNAVAILABLE: node b is shutting down/,
    );
    await second.b.transport.close();
    await rejected2;
  });

  it('setPeers cancels transfers to a removed or moved peer, and ends one from a removed sender', async () => {
    // A source that never ends by itself.
    const stuck: SnapshotSource = {
      meta,
      size: 10 * MiB,
      chunks: async function* () {
        yield new Uint8Array(1000);
        await new Promise(() => {});
      },
    };
    /** A pair whose transfer from a to b is running (b has its first bytes), and what b's handler saw. */
    const running = async () => {
      const { seen, handler } = hashingHandler();
      const nodes = await pair(handler);
      const transfer = nodes.a.transport.sendSnapshot(installSnapshot('b'), stuck);
      await waitFor('b has the first bytes', () => seen.bytes === 1000);
      return { ...nodes, seen, transfer };
    };

    // The sender removes the receiver.
    const removed = await running();
    const rejected = expect(removed.transfer).rejects.toThrow(
      'snapshot transfer to b: b is no longer a peer of a',
    );
    removed.a.transport.setPeers([]);
    await rejected;
    await waitFor('b gives up', () => removed.b.transport.stats().snapshotsFailed === 1);
    expect(removed.seen.error?.message).toMatch(/snapshot from a: .*1000 of 10485760 bytes/);
    await expect(removed.a.transport.sendSnapshot(installSnapshot('b'), lazySource([10]))).rejects.toThrow(
      'snapshot transfer to b: unknown peer',
    );

    // The receiver moves: the transfer to the old address fails; the next one goes to the new address.
    const moved = await running();
    const elsewhere = await startNode(
      'b',
      [{ id: 'a', grpcAddress: '127.0.0.1:1' }],
      hashingHandler().handler,
    );
    const rejected2 = expect(moved.transfer).rejects.toThrow(
      `snapshot transfer to b: the address of b changed from ${moved.b.address} to ${elsewhere.address}`,
    );
    moved.a.transport.setPeers([{ id: 'b', grpcAddress: elsewhere.address }]);
    await rejected2;
    await moved.a.transport.sendSnapshot(installSnapshot('b'), lazySource([10]));
    expect(elsewhere.transport.stats().snapshotsReceived).toBe(1);
    expect(moved.b.transport.stats().snapshotsReceived).toBe(0);

    // The receiver removes the sender: its transfer is ended, and a new one refused.
    const revoked = await running();
    const rejected3 = expect(revoked.transfer).rejects.toThrow(
      'snapshot transfer to b: PERMISSION_DENIED: node a is no longer a peer of b in cluster "test-cluster"',
    );
    revoked.b.transport.setPeers([]);
    await rejected3;
    await waitFor('b counts the failure', () => revoked.b.transport.stats().snapshotsFailed === 1);
    expect(revoked.seen.error?.message).toMatch(/no longer a peer of b/);
    await expect(revoked.a.transport.sendSnapshot(installSnapshot('b'), lazySource([10]))).rejects.toThrow(
      /PERMISSION_DENIED: unknown node id "a"/,
    );
  });

  it('drops an InstallSnapshot message given to send(), with a warning', async () => {
    const { a } = await pair(undefined);
    const snapshotMessage: Message = installSnapshot('b');
    a.transport.send([snapshotMessage]);
    expect(a.transport.stats().droppedMessages).toBe(1);
    expect(a.lines.find((l) => l.level === 'warn')?.msg).toMatch(/InstallSnapshot.*sendSnapshot/);
  });

  describe('a hand-written sender', () => {
    type Result = { error: grpc.ServiceError | null; ack: SnapshotAck | undefined };

    /** Opens an InstallSnapshot call to `address` as node `from` and writes `chunks` to it. */
    function rawTransfer(
      client: grpc.Client,
      chunks: readonly SnapshotChunk[],
      opts: { from?: string; end?: boolean } = {},
    ): Promise<Result> {
      const metadata = new grpc.Metadata();
      metadata.set(CLUSTER_HEADER, 'test-cluster');
      metadata.set(FROM_HEADER, opts.from ?? 'a');
      return new Promise((resolve) => {
        const call = client.makeClientStreamRequest<SnapshotChunk, SnapshotAck>(
          RaftService.installSnapshot.path,
          RaftService.installSnapshot.requestSerialize,
          RaftService.installSnapshot.responseDeserialize,
          metadata,
          (error, ack) => resolve({ error, ack }),
        );
        for (const chunk of chunks) call.write(chunk);
        if (opts.end !== false) call.end();
      });
    }

    const header = (size: number, overrides: Partial<SnapshotHeader> = {}): SnapshotChunk => ({
      part: {
        $case: 'header',
        value: {
          clusterId: 'test-cluster',
          from: 'a',
          to: 'b',
          term: 9,
          snapshotIndex: 120,
          snapshotTerm: 7,
          size,
          config: new Uint8Array(),
          ...overrides,
        },
      },
    });
    const data = (bytes: Uint8Array): SnapshotChunk => ({ part: { $case: 'data', value: bytes } });
    const trailer = (crc: number): SnapshotChunk => ({ part: { $case: 'trailer', value: { crc32: crc } } });

    it('is refused when the data do not match the trailer or the announced size', async () => {
      const { seen, handler } = hashingHandler();
      const errors: string[] = [];
      const { b } = await pair(
        async (m, chunks) => {
          try {
            await handler(m, chunks);
          } finally {
            if (seen.error !== null) errors.push(seen.error.message);
            seen.error = null;
          }
        },
        { b: { maxSnapshotBytes: 1000 } },
      );
      const client = new grpc.Client(b.address, grpc.credentials.createInsecure());
      try {
        const bytes = pseudoRandom(100, 1);
        const good = crc32(bytes);

        // A correct transfer, by hand, is accepted.
        const ok = await rawTransfer(client, [
          header(100),
          data(bytes.subarray(0, 60)),
          data(bytes.subarray(60)),
          trailer(good),
        ]);
        expect(ok).toEqual({ error: null, ack: { accepted: true, error: '' } });
        expect(seen.hash).toBe(createHash('sha256').update(bytes).digest('hex'));

        const refused = async (chunks: SnapshotChunk[], reason: RegExp, end = true): Promise<void> => {
          const result = await rawTransfer(client, chunks, { end });
          expect(result.error).toBeNull();
          expect(result.ack?.accepted).toBe(false);
          expect(result.ack?.error).toMatch(reason);
          expect(errors.at(-1)).toMatch(reason); // the handler's iteration threw it
        };
        await refused(
          [header(100), data(bytes), trailer((good ^ 1) >>> 0)],
          /^snapshot from a: checksum mismatch: trailer says crc32 0x[0-9a-f]{8}, data has 0x[0-9a-f]{8}$/,
        );
        await refused([header(50), data(bytes), trailer(good)], /more data than the 50 bytes announced/);
        await refused(
          [header(200), data(bytes), trailer(good)],
          /trailer after 100 of the 200 bytes announced/,
        );
        await refused([header(100), data(bytes)], /stream ended after 100 of 100 bytes without a trailer/);
        await refused([header(100), header(100)], /a second header/);
        await refused([header(100), { part: undefined }], /a message of an unknown kind/);
        expect(b.transport.stats()).toMatchObject({ snapshotsReceived: 1, snapshotsFailed: 6 });

        // Refused before the handler sees anything: gRPC status, as for a rejected Stream.
        const status = async (chunks: SnapshotChunk[], code: grpc.status, details: RegExp, from = 'a') => {
          const result = await rawTransfer(client, chunks, { from });
          expect(result.error?.code).toBe(code);
          expect(result.error?.details).toMatch(details);
        };
        await status([data(bytes)], grpc.status.INVALID_ARGUMENT, /first message is not a header/);
        await status([], grpc.status.INVALID_ARGUMENT, /first message is not a header/);
        await status(
          [header(1001)],
          grpc.status.RESOURCE_EXHAUSTED,
          /announces 1001 bytes, more than .* 1000/,
        );
        await status([header(1, { to: 'c' })], grpc.status.FAILED_PRECONDITION, /addressed to node "c"/);
        await status([header(1, { clusterId: 'x' })], grpc.status.FAILED_PRECONDITION, /cluster id mismatch/);
        await status([header(1, { from: 'c' })], grpc.status.PERMISSION_DENIED, /sender mismatch/);
        await status([header(1, { from: 'c' })], grpc.status.PERMISSION_DENIED, /unknown node id "c"/, 'c');
        expect(b.transport.stats()).toMatchObject({
          snapshotsReceived: 1,
          snapshotsFailed: 6,
          rejectedStreams: 7,
        });
      } finally {
        client.close();
      }
    });

    it('is refused when its configuration does not decode, before the handler sees it', async () => {
      const { seen, handler } = hashingHandler();
      const { b } = await pair(handler);
      const client = new grpc.Client(b.address, grpc.credentials.createInsecure());
      try {
        const bytes = pseudoRandom(10, 3);
        const text = new TextEncoder();
        for (const [config, reason] of [
          ['not json', /not JSON/],
          ['{"voters":["a"],"outgoing":[],"learners":["a"]}', /a is both a learner and a voter/],
          ['[]', /"voters" must be a list of node ids/],
        ] as const) {
          const result = await rawTransfer(client, [
            header(10, { config: text.encode(config) }),
            data(bytes),
            trailer(crc32(bytes)),
          ]);
          expect(result.error?.code, config).toBe(grpc.status.INVALID_ARGUMENT);
          expect(result.error?.details).toMatch(/^snapshot from a: /);
          expect(result.error?.details).toMatch(reason);
        }
        expect(seen.message).toBeNull();
        expect(b.transport.stats()).toMatchObject({ rejectedStreams: 3, snapshotsReceived: 0 });

        // The same by hand with a good configuration is accepted, and the handler gets it decoded.
        const good = { voters: ['a', 'b'], outgoing: [], learners: [], context: '' };
        const ok = await rawTransfer(client, [
          header(10, { config: text.encode(JSON.stringify(good)) }),
          data(bytes),
          trailer(crc32(bytes)),
        ]);
        expect(ok).toEqual({ error: null, ack: { accepted: true, error: '' } });
        expect(seen.message?.snapshot).toStrictEqual({ index: 120, term: 7, config: good });
      } finally {
        client.close();
      }
    });

    it('is refused while another transfer from the same sender runs', async () => {
      const release = deferred();
      releases.push(release);
      const arrived = deferred();
      const { b } = await pair(async (_m, chunks) => {
        arrived.resolve();
        await release.promise;
        for await (const _chunk of chunks);
      });
      const client = new grpc.Client(b.address, grpc.credentials.createInsecure());
      try {
        const bytes = pseudoRandom(10, 2);
        const first = rawTransfer(client, [header(10), data(bytes), trailer(crc32(bytes))]);
        await arrived.promise;
        const second = await rawTransfer(client, [header(10), data(bytes), trailer(crc32(bytes))]);
        expect(second.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
        expect(second.error?.details).toBe('a snapshot transfer from a is already running');
        release.resolve();
        expect(await first).toEqual({ error: null, ack: { accepted: true, error: '' } });
      } finally {
        client.close();
      }
    });
  });
});

/** Polls `condition` until it holds; fails with `what` after the deadline. */
