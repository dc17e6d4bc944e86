// The runtime's view of membership: where each member can be reached, and how that travels with a configuration.
//
// The core's ConfState says who votes and who learns; it carries an opaque `context`, in which the runtime keeps
// the address book of the members: JSON {"node4":{"grpc":"127.0.0.1:50054","web":"127.0.0.1:8084"},...}. Every
// Config entry and every snapshot therefore holds the addresses of its members, so a node learns how to reach a
// member added at run time from its log, exactly when it learns that the member exists.

import { isJoint } from '../raft/confstate.js';
import type { ConfState, NodeId } from '../raft/types.js';

export interface MemberAddress {
  readonly grpcAddress: string;
  readonly webAddress: string;
}

export type MemberRole = 'voter' | 'learner';

export interface MemberInfo extends MemberAddress {
  readonly id: NodeId;
  readonly role: MemberRole;
  /** While joint (thesis §4.3): the member votes in C_old (and is leaving, if it is not a voter of C_new too). */
  readonly outgoing: boolean;
  /** Leader only: the highest index known replicated on the member; null elsewhere and for the leader itself. */
  readonly matchIndex: number | null;
  /** Leader only: the member answered within the last election timeout; null on other nodes. */
  readonly reachable: boolean | null;
}

/** The configuration in force as the API shows it (GET /cluster/members, GET /status). */
export interface ConfigView {
  /** The log index of the entry holding it; 0 for the bootstrap configuration. */
  readonly index: number;
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  /** The voters of C_old while joint, else empty. */
  readonly outgoing: readonly NodeId[];
  readonly joint: boolean;
}

export function configView(c: ConfState, index: number): ConfigView {
  return { index, voters: c.voters, learners: c.learners, outgoing: c.outgoing, joint: isJoint(c) };
}

/** The context of a configuration whose members are `ids`, from the address book. */
export function encodeAddressBook(ids: readonly NodeId[], book: ReadonlyMap<NodeId, MemberAddress>): string {
  const out: Record<string, { grpc: string; web: string }> = {};
  for (const id of ids) {
    const a = book.get(id);
    if (a !== undefined) out[id] = { grpc: a.grpcAddress, web: a.webAddress };
  }
  return JSON.stringify(out);
}

/**
 * Reads the addresses out of a configuration's context. The bootstrap configuration has an empty context (its
 * addresses come from the cluster config file); an unreadable one yields nothing rather than failing the node.
 */
export function parseAddressBook(context: string): Map<NodeId, MemberAddress> {
  const book = new Map<NodeId, MemberAddress>();
  if (context === '') return book;
  let value: unknown;
  try {
    value = JSON.parse(context);
  } catch {
    return book;
  }
  if (typeof value !== 'object' || value === null) return book;
  for (const [id, entry] of Object.entries(value as Record<string, unknown>)) {
    const e = entry as { grpc?: unknown; web?: unknown } | null;
    if (typeof e?.grpc === 'string' && typeof e.web === 'string') {
      book.set(id, { grpcAddress: e.grpc, webAddress: e.web });
    }
  }
  return book;
}
