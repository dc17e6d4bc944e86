// What the benchmark needs of a cluster under test, whichever system it is: start and kill members, find the
// leader, write one key. RaftingCluster (rafting.ts) and EtcdCluster (etcd.ts) fill in the commands and the
// HTTP calls; the process handling is shared here.

import type { ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { pollUntil } from '../chaos/cluster.js';
import { spawnTracked, stopChild } from './procs.js';

export const systems = ['rafting', 'etcd'] as const;
export type SystemName = (typeof systems)[number];

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/** What one member says about leadership. */
export interface LeaderView {
  readonly id: string;
  readonly isLeader: boolean;
  readonly term: number;
  /** The member it takes for the leader, by our id (node1...), or null. */
  readonly leader: string | null;
}

export interface Command {
  readonly command: string;
  readonly args: readonly string[];
}

export abstract class BenchCluster {
  abstract readonly system: SystemName;
  readonly #procs = new Map<string, ChildProcess>();

  protected constructor(
    /** Data directories, logs and config live under here. */
    readonly dir: string,
    readonly ids: readonly string[],
  ) {}

  /** The client HTTP address of a member. */
  abstract endpoint(id: string): Endpoint;
  protected abstract command(id: string): Command;
  abstract view(id: string, timeoutMs?: number): Promise<LeaderView | undefined>;
  /** One write; true when it was acknowledged. Never throws. */
  abstract put(id: string, key: string, value: string, timeoutMs?: number): Promise<boolean>;

  url(id: string): string {
    const e = this.endpoint(id);
    return `http://${e.host}:${e.port}`;
  }

  dataDir(id: string): string {
    return join(this.dir, 'data', id);
  }

  /** Starts a member (its output appended to <dir>/logs/<id>.log). */
  start(id: string): void {
    if (this.#procs.has(id)) return;
    mkdirSync(join(this.dir, 'logs'), { recursive: true });
    mkdirSync(this.dataDir(id), { recursive: true });
    const fd = openSync(join(this.dir, 'logs', `${id}.log`), 'a');
    let child: ChildProcess;
    try {
      const { command, args } = this.command(id);
      child = spawnTracked(command, args, { stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    child.once('exit', () => {
      if (this.#procs.get(id) === child) this.#procs.delete(id);
    });
    this.#procs.set(id, child);
  }

  startAll(): void {
    for (const id of this.ids) this.start(id);
  }

  isRunning(id: string): boolean {
    return this.#procs.has(id);
  }

  pid(id: string): number | undefined {
    return this.#procs.get(id)?.pid;
  }

  /** SIGKILL, and wait until the process is gone (so its ports are free for a restart). */
  async kill(id: string): Promise<void> {
    const child = this.#procs.get(id);
    if (child !== undefined) await stopChild(child, 'SIGKILL');
  }

  /** Stops every member: SIGKILL by default; SIGTERM lets a profiled node write its profile. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await Promise.all([...this.#procs.values()].map((c) => stopChild(c, signal)));
  }

  /** A member that says it leads, and that a majority of the members agree on (same term), or undefined. */
  async agreedLeader(timeoutMs = 1000): Promise<LeaderView | undefined> {
    const views = (await Promise.all(this.ids.map((id) => this.view(id, timeoutMs)))).filter(
      (v): v is LeaderView => v !== undefined,
    );
    const leader = views.find((v) => v.isLeader);
    if (leader === undefined) return undefined;
    const agree = views.filter((v) => v.leader === leader.id && v.term === leader.term).length;
    return agree > this.ids.length / 2 ? leader : undefined;
  }

  /** Waits (bounded) for an agreed leader; throws naming the system when there is none. */
  async waitForLeader(timeoutMs = 20_000): Promise<LeaderView> {
    const leader = await pollUntil(() => this.agreedLeader(), timeoutMs, 20);
    if (leader === undefined) {
      throw new Error(`${this.system}: no leader within ${timeoutMs} ms (logs in ${join(this.dir, 'logs')})`);
    }
    return leader;
  }

  /** Waits until every member agrees on one leader and a write through `through` succeeds. */
  async waitHealthy(through: string, timeoutMs = 20_000): Promise<boolean> {
    const ok = await pollUntil(
      async () => {
        const views = await Promise.all(this.ids.map((id) => this.view(id, 500)));
        const first = views[0];
        if (first === undefined || first.leader === null) return undefined;
        if (!views.every((v) => v !== undefined && v.leader === first.leader && v.term === first.term)) {
          return undefined;
        }
        return (await this.put(through, '__bench_health', String(Date.now()), 2000)) ? true : undefined;
      },
      timeoutMs,
      20,
    );
    return ok === true;
  }
}

/** `count` members named node1, node2, ... */
export function memberIds(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `node${i + 1}`);
}
