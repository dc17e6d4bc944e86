import type { Condition } from '../kv/command.js';
import type { StoredValue, WriteResult } from '../kv/store.js';
import type { ClusterConfig } from '../config/types.js';
import type { NodeId, Role } from '../raft/types.js';
import type { ConfigView, MemberAddress, MemberInfo, MemberRole } from './members.js';

/**
 * - `linearizable`: ReadIndex (thesis §6.4); on a follower, the leader confirms the index and the follower answers.
 * - `lease`: the leader answers from its state while its lease holds (else as linearizable).
 * - `stale`: this node's applied state, at once.
 */
export type Consistency = 'linearizable' | 'lease' | 'stale';

export type { Condition, StoredValue, WriteResult };

export interface KvValue {
  readonly key: string;
  readonly value: string;
  /** The log index of the entry that last changed the key. */
  readonly index: number;
}

/** The body of a successful DELETE. */
export interface DeleteResult {
  readonly key: string;
  readonly deleted: boolean;
  readonly index: number;
}

export interface ReadResult {
  readonly found: KvValue | null;
  /** The index this node had applied when it answered. */
  readonly appliedIndex: number;
}

export interface WriteOptions {
  readonly condition?: Condition;
  readonly idempotencyKey?: string;
}

export type { ConfigView, MemberAddress, MemberInfo, MemberRole };

/** The cluster's membership as one node sees it (GET /cluster/members). */
export interface MembersResult {
  readonly clusterId: string;
  readonly leader: NodeId | null;
  readonly config: ConfigView;
  readonly members: readonly MemberInfo[];
  /** The cluster-wide settings, so that a joining node runs with the same timing and limits. */
  readonly settings: Omit<ClusterConfig, 'nodes' | 'clusterId'>;
}

export interface NodeStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly leader: NodeId | null;
  readonly commitIndex: number;
  readonly lastApplied: number;
  readonly lastLogIndex: number;
  /** The first index still in the log; entries before it are in the snapshot (§7). */
  readonly firstLogIndex: number;
  /** The index of the latest snapshot of this node's state machine (0: none). */
  readonly snapshotIndex: number;
  /** The configuration in force (thesis §4.1: the latest in the log, committed or not). */
  readonly config: ConfigView;
  /** Every other member of that configuration. */
  readonly peers: readonly MemberInfo[];
}

/**
 * What a running node offers its clients. Methods reject with the errors of `errors.ts`:
 * NotLeaderError (a write on a non-leader), TimeoutError, ProposalDroppedError, UnavailableError.
 */
export interface KvService {
  readonly id: NodeId;
  put(key: string, value: string, options?: WriteOptions): Promise<WriteResult>;
  delete(key: string, options?: WriteOptions): Promise<WriteResult>;
  get(key: string, consistency: Consistency): Promise<ReadResult>;
  /**
   * Leader only: a confirmed read index (for followers' linearizable reads). `forPeer`, the follower that asks,
   * then hears of new commit indexes at once until it can apply this one.
   */
  readIndex(forPeer?: NodeId): Promise<number>;
  /** Leader only: hands leadership to `to` and resolves once it leads (thesis §3.10). */
  transferLeadership(to: NodeId): Promise<{ readonly leader: NodeId; readonly term: number }>;
  /** Resolves with the leader once one is known, or null after `timeoutMs`. */
  awaitLeader(timeoutMs: number): Promise<NodeId | null>;
  status(): NodeStatus;
  /** Who this node believes leads, cheaply (every response carries it). */
  leader(): NodeId | null;
  /** The web address of a node, for redirects and forwarding. */
  webAddressOf(id: NodeId): string | undefined;
  /** This node's view of the membership. */
  members(): MembersResult;
  /** Leader only: adds a learner; with role 'voter' it is promoted once caught up. Resolves once complete. */
  addMember(id: NodeId, address: MemberAddress, role: MemberRole): Promise<MembersResult>;
  /** Leader only: promotes a learner once it has caught up. */
  promoteMember(id: NodeId): Promise<MembersResult>;
  /** Leader only: removes a member (the leader itself: after handing leadership over, see LeaderMovedError). */
  removeMember(id: NodeId): Promise<MembersResult>;
}
