// `rafting [run] -n NODE_ID -c CONFIG`: runs one node until SIGINT or SIGTERM.

import pino from 'pino';
import {
  addressPattern,
  ConfigError,
  configDefaults,
  idPattern,
  loadClusterConfig,
  nodeConfig,
} from '../config/load.js';
import type { ClusterConfig } from '../config/types.js';
import type { MembersResult } from '../node/api.js';
import { DEFAULT_CONFIG_PATH, expectPositionals, parseCommandLine, UsageError } from './args.js';
import { ClientError, normalizeBaseUrl, RaftingClient } from './client.js';
import type { CliDeps, NodeHandle } from './deps.js';
import { usage } from './usage.js';

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** How long a node may take to shut down before the process gives up on it. */
const closeTimeoutMs = 10_000;

export async function runNode(args: readonly string[], io: CliDeps): Promise<number> {
  const command = 'rafting run';
  const { values, positionals } = parseCommandLine(command, args, {
    node: { type: 'string', short: 'n' },
    config: { type: 'string', short: 'c', default: DEFAULT_CONFIG_PATH },
    'data-dir': { type: 'string' },
    'log-level': { type: 'string', default: 'info' },
    join: { type: 'string' },
    'grpc-address': { type: 'string' },
    'web-address': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help === true) {
    io.out(usage.run);
    return 0;
  }
  expectPositionals(command, positionals, []);
  const nodeId = values.node;
  if (nodeId === undefined || nodeId === '') throw new UsageError(`${command}: -n/--node ID is required`);
  const logLevel = checkLogLevel(command, values['log-level']);
  const dataDir = values['data-dir'];
  if (dataDir === '') throw new UsageError(`${command}: --data-dir needs a directory`);

  const joinUrl = values.join;
  if (joinUrl === undefined && (values['grpc-address'] ?? values['web-address']) !== undefined) {
    throw new UsageError(`${command}: --grpc-address and --web-address go with --join`);
  }
  const config =
    joinUrl === undefined
      ? await loadClusterConfig(values.config)
      : await joinConfig(command, joinUrl, nodeId, values['grpc-address'], values['web-address'], io);
  let configuredDataDir: string | undefined;
  try {
    configuredDataDir = nodeConfig(config, nodeId).dataDir;
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(`${values.config}: ${error.message}`);
    throw error;
  }

  const logger = pino({ level: logLevel }, io.logDestination).child({ node: nodeId });
  const chosenDataDir = dataDir ?? configuredDataDir;
  // Listen before starting so that a signal during startup still closes the node cleanly. Later signals are
  // ignored while the node closes: `cluster` and a terminal's Ctrl-C may both send one.
  let signal: NodeJS.Signals | undefined;
  let wake = (): void => {};
  const stopListening = io.onShutdownSignal((received) => {
    signal ??= received;
    wake();
  });
  let node: NodeHandle;
  try {
    node = await io.startNode({
      config,
      nodeId,
      logger,
      ...(chosenDataDir === undefined ? {} : { dataDir: chosenDataDir }),
      ...(joinUrl === undefined ? {} : { join: true }),
    });
  } catch (error) {
    stopListening();
    logger.fatal({ err: error }, 'failed to start');
    io.err(`rafting: ${nodeId} failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  if (signal === undefined) await new Promise<void>((resolve) => (wake = resolve));
  logger.info(`received ${signal ?? 'a signal'}, shutting down`);
  const status = await closeNode(node, logger);
  stopListening();
  return status;
}

/**
 * `--join URL`: the cluster's members, id and settings from GET URL/cluster/members, as a config for this node.
 * A node that is not a member yet is added as a learner first (its addresses are then required).
 */
async function joinConfig(
  command: string,
  url: string,
  nodeId: string,
  grpcAddress: string | undefined,
  webAddress: string | undefined,
  io: CliDeps,
): Promise<ClusterConfig> {
  let base: string;
  try {
    base = normalizeBaseUrl(url);
  } catch {
    throw new UsageError(
      `${command}: --join: expected a URL like http://127.0.0.1:8081, got ${JSON.stringify(url)}`,
    );
  }
  for (const [flag, value] of [
    ['--grpc-address', grpcAddress],
    ['--web-address', webAddress],
  ] as const) {
    if (value !== undefined && !addressPattern.test(value)) {
      throw new UsageError(`${command}: ${flag}: expected "host:port", got ${JSON.stringify(value)}`);
    }
  }
  const client = new RaftingClient([base], { fetch: io.fetch, retryForMs: 3000, requestTimeoutMs: 30_000 });
  let cluster: MembersResult = await client.members();
  if (typeof cluster.clusterId !== 'string' || !idPattern.test(cluster.clusterId)) {
    throw new ClientError('bad_response', `${base} answered an unusable cluster id`);
  }
  let self = cluster.members.find((m) => m.id === nodeId);
  if (self === undefined) {
    if (grpcAddress === undefined || webAddress === undefined) {
      throw new ClientError(
        'not_a_member',
        `${nodeId} is not a member of the cluster at ${base}; add it with \`rafting members add ${nodeId} ` +
          `--grpc-address HOST:PORT --web-address HOST:PORT\`, or pass those two options with --join`,
      );
    }
    cluster = await client.addMember(nodeId, { grpcAddress, webAddress }, 'learner');
    self = cluster.members.find((m) => m.id === nodeId);
    if (self === undefined)
      throw new ClientError('bad_response', `${base} added ${nodeId} but does not list it`);
  } else if (
    (grpcAddress !== undefined && grpcAddress !== self.grpcAddress) ||
    (webAddress !== undefined && webAddress !== self.webAddress)
  ) {
    throw new UsageError(
      `${command}: ${nodeId} is already a member with gRPC ${self.grpcAddress} and web ${self.webAddress}; ` +
        'remove it first to change its addresses',
    );
  }
  // The settings come from another process: take only the known ones, and only sound values.
  const settings = { ...configDefaults } as Record<keyof typeof configDefaults, number>;
  for (const key of Object.keys(configDefaults) as (keyof typeof configDefaults)[]) {
    const value: unknown = (cluster.settings as Partial<Record<string, unknown>>)[key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
      throw new ClientError(
        'bad_response',
        `${base} answered an unusable setting ${key}: ${JSON.stringify(value)}`,
      );
    }
    settings[key] = value;
  }
  return {
    ...settings,
    clusterId: cluster.clusterId,
    nodes: cluster.members.map((m) => ({
      id: m.id,
      grpcAddress: m.grpcAddress,
      webAddress: m.webAddress,
      peers: [],
    })),
  };
}

/** Closes the node within closeTimeoutMs; 0 when it closed cleanly, else 1. */
async function closeNode(node: NodeHandle, logger: pino.Logger): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), closeTimeoutMs);
  });
  try {
    const outcome = await Promise.race([node.close().then(() => 'closed' as const), timeout]);
    if (outcome === 'timeout') {
      logger.error(`did not shut down within ${closeTimeoutMs} ms; exiting anyway`);
      return 1;
    }
    logger.info('stopped');
    return 0;
  } catch (error) {
    logger.error({ err: error }, 'failed to shut down cleanly');
    return 1;
  } finally {
    clearTimeout(timer);
  }
}

export function checkLogLevel(command: string, level: string): string {
  if ((logLevels as readonly string[]).includes(level)) return level;
  throw new UsageError(
    `${command}: unknown --log-level ${JSON.stringify(level)}; use one of ${logLevels.join(', ')}`,
  );
}
