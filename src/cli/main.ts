// The `rafting` command: run a node, run a local cluster, or talk to one (bin/rafting calls main()).

import { ConfigError } from '../config/load.js';
import { UsageError } from './args.js';
import { ClientError } from './client.js';
import { runCluster } from './cluster.js';
import { defaultDeps, type CliDeps } from './deps.js';
import { runDelete, runTransfer, runGet, runPut, runStatus } from './requests.js';
import { runMembers } from './members.js';
import { runNode } from './run.js';
import { commandNames, isCommandName, usage, type CommandName } from './usage.js';

export type { CliDeps, NodeHandle, StartNode, StartNodeOptions } from './deps.js';

/**
 * Runs the command line `argv` (without the node and script paths) and resolves with the exit status:
 * 0 on success, 1 when a request or the node fails, 2 for a bad command line or config.
 * `run` and `cluster` resolve only once they have shut down after SIGINT or SIGTERM.
 */
export async function main(argv: readonly string[], deps: Partial<CliDeps> = {}): Promise<number> {
  const io: CliDeps = { ...defaultDeps(), ...deps };
  try {
    return await dispatch(argv, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`${error.message}\n`);
      return 2;
    }
    if (error instanceof ConfigError) {
      io.err(`rafting: ${error.message}\n`);
      return 2;
    }
    if (error instanceof ClientError) {
      io.err(`rafting: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

async function dispatch(argv: readonly string[], io: CliDeps): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help') {
    // With no argument at all there is no node to run: show what the command can do.
    io.out(usage.main);
    return 0;
  }
  if (first.startsWith('-')) return runNode(argv, io);
  if (!isCommandName(first)) {
    throw new UsageError(
      `rafting: unknown command ${JSON.stringify(first)}; the commands are ${commandNames.join(', ')}`,
    );
  }
  return runCommand(first, rest, io);
}

function runCommand(command: CommandName, args: readonly string[], io: CliDeps): Promise<number> | number {
  switch (command) {
    case 'run':
      return runNode(args, io);
    case 'cluster':
      return runCluster(args, io);
    case 'status':
      return runStatus(args, io);
    case 'put':
      return runPut(args, io);
    case 'get':
      return runGet(args, io);
    case 'delete':
      return runDelete(args, io);
    case 'transfer':
      return runTransfer(args, io);
    case 'members':
      return runMembers(args, io);
    case 'help':
      return showHelp(args, io);
  }
}

function showHelp(args: readonly string[], io: CliDeps): number {
  const [topic, ...extra] = args;
  if (topic === undefined || topic === '-h' || topic === '--help') {
    io.out(topic === undefined ? usage.main : usage.help);
    return 0;
  }
  if (!isCommandName(topic)) {
    throw new UsageError(
      `rafting help: unknown command ${JSON.stringify(topic)}; the commands are ${commandNames.join(', ')}`,
    );
  }
  if (extra.length > 0) throw new UsageError(`rafting help: unexpected argument ${JSON.stringify(extra[0])}`);
  io.out(usage[topic]);
  return 0;
}
