// The node's Prometheus metrics (GET /metrics, in Prometheus' text format).
//
// Every value is read when the endpoint is scraped, from state the node keeps anyway (its status, the storage's and
// the transport's counters): nothing is added to the path of a request, so serving metrics costs the write path
// nothing. The names follow Prometheus' conventions (`_total` for counters, base units); where etcd has the same
// measure, the name says the same thing (etcd_server_leader_changes_seen_total, etcd_server_has_leader, ...).
// Node.js' standard process metrics (CPU, memory, event-loop delay, garbage collection) come from prom-client's
// defaults (one set per process, without the `node` label). Every other series carries the node's id as the label
// `node`.

import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { FileStorageStats } from '../storage/file.js';
import type { GrpcTransportStats } from '../transport/grpc.js';
import type { NodeStatus } from './api.js';

export interface MetricsSources {
  readonly id: string;
  readonly status: () => NodeStatus;
  /** Counters the runtime keeps (RaftNode.stats). */
  readonly node: () => { readonly leaderChanges: number; readonly pendingRequests: number };
  /** The file storage's counters; absent for storage kept in memory. */
  readonly storage?: () => FileStorageStats;
  /** The gRPC transport's counters; absent for a transport that keeps none. */
  readonly transport?: () => GrpcTransportStats;
}

export interface NodeMetrics {
  readonly contentType: string;
  /** The current values, in Prometheus' text exposition format. */
  text(): Promise<string>;
}

const roles = ['follower', 'candidate', 'leader'] as const;

