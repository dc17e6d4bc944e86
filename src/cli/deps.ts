// What the commands need from the outside world, injectable so that tests run main() in-process.

import { fileURLToPath } from 'node:url';
import type { DestinationStream } from 'pino';
import type { RunningNode, StartNodeOptions } from '../node/start.js';
import type { NodeId } from '../raft/types.js';

// Types only: the runtime itself is loaded on demand (below), so client commands stay light.
export type { StartNodeOptions } from '../node/start.js';

/** What the CLI needs of a started node. */
export type NodeHandle = Pick<RunningNode, 'close' | 'webUrl'>;

export type StartNode = (options: StartNodeOptions) => Promise<NodeHandle>;

/** How `cluster` starts the process of one node. */
export interface NodeProcessCommand {
  readonly command: string;
  readonly args: readonly string[];
}

export interface CliDeps {
  /** Writes text as is to standard output; the commands end their lines with "\n". */
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Whether standard output is a terminal (then `cluster` colors the node names). */
  readonly isTTY: boolean;
  readonly fetch: typeof fetch;
  readonly startNode: StartNode;
  /** Calls `handler` on SIGINT and SIGTERM until the returned function is called. */
  readonly onShutdownSignal: (handler: (signal: NodeJS.Signals) => void) => () => void;
  /** Where `run` writes its JSON log lines. */
  readonly logDestination: DestinationStream;
  /** The command line that runs one node; `cluster` spawns one per node of the config. */
  readonly nodeProcess: (options: {
    nodeId: NodeId;
    configPath: string;
    logLevel: string;
  }) => NodeProcessCommand;
}

/** The `rafting` executable, from src/cli/ or dist/cli/ alike. */
const binPath = fileURLToPath(new URL('../../bin/rafting', import.meta.url));

export function defaultDeps(): CliDeps {
  return {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    isTTY: process.stdout.isTTY === true,
    fetch: globalThis.fetch,
    startNode: async (options) => {
      // Loaded on demand so that the client commands do not load the whole node runtime.
      const start: StartNode = (await import('../node/start.js')).startNode;
      return start(options);
    },
    onShutdownSignal: (handler) => {
      process.on('SIGINT', handler);
      process.on('SIGTERM', handler);
      return () => {
        process.off('SIGINT', handler);
        process.off('SIGTERM', handler);
      };
    },
    logDestination: process.stdout,
    nodeProcess: ({ nodeId, configPath, logLevel }) => ({
      command: process.execPath,
      args: [binPath, '-n', nodeId, '-c', configPath, '--log-level', logLevel],
    }),
  };
}
