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
  members   list, add, promote or remove members:  rafting members list
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
       rafting [run] -n NODE_ID --join URL [--grpc-address HOST:PORT --web-address HOST:PORT] [--data-dir DIR]

Runs one node of the cluster until SIGINT or SIGTERM, then shuts it down cleanly.
Logs JSON lines to standard output.

With --join, the node joins the running cluster that answers at URL (any member): it reads the members, the
cluster id and the settings from GET URL/cluster/members, and starts with an empty configuration that it learns
from the leader's log (or snapshot). If NODE_ID is not a member yet, --grpc-address and --web-address add it as
a learner first. Promote it with \`rafting members promote NODE_ID\` once it is running. Restart a joined node
with the same command.

Options:
  -n, --node ID          the node to run: one of the node_id values of the config (required)
${configOption}
      --join URL         join the running cluster at URL instead of reading a config file
      --grpc-address A   with --join: the node's gRPC address, if it must be added
      --web-address A    with --join: the node's REST API address, if it must be added
      --data-dir DIR     where the node keeps its state (default: the node's data_dir in the config)
      --log-level LEVEL  fatal, error, warn, info, debug, trace or silent (default: info)
  -h, --help             show this help

Examples:
  rafting -n node1 -c ${DEFAULT_CONFIG_PATH}
  rafting -n node4 --join http://127.0.0.1:8081 --grpc-address 127.0.0.1:50054 --web-address 127.0.0.1:8084
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

  members: `Usage: rafting members list                                         [-c CONFIG | --url URL...]
       rafting members add NODE_ID --grpc-address A --web-address A [--voter]
       rafting members promote NODE_ID
       rafting members remove NODE_ID

Membership changes at run time (Raft thesis chapter 4), one at a time, each answered once complete:
  list      the members and the configuration in force, as the first node that answers sees it
  add       add NODE_ID as a learner: it receives the log but does not vote. With --voter it is then
            promoted as soon as it has caught up (start the node with \`rafting -n NODE_ID --join URL\`)
  promote   make a learner a voter, once it is within learner_max_lag_entries of the leader
            (waits up to learner_catchup_timeout_ms for it to catch up)
  remove    remove a member; removing the leader hands leadership to another voter first
A change that would leave the new voters without a reachable majority is refused.

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
