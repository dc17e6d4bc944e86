// A TCP proxy for one directed peer link (node A dials node B through it), with fault controls for the chaos
// runner: block, delay and drop.
//
// What each fault means on a TCP byte stream:
// - block(): every open connection is destroyed and new ones are accepted and closed at once (the dialer sees a
//   reset). Nothing gets through until unblock(). gRPC notices and reconnects with backoff, which keeps failing.
// - delay(ms): every chunk read from either side is forwarded `ms` later, in order (a later chunk never overtakes
//   an earlier one, even if the delay is lowered meanwhile).
// - drop(p): TCP never loses bytes inside a connection, so loss is emulated by resetting the connection: each
//   chunk, with probability p, kills the connection (both sides) instead of being forwarded. The chunk and
//   whatever was in flight are lost; gRPC reconnects and Raft re-sends what matters, which is what packet loss
//   amounts to for a protocol on top of TCP.
//
// Buffers are bounded: when more than `maxBufferedBytes` wait in one direction (delayed, or not yet accepted by a
// slow receiver), the sending side is paused until the backlog drains (TCP backpressure, end to end).

import { connect, createServer, type Server, type Socket } from 'node:net';

export interface ProxyOptions {
  /** Where to connect: the target's real address. */
  readonly targetHost: string;
  readonly targetPort: number;
  /** Loss decisions; default Math.random. */
  readonly random?: () => number;
  /** Per direction, per connection. Default 4 MiB. */
  readonly maxBufferedBytes?: number;
  /** Where to listen; default 127.0.0.1, port 0 (any free port). */
  readonly listenPort?: number;
}

interface Pair {
  readonly client: Socket;
  readonly upstream: Socket;
}

export interface ProxyStats {
  accepted: number;
  refused: number;
  dropped: number;
  bytes: number;
}

export class LinkProxy {
  readonly #server: Server;
  readonly #options: ProxyOptions;
  readonly #random: () => number;
  readonly #maxBuffered: number;
  readonly #pairs = new Set<Pair>();
  #blocked = false;
  #delayMs = 0;
  #dropProbability = 0;
  #port = 0;
  readonly stats: ProxyStats = { accepted: 0, refused: 0, dropped: 0, bytes: 0 };

  private constructor(options: ProxyOptions) {
    this.#options = options;
    this.#random = options.random ?? Math.random;
    this.#maxBuffered = options.maxBufferedBytes ?? 4 * 1024 * 1024;
    this.#server = createServer({ pauseOnConnect: true }, (socket) => this.#accept(socket));
  }

  static async start(options: ProxyOptions): Promise<LinkProxy> {
    const proxy = new LinkProxy(options);
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once('error', reject);
      proxy.#server.listen(options.listenPort ?? 0, '127.0.0.1', () => {
        proxy.#server.off('error', reject);
        resolve();
      });
    });
    const address = proxy.#server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy: no port');
    proxy.#port = address.port;
    return proxy;
  }

  get port(): number {
    return this.#port;
  }

  get address(): string {
    return `127.0.0.1:${this.#port}`;
  }

  get blocked(): boolean {
    return this.#blocked;
  }

  get connections(): number {
    return this.#pairs.size;
  }

  /** Cuts every connection and refuses new ones until unblock(). */
  block(): void {
    this.#blocked = true;
    for (const pair of [...this.#pairs]) this.#kill(pair);
  }

  unblock(): void {
    this.#blocked = false;
  }

  /** Forwards every chunk `ms` later (0: at once). */
  delay(ms: number): void {
    this.#delayMs = Math.max(0, ms);
  }

  /** Resets a connection with probability `p` per chunk (0: never). */
  drop(p: number): void {
    this.#dropProbability = Math.min(1, Math.max(0, p));
  }

  /** Back to a clean link: unblocked, no delay, no loss. */
  heal(): void {
    this.unblock();
    this.delay(0);
    this.drop(0);
  }

  async close(): Promise<void> {
    for (const pair of [...this.#pairs]) this.#kill(pair);
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: Socket): void {
    if (this.#blocked) {
      this.stats.refused++;
      reset(client);
      return;
    }
    this.stats.accepted++;
    const upstream = connect({ host: this.#options.targetHost, port: this.#options.targetPort });
    upstream.pause();
    const pair: Pair = { client, upstream };
    this.#pairs.add(pair);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const end = () => this.#kill(pair);
    for (const socket of [client, upstream]) {
      socket.on('error', end);
      socket.on('close', end);
    }
    upstream.once('connect', () => {
      this.#pipe(pair, client, upstream);
      this.#pipe(pair, upstream, client);
      client.resume();
      upstream.resume();
    });
  }

  /** Forwards `from` → `to` with the current delay and loss, pausing `from` while the backlog is too large. */
  #pipe(pair: Pair, from: Socket, to: Socket): void {
    const queue: { chunk: Buffer; at: number }[] = [];
    let queued = 0;
    let timer: NodeJS.Timeout | undefined;
    let waitingForDrain = false;
    const flush = () => {
      timer = undefined;
      while (queue.length > 0 && !waitingForDrain && !to.destroyed) {
        const head = queue[0]!;
        const wait = head.at - performance.now();
        if (wait > 0) {
          timer = setTimeout(flush, Math.max(1, wait));
          return;
        }
        queue.shift();
        queued -= head.chunk.length;
        this.stats.bytes += head.chunk.length;
        if (!to.write(head.chunk)) {
          waitingForDrain = true;
          to.once('drain', () => {
            waitingForDrain = false;
            flush();
          });
        }
      }
      if (!waitingForDrain && queued <= this.#maxBuffered && !from.destroyed) from.resume();
    };
    from.on('data', (chunk: Buffer) => {
      if (this.#dropProbability > 0 && this.#random() < this.#dropProbability) {
        this.stats.dropped++;
        this.#kill(pair);
        return;
      }
      const last = queue[queue.length - 1];
      // In order: never before the chunk ahead of it, even if the delay went down.
      const at = Math.max(performance.now() + this.#delayMs, last?.at ?? 0);
      queue.push({ chunk, at });
      queued += chunk.length;
      if (queued > this.#maxBuffered) from.pause();
      if (timer === undefined && !waitingForDrain) flush();
    });
    const cancel = () => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      queue.length = 0;
    };
    from.once('close', cancel);
    to.once('close', cancel);
  }

  #kill(pair: Pair): void {
    if (!this.#pairs.delete(pair)) return;
    reset(pair.client);
    reset(pair.upstream);
  }
}

/** Closes a socket with a TCP reset (the peer sees ECONNRESET), or plainly if it never connected. */
function reset(socket: Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}
