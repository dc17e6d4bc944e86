// The vocabulary of the core: log entries, persistent state and the messages peers exchange.
// Everything here is plain data so that it can be stored, sent, compared and printed without ceremony.

/** A node's name, as written in the cluster config (`node_id`). */
export type NodeId = string;

export const EntryType = {
  /** A command for the replicated state machine. */
  Normal: 0,
  /** The entry a new leader appends at the start of its term so earlier entries can commit (§5.4.2, §8). */
  Noop: 1,
  /**
   * A cluster configuration (thesis §4.1): its data is a ConfState (encodeConfState). It takes effect on every node
   * as soon as the node's log holds it, committed or not, and is undone if the entry is truncated away.
   */
  Config: 2,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

/** One slot of the replicated log (Figure 2: "each entry contains command for state machine, and term"). */
export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** Persistent state on all servers (Figure 2), plus the commit index (kept so that a restart re-applies less). */
export interface HardState {
  readonly term: number;
  /** The candidate this node voted for in `term`, or '' for none. */
  readonly vote: NodeId;
  readonly commit: number;
}

export const emptyHardState: HardState = { term: 0, vote: '', commit: 0 };

export function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** Fields every message carries. `term` is the sender's current term (Figure 2, "Rules for All Servers"). */
interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/** RequestVote RPC arguments (Figure 2, §5.2). */
export interface RequestVote extends MessageBase {
  readonly type: 'RequestVote';
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  /** A PreVote (thesis §9.6): asks whether the receiver would vote at `term`, without changing anyone's term. */
  readonly preVote: boolean;
  /** Started by TimeoutNow (thesis §3.10): granted even by voters that heard from a leader recently. */
  readonly transfer: boolean;
}

/** RequestVote RPC results (Figure 2). */
export interface RequestVoteResponse extends MessageBase {
  readonly type: 'RequestVoteResponse';
  readonly voteGranted: boolean;
  /** Answers a PreVote; a granted one carries the term it was asked about. */
  readonly preVote: boolean;
}

/** AppendEntries RPC arguments (Figure 2, §5.3). Also the heartbeat when `entries` is empty. */
export interface AppendEntries extends MessageBase {
  readonly type: 'AppendEntries';
  readonly prevLogIndex: number;
  readonly prevLogTerm: number;
  readonly entries: readonly Entry[];
  readonly leaderCommit: number;
  /** Echoed in the response: the leader's ReadIndex heartbeat round (thesis §6.4), or 0. */
  readonly context: number;
}

/**
 * AppendEntries RPC results (Figure 2), with the hints for fast backtracking (end of §5.3; thesis §5.3).
 * - success: `matchIndex` is the last index the follower now knows to match the leader's log.
 * - rejection: `rejectedIndex` is the request's prevLogIndex; `conflictTerm` is the term the follower has at that
 *   index (0 when its log is shorter) and `conflictIndex` the first index it holds of `conflictTerm` (or its
 *   last index + 1 when its log is shorter). The leader then skips a whole term per round trip.
 */
export interface AppendEntriesResponse extends MessageBase {
  readonly type: 'AppendEntriesResponse';
  readonly success: boolean;
  readonly matchIndex: number;
  readonly rejectedIndex: number;
  readonly conflictTerm: number;
  readonly conflictIndex: number;
  /** The request's context, echoed. */
  readonly context: number;
}

/**
 * A cluster configuration (thesis chapter 4): who votes and who only receives the log.
 *
 * Invariants: the three lists hold no duplicates; `learners` shares no id with `voters` or `outgoing`.
 */
export interface ConfState {
  /** The voters; while joint (thesis §4.3), those of C_new. */
  readonly voters: readonly NodeId[];
  /**
   * Joint consensus (thesis §4.3): while C_old,new is in force, the voters of C_old; empty otherwise. Elections and
   * commitment then need a majority of `voters` and, separately, a majority of `outgoing`.
   */
  readonly outgoing: readonly NodeId[];
  /** Non-voting members (thesis §4.2.1): they receive the log but count toward no majority. */
  readonly learners: readonly NodeId[];
  /** Opaque to the core, carried with the configuration (Rafting's runtime keeps the members' addresses here). */
  readonly context: string;
}

/** Which log prefix a snapshot replaces: every entry up to `index`, the last of which had `term` (§7). */
export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  /**
   * The configuration in force at `index`: the latest one in the entries the snapshot replaces (thesis §5.1, "the
   * latest configuration as of the last included index"). Absent only in snapshots written before membership changes existed: the node then
   * falls back to its bootstrap configuration.
   */
  readonly config?: ConfState;
}

/**
 * InstallSnapshot RPC (§7, Figure 13): the leader sends a follower the state machine snapshot that replaces the
 * log prefix the follower is missing and the leader has compacted away. Only the metadata is here; the runtime
 * streams the data itself in bounded chunks and steps this message into the follower's core once all of it is
 * stored. The follower answers with an AppendEntriesResponse (success, matchIndex = snapshot.index), as etcd/raft
 * does, because the leader treats both answers alike.
 */
export interface InstallSnapshot extends MessageBase {
  readonly type: 'InstallSnapshot';
  readonly snapshot: SnapshotMeta;
}

/** TimeoutNow (thesis §3.10): the leader hands over; the receiver starts an election at once. */
export interface TimeoutNow extends MessageBase {
  readonly type: 'TimeoutNow';
}

export type Message =
  RequestVote | RequestVoteResponse | AppendEntries | AppendEntriesResponse | InstallSnapshot | TimeoutNow;
export type MessageType = Message['type'];

export type Role = 'follower' | 'candidate' | 'leader';

/** Volatile facts about a node that the outside may show (status pages, logs); not persisted. */
export interface SoftState {
  readonly role: Role;
  readonly leader: NodeId | null;
}
