// The cluster under test: N nodes as child processes (bin/rafting with --data-dir), every directed peer link
// A→B through a LinkProxy (node A's config says `dial: { B: <proxy> }`), each node's output in <out>/logs.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LinkProxy } from './proxy.js';

const bin = fileURLToPath(new URL('../../bin/rafting', import.meta.url));

export interface NodeStatus {
  readonly id: string;
  readonly role: string;
  readonly term: number;
  readonly leader: string | null;
  readonly commitIndex: number;
  readonly lastApplied: number;
  readonly lastLogIndex: number;
}

export interface ClusterTiming {
  readonly electionTimeoutMinMs: number;
  readonly electionTimeoutMaxMs: number;
  readonly requestTimeoutMs: number;
}

export const defaultTiming: ClusterTiming = {
  electionTimeoutMinMs: 150,
  electionTimeoutMaxMs: 300,
  requestTimeoutMs: 1500,
};

/** Ports that were free a moment ago on 127.0.0.1 (all held open together, so none is handed out twice). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Server>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/** GET /status of the node at `baseUrl`, or undefined when it does not answer 200 within `timeoutMs`. */
export async function fetchStatus(baseUrl: string, timeoutMs = 1000): Promise<NodeStatus | undefined> {
  try {
    const res = await fetch(`${baseUrl}/status`, { signal: AbortSignal.timeout(timeoutMs) });
    if (res.status !== 200) return undefined;
    return (await res.json()) as NodeStatus;
  } catch {
    return undefined;
  }
}

/** Every child process any ChaosCluster started, so that an exiting runner can kill them all. */
const everyChild = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of everyChild) child.kill('SIGKILL');
});

/** The faults of one directed link A→B: its gRPC proxy (Raft messages) and its HTTP proxy (forwarded requests). */
export class LinkControl {
  constructor(readonly proxies: readonly LinkProxy[]) {}

  block(): void {
    for (const p of this.proxies) p.block();
  }

  unblock(): void {
    for (const p of this.proxies) p.unblock();
  }

  delay(ms: number): void {
    for (const p of this.proxies) p.delay(ms);
  }
}

export class ChaosCluster {
  readonly #procs = new Map<string, ChildProcess>();
  readonly #paused = new Set<string>();
  /**
   * `from→to` → the proxy that carries from's gRPC connections to to; `from⇒to`, its HTTP connections (a follower
   * forwarding a write or asking for a read index).
   */
  readonly #proxies = new Map<string, LinkProxy>();

  private constructor(
    readonly dir: string,
    readonly ids: readonly string[],
    readonly web: Readonly<Record<string, string>>,
    readonly configPath: string,
    proxies: Map<string, LinkProxy>,
    readonly timing: ClusterTiming,
  ) {
    this.#proxies = proxies;
  }

  /** Writes the config into `dir` and starts the proxies (not the nodes: see startAll). */
  static async create(
    dir: string,
    size: number,
    timing: ClusterTiming = defaultTiming,
    random: () => number = Math.random,
  ): Promise<ChaosCluster> {
    const ids = Array.from({ length: size }, (_, i) => `node${i + 1}`);
    // One call for every port (nodes and the two proxies of each link), so that no proxy can take a node's port.
    const links = size * (size - 1);
    const ports = await freePorts(size * 2 + links * 2);
    let nextProxyPort = size * 2;
    const proxyPort = (): number => ports[nextProxyPort++]!;
    const grpc: Record<string, number> = {};
    const web: Record<string, string> = {};
    ids.forEach((id, i) => {
      grpc[id] = ports[i]!;
      web[id] = `127.0.0.1:${ports[size + i]!}`;
    });
    const proxies = new Map<string, LinkProxy>();
    try {
      for (const from of ids) {
        for (const to of ids) {
          if (from === to) continue;
          proxies.set(
            `${from}→${to}`,
            await LinkProxy.start({
              targetHost: '127.0.0.1',
              targetPort: grpc[to]!,
              listenPort: proxyPort(),
              random,
            }),
          );
          proxies.set(
            `${from}⇒${to}`,
            await LinkProxy.start({
              targetHost: '127.0.0.1',
              targetPort: Number(web[to]!.split(':')[1]),
              random,
            }),
          );
        }
      }
    } catch (e) {
      await Promise.all([...proxies.values()].map((p) => p.close()));
      throw e;
    }
    const lines = [
      '# Written by the chaos runner: every peer link goes through proxies (dial, web_dial).',
      'tick_interval_ms: 10',
      `election_timeout_min_ms: ${timing.electionTimeoutMinMs}`,
      `election_timeout_max_ms: ${timing.electionTimeoutMaxMs}`,
      'heartbeat_interval_ms: 50',
      `request_timeout_ms: ${timing.requestTimeoutMs}`,
      'snapshot_threshold_entries: 2000',
      'cluster:',
    ];
    for (const id of ids) {
      lines.push(
        `  - node_id: ${id}`,
        `    grpc_address: 127.0.0.1:${grpc[id]!}`,
        `    web_address: ${web[id]!}`,
        '    dial:',
        ...ids.filter((p) => p !== id).map((p) => `      ${p}: ${proxies.get(`${id}→${p}`)!.address}`),
        '    web_dial:',
        ...ids.filter((p) => p !== id).map((p) => `      ${p}: ${proxies.get(`${id}⇒${p}`)!.address}`),
      );
    }
    await mkdir(join(dir, 'logs'), { recursive: true });
    await mkdir(join(dir, 'data'), { recursive: true });
    const configPath = join(dir, 'cluster.yaml');
    await writeFile(configPath, lines.join('\n') + '\n');
    return new ChaosCluster(dir, ids, web, configPath, proxies, timing);
  }

