// A Rafting cluster for the benchmark: N nodes started with bin/rafting on loopback, each with its own
// --data-dir (so every write is fsynced), no proxies in between (unlike the chaos runner's cluster).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchStatus, freePorts, type NodeStatus } from '../chaos/cluster.js';
import { BenchCluster, memberIds, type Command, type Endpoint, type LeaderView } from './cluster.js';

const bin = fileURLToPath(new URL('../../bin/rafting', import.meta.url));

/** Rafting's timing in the benchmark: the shipped defaults (config/cluster_config.yaml). */
export const raftingTiming = {
  tickIntervalMs: 10,
  heartbeatIntervalMs: 50,
  electionTimeoutMinMs: 150,
  electionTimeoutMaxMs: 300,
  requestTimeoutMs: 5000,
} as const;

export interface RaftingOptions {
  /** Extra arguments for node itself, before the script (e.g. --cpu-prof). */
  readonly nodeArgs?: readonly string[];
}

export class RaftingCluster extends BenchCluster {
  readonly system = 'rafting' as const;

  private constructor(
    dir: string,
    ids: readonly string[],
    readonly configPath: string,
    readonly web: Readonly<Record<string, Endpoint>>,
    readonly options: RaftingOptions,
  ) {
    super(dir, ids);
  }

  /** Writes the config into `dir` (nothing is started yet). */
  static async create(dir: string, size: number, options: RaftingOptions = {}): Promise<RaftingCluster> {
    const ids = memberIds(size);
    const ports = await freePorts(size * 2);
    const web: Record<string, Endpoint> = {};
    const lines = [
      '# Written by npm run bench: the shipped timing, loopback ports, a data directory per node.',
      `tick_interval_ms: ${raftingTiming.tickIntervalMs}`,
      `election_timeout_min_ms: ${raftingTiming.electionTimeoutMinMs}`,
      `election_timeout_max_ms: ${raftingTiming.electionTimeoutMaxMs}`,
      `heartbeat_interval_ms: ${raftingTiming.heartbeatIntervalMs}`,
      `request_timeout_ms: ${raftingTiming.requestTimeoutMs}`,
      'cluster:',
    ];
    ids.forEach((id, i) => {
      web[id] = { host: '127.0.0.1', port: ports[size + i]! };
      lines.push(
        `  - node_id: ${id}`,
        `    grpc_address: 127.0.0.1:${ports[i]!}`,
        `    web_address: 127.0.0.1:${ports[size + i]!}`,
      );
    });
    mkdirSync(dir, { recursive: true });
    const configPath = join(dir, 'rafting.yaml');
    writeFileSync(configPath, lines.join('\n') + '\n');
    return new RaftingCluster(dir, ids, configPath, web, options);
  }

  endpoint(id: string): Endpoint {
    const e = this.web[id];
    if (e === undefined) throw new Error(`no member ${id}`);
    return e;
  }

  protected command(id: string): Command {
    return {
      command: process.execPath,
      args: [
        ...(this.options.nodeArgs ?? []),
        bin,
        '-n',
        id,
        '-c',
        this.configPath,
        '--data-dir',
        this.dataDir(id),
      ],
    };
  }

  status(id: string, timeoutMs = 1000): Promise<NodeStatus | undefined> {
    return fetchStatus(this.url(id), timeoutMs);
  }

  async view(id: string, timeoutMs = 1000): Promise<LeaderView | undefined> {
    const s = await this.status(id, timeoutMs);
    if (s === undefined) return undefined;
    return { id, isLeader: s.role === 'leader', term: s.term, leader: s.leader };
  }

  async put(id: string, key: string, value: string, timeoutMs = 2000): Promise<boolean> {
    try {
      const res = await fetch(`${this.url(id)}/kv/${encodeURIComponent(key)}`, {
        method: 'PUT',
        body: JSON.stringify({ value }),
        headers: { 'content-type': 'application/json' },
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.arrayBuffer();
      return res.status === 200;
    } catch {
      return false;
    }
  }
}
