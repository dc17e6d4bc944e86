// The client commands: `status`, `put`, `get` and `delete`.

import { loadClusterConfig } from '../config/load.js';
import type { NodeConfig } from '../config/types.js';
import type { NodeStatus } from '../node/api.js';
import { DEFAULT_CONFIG_PATH, expectPositionals, parseCommandLine, UsageError } from './args.js';
import { ClientError, normalizeBaseUrl, RaftingClient } from './client.js';
import type { CliDeps } from './deps.js';
import { usage } from './usage.js';

/** How long put, get and delete keep trying while the cluster has no leader (an election takes ~0.3 s). */
const leaderWaitMs = 3000;

export const clientOptions = {
  config: { type: 'string', short: 'c', default: DEFAULT_CONFIG_PATH },
  url: { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

/** A node to ask: its id when the config names it, and the base URL of its REST API. */
interface Target {
  readonly id: string | undefined;
  readonly url: string;
}

export async function runStatus(args: readonly string[], io: CliDeps): Promise<number> {
  const command = 'rafting status';
  const { values, positionals } = parseCommandLine(command, args, clientOptions);
  if (values.help === true) return help(io, usage.status);
  expectPositionals(command, positionals, []);
  const targets = await resolveTargets(command, values);
  const client = new RaftingClient(
    targets.map((target) => target.url),
    { fetch: io.fetch },
  );
  const results = await client.status();
  const rows = targets.map((target, index): StatusRow => {
    const result = results[index];
    const status = result !== undefined && 'status' in result ? result.status : null;
    return { id: target.id ?? status?.id ?? '?', address: new URL(target.url).host, status };
  });
  io.out(formatStatusTable(rows));
  return 0;
}

export async function runPut(args: readonly string[], io: CliDeps): Promise<number> {
  const command = 'rafting put';
  const { values, positionals } = parseCommandLine(command, args, clientOptions);
  if (values.help === true) return help(io, usage.put);
  expectPositionals(command, positionals, ['KEY', 'VALUE']);
  const [key, value] = positionals as [string, string];
  checkKey(command, key);
  const client = await clientFor(command, values, io);
  io.out(`${JSON.stringify(await client.put(key, value))}\n`);
  return 0;
}

export async function runGet(args: readonly string[], io: CliDeps): Promise<number> {
  const command = 'rafting get';
  const { values, positionals } = parseCommandLine(command, args, {
    ...clientOptions,
    stale: { type: 'boolean' },
  });
  if (values.help === true) return help(io, usage.get);
  expectPositionals(command, positionals, ['KEY']);
  const [key] = positionals as [string];
  checkKey(command, key);
  const client = await clientFor(command, values, io);
  const result = await client.get(key, values.stale === true ? 'stale' : 'linearizable');
  if (result === null) throw new ClientError('not_found', `key ${JSON.stringify(key)} not found`, 404);
  io.out(`${JSON.stringify(result)}\n`);
  return 0;
}

export async function runDelete(args: readonly string[], io: CliDeps): Promise<number> {
  const command = 'rafting delete';
  const { values, positionals } = parseCommandLine(command, args, clientOptions);
  if (values.help === true) return help(io, usage.delete);
  expectPositionals(command, positionals, ['KEY']);
  const [key] = positionals as [string];
  checkKey(command, key);
  const client = await clientFor(command, values, io);
  io.out(`${JSON.stringify(await client.delete(key))}\n`);
  return 0;
}

export async function runTransfer(args: readonly string[], io: CliDeps): Promise<number> {
  const command = 'rafting transfer';
  const { values, positionals } = parseCommandLine(command, args, clientOptions);
  if (values.help === true) return help(io, usage.transfer);
  expectPositionals(command, positionals, ['NODE_ID']);
  const [to] = positionals as [string];
  const client = await clientFor(command, values, io);
  io.out(`${JSON.stringify(await client.transferLeadership(to))}\n`);
  return 0;
}

/** One line of the `status` table; `status` is null when the node did not answer. */
export interface StatusRow {
  readonly id: string;
  /** host:port of the node's REST API. */
  readonly address: string;
  readonly status: NodeStatus | null;
}

const statusColumns = ['NODE', 'ROLE', 'TERM', 'LEADER', 'COMMIT', 'APPLIED', 'ADDRESS'] as const;

/** The `status` table, columns aligned, one line per node, ending with a newline. */
export function formatStatusTable(rows: readonly StatusRow[]): string {
  const cells = rows.map(({ id, address, status }) =>
    status === null
      ? [id, 'down', '-', '-', '-', '-', address]
      : [
          id,
          status.role,
          String(status.term),
          status.leader ?? '-',
          String(status.commitIndex),
          String(status.lastApplied),
          address,
        ],
  );
  const table = [[...statusColumns], ...cells];
  const widths = statusColumns.map((_, column) =>
    Math.max(...table.map((line) => (line[column] ?? '').length)),
  );
  const lines = table.map((line) =>
    line
      .map((cell, column) => (column === line.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  '),
  );
  return `${lines.join('\n')}\n`;
}

function help(io: CliDeps, text: string): number {
  io.out(text);
  return 0;
}

function checkKey(command: string, key: string): void {
  if (key === '') throw new UsageError(`${command}: KEY must not be empty`);
}

async function clientFor(
  command: string,
  values: { config: string; url?: string[] | undefined },
  io: CliDeps,
): Promise<RaftingClient> {
  const targets = await resolveTargets(command, values);
  return new RaftingClient(
    targets.map((target) => target.url),
    { fetch: io.fetch, retryForMs: leaderWaitMs },
  );
}

/** The nodes named by --url, else every node of the config. */
export async function resolveTargets(
  command: string,
  values: { config: string; url?: string[] | undefined },
): Promise<Target[]> {
  if (values.url !== undefined) {
    return values.url.map((url) => {
      try {
        return { id: undefined, url: normalizeBaseUrl(url) };
      } catch {
        throw new UsageError(
          `${command}: --url: expected a URL like http://127.0.0.1:8081, got ${JSON.stringify(url)}`,
        );
      }
    });
  }
  const config = await loadClusterConfig(values.config);
  return config.nodes.map((node) => ({ id: node.id, url: nodeUrl(node) }));
}

/** The base URL of a node's REST API. */
export function nodeUrl(node: Pick<NodeConfig, 'webAddress'>): string {
  return `http://${node.webAddress}`;
}
