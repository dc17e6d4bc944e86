import type { NodeId, Role } from '../raft/types.js';

export type Consistency = 'linearizable' | 'stale';

export interface KvValue {
  readonly key: string;
  readonly value: string;
  /** The log index of the entry that last changed the key. */
  readonly index: number;
}

export interface DeleteResult {
  readonly key: string;
  readonly deleted: boolean;
  readonly index: number;
}

export interface PeerStatus {
  readonly id: NodeId;
  readonly grpcAddress: string;
  readonly webAddress: string;
  /** Leader only: the highest index known replicated on that peer, else null. */
  readonly matchIndex: number | null;
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
  readonly peers: readonly PeerStatus[];
}

/**
 * What a running node offers its clients. Methods reject with the errors of `errors.ts`:
 * NotLeaderError (write or linearizable read on a non-leader), TimeoutError, ProposalDroppedError,
 * UnavailableError.
 */
export interface KvService {
  readonly id: NodeId;
  put(key: string, value: string): Promise<KvValue>;
  delete(key: string): Promise<DeleteResult>;
  /** Resolves null when the key does not exist. */
  get(key: string, consistency: Consistency): Promise<KvValue | null>;
  status(): NodeStatus;
  /** The web address of a node, for redirects. */
  webAddressOf(id: NodeId): string | undefined;
}
