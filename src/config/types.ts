import type { NodeId } from '../raft/types.js';

/** One node of the cluster, as listed under `cluster:` in the YAML config. */
export interface NodeConfig {
  readonly id: NodeId;
  /** host:port that the node's gRPC server listens on for its peers. */
  readonly grpcAddress: string;
  /** host:port of the node's REST API. */
  readonly webAddress: string;
  readonly peers: readonly NodeId[];
  readonly dataDir?: string;
  /** Where this node reaches some peers, when not at their grpcAddress (e.g. through a fault-injecting proxy). */
  readonly dial?: Readonly<Record<NodeId, string>>;
  /** Where this node reaches some peers' REST APIs (forwarded writes, read indexes), when not at their webAddress. */
  readonly webDial?: Readonly<Record<NodeId, string>>;
}

export interface ClusterConfig {
  /** Identifies the cluster on the wire; messages carrying another id are rejected. */
  readonly clusterId: string;
  readonly tickIntervalMs: number;
  readonly electionTimeoutMinMs: number;
  readonly electionTimeoutMaxMs: number;
  readonly heartbeatIntervalMs: number;
  readonly maxKeyBytes: number;
  readonly maxValueBytes: number;
  /** How long a write or linearizable read waits to be committed and applied before answering 504. */
  readonly requestTimeoutMs: number;
  /** A node snapshots its state machine after this many entries applied since its last snapshot (§7). */
  readonly snapshotThresholdEntries: number;
  /** Entries kept in the log behind a snapshot, so slightly lagging followers need no snapshot. */
  readonly snapshotRetainEntries: number;
  /** A learner is promoted to voter only once it is at most this many entries behind the leader (thesis §4.2.1). */
  readonly learnerMaxLagEntries: number;
  /** How long a promotion waits for the learner to catch up before it is refused. */
  readonly learnerCatchupTimeoutMs: number;
  readonly nodes: readonly NodeConfig[];
}
