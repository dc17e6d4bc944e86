import type { InstallSnapshot, Message as RaftMessage, NodeId } from '../raft/types.js';

/**
 * Client writes a follower passes to the leader (thesis §6.2), on the Raft stream but not Raft RPCs: the core
 * never sees them, and the receiver takes no term from them. See proto/raft.proto.
 */
export interface Forward {
  readonly type: 'Forward';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly requests: readonly { readonly id: number; readonly data: Uint8Array }[];
}

export type ForwardError = 'not_leader' | 'busy' | 'transferring';

/** The leader's answer to one Forward: where it put each request, or why it did not. */
export interface ForwardResponse {
  readonly type: 'ForwardResponse';
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly results: readonly (
    | { readonly id: number; readonly index: number; readonly term: number; readonly error?: undefined }
    | { readonly id: number; readonly error: ForwardError }
  )[];
  /** With not_leader results: who the sender believes leads, or null. */
  readonly leader: NodeId | null;
}

/** What travels between nodes: Raft's messages, and forwarded client writes. */
export type Message = RaftMessage | Forward | ForwardResponse;
import type { SnapshotSource } from '../storage/storage.js';

/**
 * Receives one snapshot a peer streams to this node (InstallSnapshot, Raft paper §7 / Figure 13). `message` is the
 * transfer's header as the core's message; `chunks` yields the data as it arrives, each chunk only when asked for
 * (the sender waits meanwhile), and can be iterated once. It throws if the transfer breaks or the data do not match
 * the announced size or checksum; the handler must then fail (and discard what it stored).
 *
 * Resolve once the whole snapshot is stored: the sender's sendSnapshot() then resolves. Reject to refuse it: the
 * sender's sendSnapshot() rejects with this error's message. Resolving without having read `chunks` to the end
 * counts as a refusal too.
 */
export type SnapshotHandler = (message: InstallSnapshot, chunks: AsyncIterable<Uint8Array>) => Promise<void>;

/**
 * Carries Raft messages between nodes. Raft messages are one-way (as in etcd/raft): a response is just another
 * message travelling the other way. Delivery is best effort: messages may be dropped (Raft retries), but
 * messages from one sender to one receiver are delivered in order while a connection lasts.
 *
 * Snapshots are the exception: they can be far larger than a message should be, so they travel on their own, in
 * bounded chunks, through sendSnapshot() and the `onSnapshot` handler, and their delivery is confirmed.
 */
export interface Transport {
  /**
   * Start listening; `onMessage` receives every accepted incoming message and `onSnapshot` every incoming snapshot
   * transfer. Without `onSnapshot`, incoming transfers are refused.
   */
  start(onMessage: (message: Message) => void, onSnapshot?: SnapshotHandler): Promise<void>;
  /**
   * Queue messages for sending; never blocks and never throws for an unreachable peer. InstallSnapshot messages
   * are dropped (with a warning): they go through sendSnapshot().
   */
  send(messages: readonly Message[]): void;
  /**
   * Stream the snapshot `source` to `message.to`, whose `onSnapshot` receives `message` and the data. The data are
   * read from `source.chunks()` as the peer takes them, never all at once. `message.snapshot` must be
   * `source.meta`. Resolves when the peer has stored the whole snapshot; rejects when it refuses it, the transfer
   * breaks or times out, the peer is unknown or unreachable, or a transfer to the same peer is already running.
   */
  sendSnapshot(message: InstallSnapshot, source: SnapshotSource): Promise<void>;
  /**
   * Replace the set of peers while running (membership changes, thesis chapter 4). New ids become reachable;
   * removed ids lose their link (queued messages to them are dropped, a snapshot transfer to them fails) and their
   * calls to this node are ended and refused from then on, as from any unknown node; a changed address is dialled
   * anew. An entry for this node is ignored; an id listed twice throws and changes nothing. Peers whose address is
   * unchanged keep their connection: calling it with the same peers changes nothing.
   */
  setPeers(peers: readonly PeerAddress[]): void;
  close(): Promise<void>;
}

export interface PeerAddress {
  readonly id: NodeId;
  readonly grpcAddress: string;
}