  url(id: string): string {
    return `http://${this.web[id]!}`;
  }

  /** The link from→to: both its proxies, controlled together. */
  proxy(from: string, to: string): LinkControl {
    const grpc = this.#proxies.get(`${from}→${to}`);
    const web = this.#proxies.get(`${from}⇒${to}`);
    if (grpc === undefined || web === undefined) throw new Error(`no link ${from}→${to}`);
    return new LinkControl([grpc, web]);
  }

  get proxies(): LinkProxy[] {
    return [...this.#proxies.values()];
  }

  running(): string[] {
    return this.ids.filter((id) => this.#procs.has(id));
  }

  isRunning(id: string): boolean {
    return this.#procs.has(id);
  }

  isPaused(id: string): boolean {
    return this.#paused.has(id);
  }

  /** Starts a node (appending its output to <dir>/logs/<id>.log). */
  start(id: string): void {
    if (this.#procs.has(id)) return;
    const fd = openSync(join(this.dir, 'logs', `${id}.log`), 'a');
    let child: ChildProcess;
    try {
      child = spawn(
        process.execPath,
        [bin, '-n', id, '-c', this.configPath, '--data-dir', join(this.dir, 'data', id)],
        { stdio: ['ignore', fd, fd] },
      );
    } finally {
      closeSync(fd);
    }
    everyChild.add(child);
    child.on('exit', () => {
      everyChild.delete(child);
      if (this.#procs.get(id) === child) {
        this.#procs.delete(id);
        this.#paused.delete(id);
      }
    });
    this.#procs.set(id, child);
  }

  startAll(): void {
    for (const id of this.ids) this.start(id);
  }

  /** SIGKILL, and wait until the process is gone (so its ports are free for a restart). */
  async kill(id: string): Promise<void> {
    const child = this.#procs.get(id);
    if (child === undefined) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  pause(id: string): void {
    const child = this.#procs.get(id);
    if (child === undefined || this.#paused.has(id)) return;
    child.kill('SIGSTOP');
    this.#paused.add(id);
  }

  resume(id: string): void {
    const child = this.#procs.get(id);
    if (child === undefined || !this.#paused.has(id)) return;
    child.kill('SIGCONT');
    this.#paused.delete(id);
  }

  /** Undoes every fault: proxies clean, paused nodes resumed, dead nodes restarted. */
  healAll(): void {
    for (const p of this.#proxies.values()) p.heal();
    for (const id of this.ids) {
      this.resume(id);
      this.start(id);
    }
  }

  status(id: string, timeoutMs = 1000): Promise<NodeStatus | undefined> {
    return fetchStatus(this.url(id), timeoutMs);
  }

  /** A leader that a majority of the nodes agree on (same term), or undefined. */
  async agreedLeader(): Promise<string | undefined> {
    const all = (await Promise.all(this.ids.map((id) => this.status(id)))).filter(
      (s): s is NodeStatus => s !== undefined,
    );
    const leader = all.find((s) => s.role === 'leader');
    if (leader === undefined) return undefined;
    const agree = all.filter((s) => s.leader === leader.id && s.term === leader.term).length;
    return agree > this.ids.length / 2 ? leader.id : undefined;
  }

  /** SIGKILLs every node and closes every proxy. */
  async stop(): Promise<void> {
    await Promise.all(this.ids.map((id) => this.kill(id)));
    await Promise.all([...this.#proxies.values()].map((p) => p.close()));
  }
}

/** Polls `probe` every `intervalMs` until it returns a value, or gives up after `timeoutMs`. */
export async function pollUntil<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 50,
): Promise<T | undefined> {
  const deadline = performance.now() + timeoutMs;
  while (true) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() >= deadline) return undefined;
    await sleep(intervalMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
