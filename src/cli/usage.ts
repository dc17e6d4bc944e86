// The help texts of the `rafting` command.

import { DEFAULT_CONFIG_PATH } from './args.js';

const configOption = `  -c, --config PATH      the cluster config (default: ${DEFAULT_CONFIG_PATH})`;
const clientOptions = `${configOption}
      --url URL          talk to this node instead of the config's nodes, e.g. http://127.0.0.1:8081
                         (may be repeated; nodes are tried in order)
  -h, --help             show this help`;

export const usage = {
  main: `Usage: rafting [COMMAND] [OPTIONS]

Rafting: a Raft cluster that serves a replicated key-value store.

Commands:
  run       run one node (the default command)
  cluster   run every node of the config as child processes (what \`npm start\` runs)
  status    show the role, term and progress of every node
  put       set a key:     rafting put KEY VALUE
  get       read a key:    rafting get KEY [--stale]
  delete    delete a key:  rafting delete KEY
  transfer  hand leadership to a node:  rafting transfer NODE_ID
  help      show the help of a command

Examples:
  rafting -n node1 -c ${DEFAULT_CONFIG_PATH}
  rafting cluster
  rafting put greeting hello
  rafting get greeting --stale
  rafting status

Run \`rafting COMMAND --help\` for the options of a command.
Exit status: 0 on success, 1 when a request or a node fails, 2 for a bad command line or config.
`,

  run: `Usage: rafting [run] -n NODE_ID [-c CONFIG] [--data-dir DIR] [--log-level LEVEL]

Runs one node of the cluster until SIGINT or SIGTERM, then shuts it down cleanly.
Logs JSON lines to standard output.

Options:
  -n, --node ID          the node to run: one of the node_id values of the config (required)
${configOption}
      --data-dir DIR     where the node keeps its state (default: the node's data_dir in the config)
      --log-level LEVEL  fatal, error, warn, info, debug, trace or silent (default: info)
  -h, --help             show this help

Example:
  rafting -n node1 -c ${DEFAULT_CONFIG_PATH}
`,

  cluster: `Usage: rafting cluster [-c CONFIG] [--log-level LEVEL]

Starts one process per node of the config, shows their logs prefixed with the node id, waits for a
leader and prints how to reach the cluster. Ctrl-C stops every node.

Options:
${configOption}
      --log-level LEVEL  the nodes' log level (default: info)
  -h, --help             show this help
`,

  status: `Usage: rafting status [-c CONFIG | --url URL...]

Asks every node for its status (GET /status, 1 s timeout each) and prints a table.
Nodes that do not answer are shown as "down".

Options:
${clientOptions}
`,

  put: `Usage: rafting put KEY VALUE [-c CONFIG | --url URL...]

Sets KEY to VALUE and prints the result: {"key","value","index"}.
Non-leaders redirect the request to the leader.

Options:
${clientOptions}
`,

  get: `Usage: rafting get KEY [--stale] [-c CONFIG | --url URL...]

Prints {"key","value","index"}, or exits with status 1 when the key does not exist.

Options:
      --stale            read from the first node that answers, without asking the leader:
                         faster, but may miss the latest writes (default: a linearizable read)
${clientOptions}
`,

  delete: `Usage: rafting delete KEY [-c CONFIG | --url URL...]

Deletes KEY and prints {"key","deleted","index"}.

Options:
${clientOptions}
`,

  transfer: `Usage: rafting transfer NODE_ID [-c CONFIG | --url URL...]

Hands leadership to NODE_ID (Raft thesis §3.10): the leader brings it up to date, asks it to start an election,
and the command prints {"leader","term"} once it leads. Any node can be asked; followers pass it to the leader.

Options:
${clientOptions}
`,

  help: `Usage: rafting help [COMMAND]

Shows the help of COMMAND, or the list of commands.
`,
} as const;

export type CommandName = Exclude<keyof typeof usage, 'main'>;

export const commandNames = Object.keys(usage).filter((name) => name !== 'main') as CommandName[];

export function isCommandName(name: string): name is CommandName {
  return (commandNames as string[]).includes(name);
}
