// Real nodes as child processes, started with bin/rafting exactly as a user would.

import { spawn, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeTestConfig, type TestClusterFiles } from './config.js';
import { request } from './http.js';
import { freePorts } from './ports.js';
import { waitFor } from './wait.js';

const bin = fileURLToPath(new URL('../../bin/rafting', import.meta.url));

export interface Status {
  id: string;
  role: string;
  term: number;
  leader: string | null;
  commitIndex: number;
  lastApplied: number;
  lastLogIndex: number;
  firstLogIndex: number;
  snapshotIndex: number;
}

export class ProcessCluster {
  readonly #procs = new Map<string, ChildProcess>();
  /** Everything each node printed, for the failure message of a test. */
  readonly logs = new Map<string, string[]>();

  private constructor(
    readonly files: TestClusterFiles,
    /** With durable storage: each node keeps its state in `<dir>/<id>` (passed as --data-dir). */
    readonly durable: boolean,
  ) {}

  static async start(
    size: number,
    extra: Record<string, number | string> = {},
    options: { durable?: boolean } = {},
  ): Promise<ProcessCluster> {
    const cluster = new ProcessCluster(await writeTestConfig(size, extra), options.durable ?? false);
    for (const id of cluster.files.ids) cluster.startNode(id);
    return cluster;
  }

  get ids(): string[] {
    return this.files.ids;
  }

  url(id: string): string {
    return `http://${this.files.web[id]}`;
  }

  startNode(id: string): void {
    const joined = this.#joined.get(id);
    this.#spawn(id, joined === undefined ? ['-c', this.files.configPath] : joined);
  }

  /** Addresses and --join arguments of the nodes started with `join` instead of the config file. */
  readonly #joined = new Map<string, string[]>();

  /**
   * Starts a node the config file does not list: `bin/rafting -n ID --join URL --grpc-address ... --web-address
   * ...`, which adds it as a learner unless it is a member already. `startNode(id)` restarts it the same way.
   */
  async join(id: string, joinUrl: string): Promise<void> {
    const [grpc, web] = await freePorts(2);
    const address = { grpc: `127.0.0.1:${grpc}`, web: `127.0.0.1:${web}` };
    this.files.web[id] = address.web;
    this.files.ids.push(id);
    const args = ['--join', joinUrl, '--grpc-address', address.grpc, '--web-address', address.web];
    this.#joined.set(id, args);
    this.#spawn(id, args);
  }

  #spawn(id: string, extraArgs: readonly string[]): void {
    if (this.#procs.has(id)) throw new Error(`${id} is already running`);
    const args = [bin, '-n', id, ...extraArgs];
    if (this.durable) args.push('--data-dir', this.dataDir(id));
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const log = this.logs.get(id) ?? [];
    this.logs.set(id, log);
    const keep = (chunk: Buffer) => {
      log.push(chunk.toString());
      if (log.length > 2000) log.splice(0, 1000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('exit', () => {
      if (this.#procs.get(id) === child) this.#procs.delete(id);
    });
    this.#procs.set(id, child);
  }

  dataDir(id: string): string {
    return join(this.files.dir, id);
  }

  /** Deletes a (stopped) node's data directory: the node comes back as a new, empty member. */
  async wipe(id: string): Promise<void> {
    if (this.#procs.has(id)) throw new Error(`${id} is running`);
    await rm(this.dataDir(id), { recursive: true, force: true });
  }

  running(): string[] {
    return [...this.#procs.keys()];
  }

  /** Sends `signal` and waits for the process to exit. */
  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#procs.get(id);
    if (child === undefined) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
    this.#procs.delete(id);
  }

  /** Sends a signal without waiting (SIGSTOP / SIGCONT). */
  signal(id: string, signal: NodeJS.Signals): void {
    const child = this.#procs.get(id);
    if (child === undefined) throw new Error(`${id} is not running`);
    child.kill(signal);
  }

  async status(id: string): Promise<Status> {
    const res = await request('GET', `${this.url(id)}/status`, undefined, 1000);
    return res.body as Status;
  }

  /** Waits until every running node agrees on one leader, and returns it. */
  async waitForLeader(timeoutMs = 10_000, among = this.running()): Promise<string> {
    return waitFor(
      `one leader agreed by ${among.join(', ')}`,
      async () => {
        const all = await Promise.all(among.map((id) => this.status(id)));
        const leaders = all.filter((s) => s.role === 'leader');
        const leader = leaders[0];
        if (leaders.length !== 1 || leader === undefined) return undefined;
        return all.every((s) => s.leader === leader.id && s.term === leader.term) ? leader.id : undefined;
      },
      timeoutMs,
    );
  }

  async stop(): Promise<void> {
    await Promise.all(this.running().map((id) => this.kill(id, 'SIGKILL')));
    await rm(this.files.dir, { recursive: true, force: true });
  }

  /** The tail of every node's output, for diagnosing a failed test. */
  dump(): string {
    return [...this.logs]
      .map(([id, lines]) => `--- ${id}\n${lines.join('').split('\n').slice(-40).join('\n')}`)
      .join('\n');
  }
}
