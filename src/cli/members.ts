// `rafting members list|add|promote|remove`: membership changes from the command line (thesis chapter 4).

import type { MembersResult } from '../node/api.js';
import { expectPositionals, parseCommandLine, UsageError } from './args.js';
import { RaftingClient } from './client.js';
import type { CliDeps } from './deps.js';
import { clientOptions, resolveTargets } from './requests.js';
import { usage } from './usage.js';

/** A promotion waits for the learner to catch up (learner_catchup_timeout_ms, 30 s by default) and then commits. */
const membersTimeoutMs = 120_000;

const subcommands = ['list', 'add', 'promote', 'remove'] as const;

export async function runMembers(args: readonly string[], io: CliDeps): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '-h' || sub === '--help') {
    io.out(usage.members);
    return 0;
  }
  if (!(subcommands as readonly string[]).includes(sub)) {
    throw new UsageError(
      `rafting members: unknown subcommand ${JSON.stringify(sub)}; use one of ${subcommands.join(', ')}`,
    );
  }
  const command = `rafting members ${sub}`;
  const { values, positionals } = parseCommandLine(command, rest, {
    ...clientOptions,
    'grpc-address': { type: 'string' },
    'web-address': { type: 'string' },
    voter: { type: 'boolean' },
  });
  if (values.help === true) {
    io.out(usage.members);
    return 0;
  }
  if (sub !== 'add' && (values['grpc-address'] ?? values['web-address'] ?? values.voter) !== undefined) {
    throw new UsageError(`${command}: --grpc-address, --web-address and --voter belong to "members add"`);
  }
  const targets = await resolveTargets(command, values);
  const client = new RaftingClient(
    targets.map((t) => t.url),
    { fetch: io.fetch, retryForMs: 3000, requestTimeoutMs: membersTimeoutMs },
  );
  let result: MembersResult;
  if (sub === 'list') {
    expectPositionals(command, positionals, []);
    result = await client.members();
  } else {
    expectPositionals(command, positionals, ['NODE_ID']);
    const [id] = positionals as [string];
    if (sub === 'add') {
      const grpcAddress = values['grpc-address'];
      const webAddress = values['web-address'];
      if (grpcAddress === undefined || webAddress === undefined) {
        throw new UsageError(`${command}: --grpc-address HOST:PORT and --web-address HOST:PORT are required`);
      }
      result = await client.addMember(
        id,
        { grpcAddress, webAddress },
        values.voter === true ? 'voter' : 'learner',
      );
    } else if (sub === 'promote') {
      result = await client.promoteMember(id);
    } else {
      result = await client.removeMember(id);
    }
  }
  io.out(formatMembers(result));
  return 0;
}

/** The membership as a table, with the configuration line above it. */
export function formatMembers(result: MembersResult): string {
  const { config } = result;
  const joint = config.joint ? ` (joint: old voters ${config.outgoing.join(', ')})` : '';
  const head = `configuration at index ${config.index}: voters ${config.voters.join(', ')}${
    config.learners.length > 0 ? `; learners ${config.learners.join(', ')}` : ''
  }${joint}`;
  const rows = [
    ['NODE', 'ROLE', 'GRPC', 'WEB', 'MATCH'],
    ...result.members.map((m) => [
      m.id + (m.id === result.leader ? ' *' : ''),
      m.role + (m.outgoing && !config.voters.includes(m.id) ? ' (leaving)' : ''),
      m.grpcAddress,
      m.webAddress,
      m.matchIndex === null ? '-' : String(m.matchIndex),
    ]),
  ];
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length))) ?? [];
  const lines = rows.map((r) =>
    r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c] ?? 0))).join('  '),
  );
  return `${head}\n${lines.join('\n')}\n(* leader)\n`;
}