export function nodeMetrics(sources: MetricsSources): NodeMetrics {
  // Installed now rather than at the first scrape, so that garbage collection and event-loop delay are observed
  // from the start (and the first scrape has no empty histograms).
  const processMetrics = processRegistry();
  const registry = new Registry();
  registry.setDefaultLabels({ node: sources.id });
  const registers = [registry];
  // One status per scrape, shared by every gauge that reads it (status() builds the member list).
  let scraped: NodeStatus | null = null;
  const status = (): NodeStatus => (scraped ??= sources.status());

  /** A gauge read from `source` at every scrape. */
  const gaugeOf = <T>(name: string, help: string, source: () => T, read: (t: T) => number): void => {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read(source()));
      },
    });
  };
  const gauge = (name: string, help: string, read: (s: NodeStatus) => number): void =>
    gaugeOf(name, help, status, read);
  /** A counter whose value some component keeps: copied in at every scrape. */
  const counter = <T>(name: string, help: string, source: () => T, read: (t: T) => number): void => {
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(read(source()));
      },
    });
  };

  gauge('rafting_term', 'The current Raft term (§5.1).', (s) => s.term);
  gauge('rafting_has_leader', '1 if this node knows a leader, else 0.', (s) => (s.leader === null ? 0 : 1));
  gauge('rafting_is_leader', '1 if this node is the leader, else 0.', (s) => (s.role === 'leader' ? 1 : 0));
  new Gauge({
    name: 'rafting_role',
    help: "1 for this node's role (follower, candidate or leader), 0 for the others.",
    labelNames: ['role'],
    registers,
    collect() {
      const role = status().role;
      for (const r of roles) this.set({ role: r }, r === role ? 1 : 0);
    },
  });
  gauge('rafting_commit_index', 'The highest log index known to be committed (§5.3).', (s) => s.commitIndex);
  gauge(
    'rafting_applied_index',
    'The highest log index applied to the key-value store.',
    (s) => s.lastApplied,
  );
  gauge('rafting_last_log_index', "The index of the last entry in this node's log.", (s) => s.lastLogIndex);
  gauge(
    'rafting_first_log_index',
    'The first index still in the log; earlier entries are in the snapshot (§7).',
    (s) => s.firstLogIndex,
  );
  gauge('rafting_snapshot_index', 'The index of the latest snapshot (0: none).', (s) => s.snapshotIndex);
  new Gauge({
    name: 'rafting_members',
    help: 'Members of the configuration in force (thesis §4.1), by role, this node included; outgoing: the voters of C_old while joint.',
    labelNames: ['role'],
    registers,
    collect() {
      const { config } = status();
      this.set({ role: 'voter' }, config.voters.length);
      this.set({ role: 'learner' }, config.learners.length);
      this.set({ role: 'outgoing' }, config.outgoing.length);
    },
  });
  gauge(
    'rafting_config_joint',
    '1 while the configuration in force is joint (C_old,new, thesis §4.3), else 0.',
    (s) => (s.config.joint ? 1 : 0),
  );
  gaugeOf(
    'rafting_pending_requests',
    "Requests waiting on this node: writes for their entry to apply, reads for their read index (a follower's " +
      'linearizable read is counted on the leader, which confirms it), membership changes for their turn.',
    sources.node,
    (n) => n.pendingRequests,
  );
  counter(
    'rafting_leader_changes_seen_total',
    'Times this node saw a new leader (etcd: etcd_server_leader_changes_seen_total).',
    sources.node,
    (n) => n.leaderChanges,
  );

  const storage = sources.storage;
  if (storage !== undefined) {
    counter(
      'rafting_wal_fsyncs_total',
      'fdatasync/fsync calls and synchronous (O_DSYNC) WAL writes.',
      storage,
      (s) => s.fsyncs,
    );
    counter('rafting_wal_records_total', 'WAL records written.', storage, (s) => s.records);
    counter('rafting_wal_bytes_total', 'WAL bytes written.', storage, (s) => s.bytes);
    counter(
      'rafting_wal_saves_total',
      'Saves of entries and hard state the runtime asked for.',
      storage,
      (s) => s.saves,
    );
    counter(
      'rafting_wal_batches_total',
      'Group-commit batches: one durable WAL write each.',
      storage,
      (s) => s.batches,
    );
    counter(
      'rafting_wal_saves_coalesced_total',
      'Saves that shared a batch with an earlier one (group commit), so cost no write of their own.',
      storage,
      (s) => s.savesCoalesced,
    );
    gaugeOf(
      'rafting_wal_segments',
      'WAL segment files, the active one included.',
      storage,
      (s) => s.segments,
    );
  }

  const transport = sources.transport;
  if (transport !== undefined) {
    const peer = (name: string, help: string, read: (t: GrpcTransportStats) => number): void =>
      counter(`rafting_peer_${name}_total`, help, transport, read);
    peer('sent_messages', 'Raft messages handed to a peer stream.', (t) => t.sentMessages);
    peer('sent_batches', 'Batches of messages handed to a peer stream.', (t) => t.sentBatches);
    peer('received_messages', 'Raft messages received from peers.', (t) => t.receivedMessages);
    peer('received_batches', 'Batches of messages accepted from peers.', (t) => t.receivedBatches);
    peer(
      'dropped_messages',
      'Outgoing messages dropped (peer down, backpressure, too large).',
      (t) => t.droppedMessages,
    );
    peer(
      'rejected_messages',
      'Incoming messages rejected (wrong address, bad content).',
      (t) => t.rejectedMessages,
    );
    peer('streams_opened', 'Outgoing peer streams opened, reopenings included.', (t) => t.streamsOpened);
    peer('streams_accepted', 'Incoming peer streams accepted.', (t) => t.streamsAccepted);
    peer(
      'rejected_streams',
      'Incoming peer streams ended for a wrong cluster id or an unknown or mismatched sender.',
      (t) => t.rejectedStreams,
    );
    peer('stream_failures', 'Outgoing peer streams that ended with an error.', (t) => t.streamFailures);
    peer('snapshots_sent', 'Snapshots a peer acknowledged.', (t) => t.snapshotsSent);
    peer('snapshots_received', 'Snapshots received and stored.', (t) => t.snapshotsReceived);
    peer('snapshots_failed', 'Snapshot transfers, either way, that failed.', (t) => t.snapshotsFailed);
  }

  return {
    contentType: registry.contentType,
    async text() {
      try {
        return (await registry.metrics()) + (await processMetrics.metrics());
      } finally {
        scraped = null;
      }
    },
  };
}

let shared: Registry | null = null;

/**
 * The process' metrics, one registry per process however many nodes it runs (tests, embedders): prom-client's
 * default collectors install observers that live as long as the process, so they are installed once.
 */
function processRegistry(): Registry {
  if (shared === null) {
    shared = new Registry();
    collectDefaultMetrics({ register: shared });
  }
  return shared;
}
