// `rafting cluster` (what `npm start` runs): one child process per node of the config, their logs merged into
// one readable stream, and a short guide once a leader is elected. Ctrl-C stops them all.

import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { loadClusterConfig } from '../config/load.js';
import type { ClusterConfig } from '../config/types.js';
import type { NodeStatus } from '../node/api.js';
import type { NodeId } from '../raft/types.js';
import { DEFAULT_CONFIG_PATH, expectPositionals, parseCommandLine } from './args.js';
import { RaftingClient } from './client.js';
import type { CliDeps } from './deps.js';
import { nodeUrl } from './requests.js';
import { checkLogLevel } from './run.js';
import { usage } from './usage.js';

/** How long to wait for a leader before saying so. */
const leaderWaitMs = 10_000;
const leaderPollMs = 250;
/** How long the nodes get to stop after SIGTERM before they are killed. */
const stopGraceMs = 3000;

const ansiColors = [36, 35, 33, 32, 34, 96, 95, 93, 92, 94] as const;

export async function runCluster(args: readonly string[], io: CliDeps): Promise<number> {
  const command = 'rafting cluster';
  const { values, positionals } = parseCommandLine(command, args, {
    config: { type: 'string', short: 'c', default: DEFAULT_CONFIG_PATH },
    'log-level': { type: 'string', default: 'info' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help === true) {
    io.out(usage.cluster);
    return 0;
  }
  expectPositionals(command, positionals, []);
  const logLevel = checkLogLevel(command, values['log-level']);
  const config = await loadClusterConfig(values.config);
  const supervisor = new Supervisor(io, config, { configPath: resolve(values.config), logLevel });
  const stopListening = io.onShutdownSignal(() => supervisor.stop());
  const announced = announceLeader(io, config, supervisor, values.config);
  const status = await supervisor.exited;
  stopListening();
  await announced;
  return status;
}

/** The node processes: started together, watched, and stopped with SIGTERM then SIGKILL. */
class Supervisor {
  /** Resolves once every node has exited: 0 if they were asked to stop, 1 if they all died on their own. */
  readonly exited: Promise<number>;
  private readonly running = new Map<NodeId, ChildProcess>();
  private stopping = false;
  private killTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly io: CliDeps,
    config: ClusterConfig,
    options: { configPath: string; logLevel: string },
  ) {
    const width = Math.max(...config.nodes.map((node) => node.id.length));
    const exits = config.nodes.map((node, index) => {
      const color = io.isTTY ? ansiColors[index % ansiColors.length] : undefined;
      return this.start(node.id, formatPrefix(node.id, width, color), options);
    });
    this.exited = Promise.all(exits).then(() => {
      clearTimeout(this.killTimer);
      return this.stopping ? 0 : 1;
    });
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  get runningCount(): number {
    return this.running.size;
  }

  /** First call: SIGTERM to every node, SIGKILL to those left after stopGraceMs. Second call: SIGKILL now. */
  stop(): void {
    if (this.stopping) {
      this.io.out(`killing ${this.running.size} node(s)\n`);
      this.signalAll('SIGKILL');
      return;
    }
    this.stopping = true;
    if (this.running.size === 0) return;
    this.io.out(`stopping ${this.running.size} node(s) (again to kill them now)\n`);
    this.signalAll('SIGTERM');
    this.killTimer = setTimeout(() => {
      if (this.running.size === 0) return;
      this.io.out(
        `killing ${[...this.running.keys()].join(', ')}: still running ${stopGraceMs} ms after SIGTERM\n`,
      );
      this.signalAll('SIGKILL');
    }, stopGraceMs);
  }

  private signalAll(signal: NodeJS.Signals): void {
    for (const child of this.running.values()) child.kill(signal);
  }

  /** Starts one node; resolves when its process has exited and its output is drained. */
  private start(
    id: NodeId,
    prefix: string,
    options: { configPath: string; logLevel: string },
  ): Promise<void> {
    const { command, args } = this.io.nodeProcess({ nodeId: id, ...options });
    const child = spawn(command, [...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.running.set(id, child);
    forEachLine(child.stdout, (line) => this.io.out(`${prefix}${formatLogLine(line)}\n`));
    forEachLine(child.stderr, (line) => this.io.err(`${prefix}${line}\n`));
    child.on('error', (error) => this.io.err(`${prefix}could not start: ${error.message}\n`));
    return new Promise((done) => {
      child.on('close', (code, signal) => {
        this.running.delete(id);
        const how = describeExit(code, signal);
        if (this.stopping) this.io.out(`${prefix}stopped (${how})\n`);
        else this.io.err(`${prefix}exited unexpectedly (${how}); not restarting it\n`);
        done();
      });
    });
  }
}

/** Polls the nodes until one is leader, then prints the banner; gives up after leaderWaitMs. */
async function announceLeader(
  io: CliDeps,
  config: ClusterConfig,
  supervisor: Supervisor,
  configPath: string,
): Promise<void> {
  const nodes = config.nodes.map((node) => ({ id: node.id, url: nodeUrl(node) }));
  const client = new RaftingClient(
    nodes.map((node) => node.url),
    { fetch: io.fetch },
  );
  const deadline = Date.now() + leaderWaitMs;
  while (Date.now() < deadline) {
    await new Promise((wake) => setTimeout(wake, leaderPollMs));
    if (supervisor.isStopping || supervisor.runningCount === 0) return;
    const results = await client.status();
    const leader = results
      .map((result) => ('status' in result ? result.status : null))
      .find((status): status is NodeStatus => status?.role === 'leader');
    if (leader !== undefined && !supervisor.isStopping) {
      const statusCommand =
        configPath === DEFAULT_CONFIG_PATH ? 'bin/rafting status' : `bin/rafting status -c ${configPath}`;
      io.out(formatClusterBanner({ clusterId: config.clusterId, leader, nodes, statusCommand }));
      return;
    }
  }
  if (!supervisor.isStopping) {
    io.err(
      `no leader after ${leaderWaitMs / 1000} s; the nodes keep running (see their logs, or bin/rafting status)\n`,
    );
  }
}

function forEachLine(stream: Readable, onLine: (line: string) => void): void {
  createInterface({ input: stream, crlfDelay: Infinity }).on('line', onLine);
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal === null ? `exit code ${code ?? '?'}` : `killed by ${signal}`;
}

/** `node1 | `, the node id padded to `width` and colored with ANSI color `color` when given. */
export function formatPrefix(id: NodeId, width: number, color?: number): string {
  const name = id.padEnd(width);
  return color === undefined ? `${name} | ` : `\u001b[${color}m${name}\u001b[0m | `;
}

const levelTags: Readonly<Record<number, string>> = {
  10: 'TRACE',
  20: 'DEBUG',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
/** Fields every pino line has, or that the prefix already shows. */
const hiddenFields = new Set(['level', 'time', 'pid', 'hostname', 'node', 'msg', 'err']);
const maxFieldChars = 120;

/**
 * A pino JSON line in short form: `became leader at term 3`, `WARN lost contact peer=node2`.
 * Lines that are not pino JSON come back unchanged.
 */
export function formatLogLine(line: string): string {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return line;
  }
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return line;
  const fields = record as Record<string, unknown>;
  if (typeof fields['level'] !== 'number') return line;
  const parts: string[] = [];
  const tag = levelTags[fields['level']];
  if (tag !== undefined) parts.push(tag);
  if (typeof fields['msg'] === 'string' && fields['msg'] !== '') parts.push(fields['msg']);
  for (const [key, value] of Object.entries(fields)) {
    if (!hiddenFields.has(key)) parts.push(`${key}=${shortValue(value)}`);
  }
  const error = fields['err'];
  if (error !== undefined) {
    const message = typeof error === 'object' && error !== null && 'message' in error ? error.message : error;
    parts.push(`err=${shortValue(message)}`);
  }
  return parts.join(' ');
}

function shortValue(value: unknown): string {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  return text.length > maxFieldChars ? `${text.slice(0, maxFieldChars - 1)}…` : text;
}

export interface ClusterBanner {
  readonly clusterId: string;
  readonly leader: Pick<NodeStatus, 'id' | 'term'>;
  readonly nodes: readonly { readonly id: NodeId; readonly url: string }[];
  /** How to run `status` against this cluster, e.g. `bin/rafting status`. */
  readonly statusCommand: string;
}

/** The box printed once the cluster has a leader: who leads, where each node listens, what to try. */
export function formatClusterBanner({ clusterId, leader, nodes, statusCommand }: ClusterBanner): string {
  const leaderUrl = nodes.find((node) => node.id === leader.id)?.url ?? nodes[0]?.url ?? '';
  const followerUrl = nodes.find((node) => node.id !== leader.id)?.url ?? leaderUrl;
  const width = Math.max(...nodes.map((node) => node.id.length));
  const body = [
    `Rafting cluster ${clusterId} is up: ${leader.id} leads at term ${leader.term}.`,
    '',
    ...nodes.map(
      (node) => `  ${node.id.padEnd(width)}  ${node.url}${node.id === leader.id ? '  (leader)' : ''}`,
    ),
    '',
    'Try:',
    `  curl -X POST ${leaderUrl}/command -H 'Content-Type: application/json' -d '{"key":"a","value":"1"}'`,
    `  curl ${followerUrl}/kv/a?consistency=stale`,
    `  curl ${followerUrl}/kv/a    # any node answers; a follower asks the leader first`,
    `  ${statusCommand}`,
    '',
    'Ctrl-C stops every node.',
  ];
  const inner = Math.max(...body.map((line) => line.length));
  const rule = '─'.repeat(inner + 2);
  return [`┌${rule}┐`, ...body.map((line) => `│ ${line.padEnd(inner)} │`), `└${rule}┘`, ''].join('\n');
}
