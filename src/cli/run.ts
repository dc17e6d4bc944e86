// `rafting [run] -n NODE_ID -c CONFIG`: runs one node until SIGINT or SIGTERM.

import pino from 'pino';
import { ConfigError, loadClusterConfig, nodeConfig } from '../config/load.js';
import { DEFAULT_CONFIG_PATH, expectPositionals, parseCommandLine, UsageError } from './args.js';
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

  const config = await loadClusterConfig(values.config);
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
