// The gRPC transport: every node serves rafting.v1.Raft/Stream (proto/raft.proto) and keeps one long-lived
// client-streaming call open to each peer, writing one Batch per peer per send(). Raft messages are one-way, so a
// response is just a message on the other node's own stream back to us.
//
// Delivery is best effort, as the Transport interface allows: when a peer is unreachable or its stream is
// backpressured, messages are dropped and counted, and Raft's own retries (heartbeats, re-sent AppendEntries,
// repeated elections) recover. Messages on one stream arrive in order.
//
// Snapshots (InstallSnapshot, Raft paper §7) do not travel on that stream: sendSnapshot() opens a
// rafting.v1.Raft/InstallSnapshot call of its own, on a connection of its own, and streams a header, the data in
// chunks of at most `snapshotChunkBytes` and a trailer with the CRC-32 of the data. Both sides move the data only as
// fast as the other takes it (HTTP/2 flow control), so neither ever holds more than a few chunks of it. Unlike
// messages, a snapshot's delivery is confirmed: the receiver answers with a SnapshotAck once it has stored it.

import * as grpc from '@grpc/grpc-js';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { decodeConfState, encodeConfState } from '../raft/confstate.js';
import type { ConfState, InstallSnapshot, NodeId, SnapshotMeta } from '../raft/types.js';
import type { SnapshotSource } from '../storage/storage.js';
import { crc32 } from '../util/crc32.js';
import {
  Batch,
  EntryType,
  RaftService,
  SnapshotChunk,
  type Envelope,
  type RaftServer,
  type SnapshotAck,
  type SnapshotHeader,
  type StreamClosed,
} from './gen/raft.js';
import {
  CallReader,
  encodeControlChunk,
  encodeDataChunk,
  errorMessage,
  IncomingSnapshot,
  limitReadAhead,
  rechunk,
} from './snapshot.js';
import type {
  ForwardError,
  ForwardResponse,
  Message,
  PeerAddress,
  SnapshotHandler,
  Transport,
} from './transport.js';

/** The logging the transport needs; a pino logger fits. */
export interface Logger {
  debug(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  error(obj: object | string, msg?: string): void;
}

export interface GrpcTransportOptions {
  /** This node's id. */
  readonly self: NodeId;
  /** Streams from, and batches for, another cluster id are rejected. */
  readonly clusterId: string;
  /** `host:port` to serve on. Port 0 picks a free port; read it from `port` after start(). */
  readonly listenAddress: string;
  /**
   * The other members at the start; setPeers() changes them. An entry for `self` is ignored; an id listed twice
   * throws. Streams from ids not listed here are rejected.
   */
  readonly peers: readonly PeerAddress[];
  readonly logger: Logger;
  /** Largest gRPC message (one Batch) sent or accepted. Default 64 MiB. */
  readonly maxMessageBytes?: number;
  /**
   * Batches that may wait in a peer's outgoing stream (not yet taken by HTTP/2) before send() drops new messages
   * for that peer. Default 256.
   */
  readonly maxQueuedBatchesPerPeer?: number;
  /** Wait before reopening a failed stream; doubles per consecutive failure up to the max. Default 50 ms. */
  readonly reconnectBackoffMinMs?: number;
  /** Default 1000 ms. */
  readonly reconnectBackoffMaxMs?: number;
  /** close() waits this long for open calls to finish before forcing the server down. Default 500 ms. */
  readonly shutdownGraceMs?: number;
  /**
   * Largest data chunk of an outgoing snapshot: sendSnapshot() cuts larger pieces of the source. Must leave room
   * for the framing within maxMessageBytes. Default 1 MiB (less if maxMessageBytes is smaller).
   */
  readonly snapshotChunkBytes?: number;
  /** An outgoing snapshot transfer that has not been acknowledged after this long fails. Default 10 minutes. */
  readonly snapshotTimeoutMs?: number;
  /** Incoming snapshots announcing more bytes than this are refused. Default 64 GiB. */
  readonly maxSnapshotBytes?: number;
}

/** Counters since the transport was created (for metrics and tests). */
export interface GrpcTransportStats {
  /** Batches handed to a peer's stream. */
  readonly sentBatches: number;
  /** Messages in those batches. */
  readonly sentMessages: number;
  /**
   * Outgoing messages not handed to a stream: peer unknown, stream down or in backoff, stream backpressured,
   * batch too large, transport not running. (Messages already handed to a stream that then breaks are lost
   * without being counted here.)
   */
  readonly droppedMessages: number;
  /** Batches accepted from peers. */
  readonly receivedBatches: number;
  /** Messages passed to onMessage. */
  readonly receivedMessages: number;
  /** Incoming messages dropped: addressed to another node, wrong sender, no or unsupported body, bad entry. */
  readonly rejectedMessages: number;
  /** Incoming streams ended because of a wrong cluster id or an unknown / mismatched sender. */
  readonly rejectedStreams: number;
  /** Incoming message streams accepted from peers. */
  readonly streamsAccepted: number;
  /** Outgoing streams opened (including reopenings). */
  readonly streamsOpened: number;
  /** Outgoing streams that ended with an error status (peer down, restarted, rejected us...). */
  readonly streamFailures: number;
  /** Outgoing snapshot transfers the peer acknowledged (sendSnapshot() resolved). */
  readonly snapshotsSent: number;
  /** Incoming snapshot transfers stored and acknowledged (onSnapshot resolved after reading all the data). */
  readonly snapshotsReceived: number;
  /**
   * Snapshot transfers that failed: sendSnapshot() calls that rejected, and incoming transfers handed to onSnapshot
   * that were not acknowledged (bad data, broken call, onSnapshot rejected). Incoming calls refused before that
   * (wrong cluster, unknown sender...) count in rejectedStreams.
   */
  readonly snapshotsFailed: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Request metadata sent when a stream opens. */
export const CLUSTER_HEADER = 'x-rafting-cluster';
export const FROM_HEADER = 'x-rafting-from';

const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const DEFAULT_MAX_QUEUED_BATCHES = 256;
const DEFAULT_BACKOFF_MIN_MS = 50;
const DEFAULT_BACKOFF_MAX_MS = 1000;
const DEFAULT_SHUTDOWN_GRACE_MS = 500;
const DEFAULT_SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
const DEFAULT_SNAPSHOT_TIMEOUT_MS = 10 * 60 * 1000;
const DEFAULT_MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024 * 1024;
/** Room for a data chunk's framing (tag and length) within a gRPC message. */
const SNAPSHOT_CHUNK_OVERHEAD = 16;
/**
 * Outgoing snapshot chunks written to the call but not yet taken by HTTP/2 (so bounded by the peer's flow control)
 * before sendSnapshot() reads more of the source. Enough to keep the connection busy.
 */
const SNAPSHOT_WRITE_WINDOW = 4;
/** Incoming snapshot chunks read ahead of the consumer (see limitReadAhead). */
const SNAPSHOT_READ_AHEAD = 2;
/** The batch writer's buffer is reused across batches up to this size. */
const WRITER_KEEP_BYTES = 1024 * 1024;
/** A repeated warning (same key) is logged at most this often; the suppressed count goes with the next one. */
const WARN_INTERVAL_MS = 5000;

/** One peer's outgoing side. */
interface PeerLink {
  readonly id: NodeId;
  readonly address: string;
  /** Created on first use; owns the HTTP/2 connection to the peer. */
  client: grpc.Client | null;
  /** The open stream, or null when none is open. */
  call: grpc.ClientWritableStream<Uint8Array> | null;
  /** The peer has accepted `call` (sent its response headers). */
  accepted: boolean;
  /** No new stream before this time (performance.now()). */
  retryAt: number;
  /** The wait after the next failure. */
  backoffMs: number;
  /** The status code of the last failure, to log a run of identical failures once. */
  lastFailure: grpc.status | null;
  /** Envelopes collected for this peer during one send() call. */
  outbox: Envelope[];
  /** A timer that reopens the stream once the backoff has passed (links are kept warm, see `warm`). */
  redial: NodeJS.Timeout | null;
}

type State = 'new' | 'starting' | 'running' | 'closed';

/** An open incoming call (message stream or snapshot transfer), registered while it runs. */
interface IncomingCall {
  /** The peer that opened it (admitted by checkCaller). */
  readonly from: NodeId;
  /** Ends the call because this transport is closing. */
  readonly shutdown: () => void;
  /** Ends the call because `from` is no longer a peer (setPeers). */
  readonly revoke: (details: string) => void;
}

/** An outgoing snapshot transfer, registered for its peer while it runs. */
interface OutgoingSnapshot {
  /** Why it was aborted (the transport closed, the peer was removed or moved), or null. */
  aborted: string | null;
  /** Cancels the call; set once it is open. */
  cancel: () => void;
}

/** The Raft transport over gRPC (HTTP/2), one client-streaming call per ordered pair of nodes. */
export class GrpcTransport implements Transport {
  private readonly self: NodeId;
  private readonly clusterId: string;
  private readonly listenAddress: string;
  private readonly log: Logger;
  private readonly maxMessageBytes: number;
  private readonly maxQueuedBatches: number;
  private readonly backoffMinMs: number;
  private readonly backoffMaxMs: number;
  private readonly shutdownGraceMs: number;
  private readonly snapshotChunkBytes: number;
  private readonly snapshotTimeoutMs: number;
  private readonly maxSnapshotBytes: number;
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly channelOptions: grpc.ChannelOptions;
  /** Every open incoming call — ended by close(), and by setPeers() when its sender is removed. */
  private readonly incoming = new Set<IncomingCall>();
  /** Outgoing snapshot transfers by peer: at most one per peer. */
  private readonly outgoingSnapshots = new Map<NodeId, OutgoingSnapshot>();
  /** Peers with an incoming snapshot transfer running: at most one per peer. */
  private readonly incomingSnapshots = new Set<NodeId>();
  private readonly counters: Mutable<GrpcTransportStats> = {
    sentBatches: 0,
    sentMessages: 0,
    droppedMessages: 0,
    receivedBatches: 0,
    receivedMessages: 0,
    rejectedMessages: 0,
    rejectedStreams: 0,
    streamsAccepted: 0,
    streamsOpened: 0,
    streamFailures: 0,
    snapshotsSent: 0,
    snapshotsReceived: 0,
    snapshotsFailed: 0,
  };
  private readonly warned = new Map<string, { at: number; suppressed: number }>();
  /** Reused for every batch: finish() copies the bytes out and keeps the grown buffer for the next batch. */
  private writer = new BinaryWriter();
  private state: State = 'new';
  private server: grpc.Server | null = null;
  private boundPort: number | null = null;
  private onMessage: (message: Message) => void = () => {};
  private onSnapshot: SnapshotHandler | null = null;
  private closing: Promise<void> | null = null;

  constructor(options: GrpcTransportOptions) {
    this.self = options.self;
    this.clusterId = options.clusterId;
    this.listenAddress = options.listenAddress;
    this.log = options.logger;
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.maxQueuedBatches = options.maxQueuedBatchesPerPeer ?? DEFAULT_MAX_QUEUED_BATCHES;
    this.backoffMinMs = options.reconnectBackoffMinMs ?? DEFAULT_BACKOFF_MIN_MS;
    this.backoffMaxMs = Math.max(this.backoffMinMs, options.reconnectBackoffMaxMs ?? DEFAULT_BACKOFF_MAX_MS);
    this.shutdownGraceMs = options.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
    this.snapshotChunkBytes =
      options.snapshotChunkBytes ??
      Math.max(1, Math.min(DEFAULT_SNAPSHOT_CHUNK_BYTES, this.maxMessageBytes - SNAPSHOT_CHUNK_OVERHEAD));
    this.snapshotTimeoutMs = options.snapshotTimeoutMs ?? DEFAULT_SNAPSHOT_TIMEOUT_MS;
    this.maxSnapshotBytes = options.maxSnapshotBytes ?? DEFAULT_MAX_SNAPSHOT_BYTES;
    if (
      !Number.isSafeInteger(this.snapshotChunkBytes) ||
      this.snapshotChunkBytes < 1 ||
      this.snapshotChunkBytes + SNAPSHOT_CHUNK_OVERHEAD > this.maxMessageBytes
    ) {
      throw new Error(
        `GrpcTransport: snapshotChunkBytes must be an integer from 1 to maxMessageBytes - ${SNAPSHOT_CHUNK_OVERHEAD} ` +
          `(${this.maxMessageBytes - SNAPSHOT_CHUNK_OVERHEAD}), not ${this.snapshotChunkBytes}`,
      );
    }
    for (const [id, address] of this.peerAddresses(options.peers)) {
      this.links.set(id, this.newLink(id, address));
    }
    this.channelOptions = {
      'grpc.max_send_message_length': this.maxMessageBytes,
      'grpc.max_receive_message_length': this.maxMessageBytes,
      // The stream is the retry mechanism; gRPC retries would replay stale messages.
      'grpc.enable_retries': 0,
      // Reconnect quickly after a peer restarts (the grpc-js default backs off up to 2 minutes).
      'grpc.initial_reconnect_backoff_ms': this.backoffMinMs,
      'grpc.max_reconnect_backoff_ms': this.backoffMaxMs,
      // Notice a peer that vanished without closing its socket (paused, partitioned).
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
      // One connection per peer per transport, never shared with another transport in the same process.
      'grpc.use_local_subchannel_pool': 1,
    };
  }

  /** The port the server is bound to (useful with port 0). */
  get port(): number {
    if (this.boundPort === null) throw new Error('GrpcTransport: not started');
    return this.boundPort;
  }

  /** A snapshot of the counters. */
  stats(): GrpcTransportStats {
    return { ...this.counters };
  }

  async start(onMessage: (message: Message) => void, onSnapshot?: SnapshotHandler): Promise<void> {
    if (this.state !== 'new')
      throw new Error(`GrpcTransport(${this.self}): start() called twice or after close()`);
    this.state = 'starting';
    this.onMessage = onMessage;
    this.onSnapshot = onSnapshot ?? null;
    const server = new grpc.Server({
      'grpc.max_send_message_length': this.maxMessageBytes,
      'grpc.max_receive_message_length': this.maxMessageBytes,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
    });
    const implementation: RaftServer = {
      stream: (call, callback) => this.serveStream(call, callback),
      installSnapshot: (call, callback) => this.serveInstallSnapshot(call, callback),
    };
    server.addService(serverDefinition, implementation);
    try {
      this.boundPort = await new Promise<number>((resolve, reject) => {
        server.bindAsync(this.listenAddress, grpc.ServerCredentials.createInsecure(), (err, port) => {
          if (err) reject(err);
          else resolve(port);
        });
      });
    } catch (err) {
      server.forceShutdown();
      this.state = 'closed';
      const reason = err instanceof Error ? err.message : String(err);
      throw new Error(`GrpcTransport(${this.self}): cannot listen on ${this.listenAddress}: ${reason}`, {
        cause: err,
      });
    }
    if (this.state !== 'starting') {
      // close() ran while binding.
      server.forceShutdown();
      throw new Error(`GrpcTransport(${this.self}): closed during start()`);
    }
    this.server = server;
    this.state = 'running';
    this.log.info({ address: this.listenAddress, port: this.boundPort }, 'raft transport listening');
    for (const link of this.links.values()) this.warm(link);
  }

  send(messages: readonly Message[]): void {
    if (this.state !== 'running') {
      this.counters.droppedMessages += messages.length;
      return;
    }
    let touched: PeerLink[] | null = null;
    for (const message of messages) {
      if (message.type === 'InstallSnapshot') {
        this.counters.droppedMessages++;
        this.warnThrottled(
          `install-snapshot:${message.to}`,
          { to: message.to },
          'dropping an InstallSnapshot message given to send(): snapshots go through sendSnapshot()',
        );
        continue;
      }
      const link = this.links.get(message.to);
      if (link === undefined) {
        this.counters.droppedMessages++;
        this.warnThrottled(
          `unknown-peer:${message.to}`,
          { to: message.to },
          'dropping message to unknown peer',
        );
        continue;
      }
      if (link.outbox.length === 0) {
        if (!this.writable(link)) {
          this.counters.droppedMessages++;
          if (link.call !== null) {
            this.warnThrottled(
              `backpressure:${link.id}`,
              { peer: link.id },
              'peer stream backpressured; dropping messages',
            );
          }
          continue;
        }
        (touched ??= []).push(link);
      }
      const envelope = toEnvelope(message);
      if (envelope === undefined) {
        this.counters.droppedMessages++;
        this.log.error({ message }, 'dropping message of a type the transport cannot encode');
        continue;
      }
      link.outbox.push(envelope);
    }
    if (touched === null) return;
    for (const link of touched) {
      const envelopes = link.outbox;
      link.outbox = [];
      if (envelopes.length > 0) this.write(link, envelopes);
    }
  }

  /**
   * Changes the peers while running (membership changes, thesis chapter 4: a server uses the latest configuration
   * in its log, committed or not, thesis §4.1, so the runtime calls this whenever that changes). Compared by id:
   *
   * - a new id gets a link, connected at once and kept open, as at start;
   * - a removed id loses its link: its outgoing stream is cancelled (batches queued in it are dropped), a snapshot
   *   transfer to it fails, and its open incoming streams and transfers are ended with PERMISSION_DENIED; from then
   *   on its new calls are refused as from any unknown node (which also keeps a removed server from disrupting the
   *   cluster with RequestVotes, thesis §4.2.3);
   * - a changed address drops the link's stream and connection (and a snapshot transfer to the old address) and
   *   reconnects to the new address on the next send(); the peer's incoming calls are left alone;
   * - an unchanged id and address keeps its link as it is, stream and backoff included.
   *
   * An entry for this node is ignored. An id listed twice throws, and nothing changes.
   */
  setPeers(peers: readonly PeerAddress[]): void {
    const next = this.peerAddresses(peers);
    for (const link of [...this.links.values()]) {
      const address = next.get(link.id);
      if (address === link.address) continue;
      if (address === undefined) {
        this.links.delete(link.id);
        this.dropLink(link, `${link.id} is no longer a peer of ${this.self}`);
        const details =
          `node ${link.id} is no longer a peer of ${this.self} ` +
          `in cluster ${JSON.stringify(this.clusterId)}`;
        const calls = [...this.incoming].filter((call) => call.from === link.id);
        for (const call of calls) call.revoke(details);
        this.log.info(
          { peer: link.id, address: link.address, incomingCallsEnded: calls.length },
          'raft peer removed',
        );
      } else {
        this.dropLink(link, `the address of ${link.id} changed from ${link.address} to ${address}`);
        const moved = this.newLink(link.id, address);
        this.links.set(link.id, moved);
        this.warm(moved);
        this.log.info({ peer: link.id, from: link.address, to: address }, 'raft peer address changed');
      }
    }
    for (const [id, address] of next) {
      if (this.links.has(id)) continue;
      const link = this.newLink(id, address);
      this.links.set(id, link);
      this.warm(link);
      this.log.info({ peer: id, address }, 'raft peer added');
    }
  }

  /** The peers by id, without this node; throws for an id listed twice. */
  private peerAddresses(peers: readonly PeerAddress[]): Map<NodeId, string> {
    const out = new Map<NodeId, string>();
    for (const peer of peers) {
      if (peer.id === this.self) continue;
      if (out.has(peer.id)) throw new Error(`GrpcTransport: peer ${peer.id} is listed twice`);
      out.set(peer.id, peer.grpcAddress);
    }
    return out;
  }

  private newLink(id: NodeId, address: string): PeerLink {
    return {
      id,
      address,
      client: null,
      call: null,
      accepted: false,
      retryAt: 0,
      backoffMs: this.backoffMinMs,
      lastFailure: null,
      outbox: [],
      redial: null,
    };
  }

  /**
   * Keeps a stream open to the peer even while nothing is sent to it: opens one now, or once the backoff has
   * passed. Streams between followers carry nothing until an election, and opening one then (a TCP and HTTP/2
   * handshake) cost each round of a post-failover election 10-15 ms.
   */
  private warm(link: PeerLink): void {
    if (this.state !== 'running' || link.call !== null || this.links.get(link.id) !== link) return;
    if (link.redial !== null) return;
    const wait = link.retryAt - performance.now();
    if (wait <= 0) {
      this.open(link);
      return;
    }
    link.redial = setTimeout(() => {
      link.redial = null;
      this.warm(link);
    }, wait);
    link.redial.unref();
  }

  /**
   * Ends what `link` has open: its stream (cancelled, so batches still queued in it are dropped; its end is then
   * ignored, since it is no longer the link's call), its connection, and an outgoing snapshot transfer to its peer
   * (which fails with `reason`). The link is not used again.
   */
  private dropLink(link: PeerLink, reason: string): void {
    if (link.redial !== null) clearTimeout(link.redial);
    link.redial = null;
    const call = link.call;
    link.call = null;
    call?.cancel();
    link.client?.close();
    link.client = null;
    this.counters.droppedMessages += link.outbox.length;
    link.outbox = [];
    const transfer = this.outgoingSnapshots.get(link.id);
    if (transfer !== undefined) {
      transfer.aborted ??= reason;
      transfer.cancel();
    }
  }

  async sendSnapshot(message: InstallSnapshot, source: SnapshotSource): Promise<void> {
    const peer = message.to;
    const fail = (reason: string, cause?: unknown): Error => {
      this.counters.snapshotsFailed++;
      const error = new Error(
        `snapshot transfer to ${peer}: ${reason}`,
        cause === undefined ? {} : { cause },
      );
      this.log.warn({ peer, index: message.snapshot.index, term: message.snapshot.term }, error.message);
      return error;
    };
    // Everything up to the registration below runs synchronously, so that a second call for the same peer
    // always finds the first one registered.
    if (this.state !== 'running') throw fail(`transport of ${this.self} is not running`);
    const link = this.links.get(peer);
    if (link === undefined) throw fail('unknown peer');
    if (message.from !== this.self) throw fail(`message is from ${message.from}, this is ${this.self}`);
    const { index, term } = message.snapshot;
    if (source.meta.index !== index || source.meta.term !== term) {
      throw fail(
        `message is for snapshot index ${index} term ${term}, ` +
          `the source holds index ${source.meta.index} term ${source.meta.term}`,
      );
    }
    if (!Number.isSafeInteger(source.size) || source.size < 0)
      throw fail(`invalid source size ${source.size}`);
    if (this.outgoingSnapshots.has(peer)) throw fail('a transfer to this peer is already running');
    const transfer: OutgoingSnapshot = { aborted: null, cancel: () => {} };
    this.outgoingSnapshots.set(peer, transfer);
    const started = performance.now();
    try {
      await this.transferSnapshot(link, message, source, transfer);
    } catch (err) {
      throw fail(errorMessage(err), err);
    } finally {
      this.outgoingSnapshots.delete(peer);
    }
    this.counters.snapshotsSent++;
    this.log.info(
      { peer, index, term, bytes: source.size, ms: Math.round(performance.now() - started) },
      'snapshot sent',
    );
  }

  /** Admission of an incoming call: the same cluster, and a known peer as sender. */
  private checkCaller(
    metadata: grpc.Metadata,
    kind: string,
  ): { readonly from: NodeId } | { readonly code: grpc.status; readonly details: string } {
    const cluster = firstString(metadata.get(CLUSTER_HEADER));
    const from = firstString(metadata.get(FROM_HEADER));
    if (cluster !== this.clusterId) {
      return {
        code: grpc.status.FAILED_PRECONDITION,
        details:
          `cluster id mismatch: ${kind} from ${JSON.stringify(from)} is for cluster ${JSON.stringify(cluster)}, ` +
          `node ${this.self} is in cluster ${JSON.stringify(this.clusterId)}`,
      };
    }
    if (from === undefined || !this.links.has(from)) {
      return {
        code: grpc.status.PERMISSION_DENIED,
        details: `unknown node id ${JSON.stringify(from)}: not a peer of ${this.self} in cluster ${JSON.stringify(this.clusterId)}`,
      };
    }
    return { from };
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  // ---- outgoing ----

  /** Whether a batch for `link` can be written now; opens the stream if it is due. */
  private writable(link: PeerLink): boolean {
    const call = link.call;
    if (call !== null) return call.writableLength < this.maxQueuedBatches;
    if (performance.now() < link.retryAt) return false;
    this.open(link);
    return true;
  }

  private open(link: PeerLink): void {
    link.client ??= new grpc.Client(link.address, grpc.credentials.createInsecure(), this.channelOptions);
    const metadata = new grpc.Metadata();
    metadata.set(CLUSTER_HEADER, this.clusterId);
    metadata.set(FROM_HEADER, this.self);
    const call = link.client.makeClientStreamRequest<Uint8Array, StreamClosed>(
      RaftService.stream.path,
      bytesToBuffer,
      RaftService.stream.responseDeserialize,
      metadata,
      {},
      (err) => this.streamEnded(link, call, err),
    );
    // Errors and the end of the call arrive through the callback above; this only keeps an 'error' event
    // (which grpc-js does not emit for client-streaming calls today) from becoming an uncaught exception.
    call.on('error', (err: Error) => this.log.debug({ peer: link.id, err }, 'raft stream error'));
    call.on('metadata', () => {
      if (link.call !== call) return;
      link.accepted = true;
      link.backoffMs = this.backoffMinMs;
      if (link.lastFailure !== null) {
        link.lastFailure = null;
        this.log.info({ peer: link.id, address: link.address }, 'raft stream to peer re-established');
      }
    });
    link.call = call;
    link.accepted = false;
    this.counters.streamsOpened++;
  }

  private streamEnded(
    link: PeerLink,
    call: grpc.ClientWritableStream<Uint8Array>,
    err: grpc.ServiceError | null,
  ): void {
    if (link.call !== call) return;
    link.call = null;
    if (this.state === 'closed') return;
    // The next stream waits: the minimum after a stream the peer had accepted (it restarted or shut down),
    // doubling while opening keeps failing.
    const wait = link.accepted ? this.backoffMinMs : link.backoffMs;
    link.retryAt = performance.now() + wait;
    link.backoffMs = Math.min(this.backoffMaxMs, wait * 2);
    link.accepted = false;
    this.warm(link);
    if (err === null) {
      // The peer ended the stream with OK: it is shutting down.
      this.log.debug({ peer: link.id }, 'raft stream closed by peer');
      return;
    }
    this.counters.streamFailures++;
    if (err.code === link.lastFailure) return; // logged already
    link.lastFailure = err.code;
    const fields = {
      peer: link.id,
      address: link.address,
      code: grpc.status[err.code],
      details: err.details,
    };
    if (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.CANCELLED) {
      this.log.info(fields, 'raft stream to peer down; dropping messages until it reconnects');
    } else {
      this.log.warn(fields, 'raft stream to peer failed');
    }
  }

  private write(link: PeerLink, envelopes: Envelope[]): void {
    const call = link.call;
    if (call === null) {
      this.counters.droppedMessages += envelopes.length;
      return;
    }
    let bytes: Uint8Array;
    try {
      bytes = Batch.encode(
        { clusterId: this.clusterId, from: this.self, messages: envelopes },
        this.writer,
      ).finish();
    } catch (err) {
      this.writer = new BinaryWriter(); // may be left mid-message
      this.counters.droppedMessages += envelopes.length;
      this.log.error({ peer: link.id, err }, 'cannot encode raft messages; dropping them');
      return;
    }
    // The writer keeps its buffer between batches; do not let one huge batch pin a huge buffer.
    if (bytes.length > WRITER_KEEP_BYTES) this.writer = new BinaryWriter();
    if (bytes.length > this.maxMessageBytes) {
      this.counters.droppedMessages += envelopes.length;
      this.log.error(
        { peer: link.id, bytes: bytes.length, limit: this.maxMessageBytes, messages: envelopes.length },
        'raft batch exceeds maxMessageBytes; dropping it',
      );
      return;
    }
    call.write(bytes);
    this.counters.sentBatches++;
    this.counters.sentMessages += envelopes.length;
  }

  // ---- incoming ----

  private serveStream(
    call: grpc.ServerReadableStream<Batch, StreamClosed>,
    callback: grpc.sendUnaryData<StreamClosed>,
  ): void {
    let ended = false;
    let registered: IncomingCall | null = null;
    const end = (status: Partial<grpc.StatusObject> | null): void => {
      if (ended) return;
      ended = true;
      if (registered !== null) this.incoming.delete(registered);
      if (status === null) callback(null, {});
      else callback(status);
    };
    const endOk = (): void => end(null);
    const reject = (code: grpc.status, details: string, fields: object): void => {
      this.counters.rejectedStreams++;
      this.warnThrottled(`reject:${code}:${details}`, { ...fields, code: grpc.status[code] }, details);
      end({ code, details });
    };
    // The sender went away (cancelled, connection lost): nothing to answer.
    const forget = (): void => {
      ended = true;
      if (registered !== null) this.incoming.delete(registered);
    };
    call.on('cancelled', forget);
    call.on('close', forget);
    // Never let a stream error escape as an uncaught exception.
    call.on('error', (err: Error) => {
      this.log.debug({ err, remote: call.getPeer() }, 'incoming raft stream error');
      end(null);
    });

    if (this.state !== 'running') {
      end({ code: grpc.status.UNAVAILABLE, details: `node ${this.self} is not running` });
      return;
    }
    const remote = call.getPeer();
    const caller = this.checkCaller(call.metadata, 'stream');
    if ('code' in caller) {
      reject(caller.code, caller.details, { remote });
      return;
    }
    const { from } = caller;
    registered = {
      from,
      shutdown: endOk,
      revoke: (details) => end({ code: grpc.status.PERMISSION_DENIED, details }),
    };
    this.incoming.add(registered);
    this.counters.streamsAccepted++;
    // Response headers now tell the sender its stream was accepted (it resets its backoff).
    call.sendMetadata(new grpc.Metadata());

    call.on('data', (batch: Batch) => {
      if (ended) return;
      if (batch.clusterId !== this.clusterId) {
        reject(
          grpc.status.FAILED_PRECONDITION,
          `cluster id mismatch: batch from ${JSON.stringify(from)} is for cluster ${JSON.stringify(batch.clusterId)}, ` +
            `node ${this.self} is in cluster ${JSON.stringify(this.clusterId)}`,
          { remote },
        );
        return;
      }
      if (batch.from !== from) {
        reject(
          grpc.status.PERMISSION_DENIED,
          `sender mismatch: batch from ${JSON.stringify(batch.from)} on the stream of ${JSON.stringify(from)}`,
          { remote },
        );
        return;
      }
      this.counters.receivedBatches++;
      for (const envelope of batch.messages) {
        if (ended) return; // onMessage may have closed the transport
        this.deliver(envelope, from);
      }
    });
    call.on('end', endOk);
  }

  private deliver(envelope: Envelope, streamFrom: NodeId): void {
    if (envelope.to !== this.self) {
      this.rejectMessage(`wrong-to:${envelope.to}`, envelope, 'dropping message addressed to another node');
      return;
    }
    if (envelope.from !== streamFrom) {
      this.rejectMessage(
        `wrong-from:${envelope.from}`,
        envelope,
        'dropping message whose sender is not the stream',
      );
      return;
    }
    const message = fromEnvelope(envelope);
    if (typeof message === 'string') {
      this.rejectMessage(`invalid:${message}`, envelope, `dropping message: ${message}`);
      return;
    }
    this.counters.receivedMessages++;
    try {
      this.onMessage(message);
    } catch (err) {
      this.log.error({ err, from: message.from, type: message.type }, 'onMessage threw; message lost');
    }
  }

  private rejectMessage(key: string, envelope: Envelope, msg: string): void {
    this.counters.rejectedMessages++;
    this.warnThrottled(
      key,
      { from: envelope.from, to: envelope.to, body: envelope.body?.$case ?? null },
      msg,
    );
  }

  // ---- snapshots ----

  /**
   * Streams `source` to the peer on an InstallSnapshot call of its own, on a connection of its own (a new
   * grpc.Client: the channel options make every client use its own connection), so that the snapshot's data never
   * queue behind or in front of the peer's message stream. Resolves when the peer acknowledges the snapshot as
   * stored; throws otherwise.
   */
  private async transferSnapshot(
    link: PeerLink,
    message: InstallSnapshot,
    source: SnapshotSource,
    transfer: OutgoingSnapshot,
  ): Promise<void> {
    const client = new grpc.Client(link.address, grpc.credentials.createInsecure(), this.channelOptions);
    try {
      // How the call ended (the peer's answer or an error status), once it has.
      let outcome: { error: grpc.ServiceError | null; ack: SnapshotAck | undefined } | null = null;
      let signalEnd: () => void = () => {};
      const ended = new Promise<void>((resolve) => (signalEnd = resolve));
      // Interrupts a wait for the source (set only during one).
      let interruptRead: (() => void) | null = null;
      // Woken by every event that may let a waiting write go on: a write taken, 'drain', the end of the call.
      let waiter: (() => void) | null = null;
      const wake = (): void => {
        const w = waiter;
        waiter = null;
        w?.();
      };
      const metadata = new grpc.Metadata();
      metadata.set(CLUSTER_HEADER, this.clusterId);
      metadata.set(FROM_HEADER, this.self);
      const call = client.makeClientStreamRequest<Buffer, SnapshotAck>(
        RaftService.installSnapshot.path,
        (bytes: Buffer) => bytes, // encoded (and copied) by the loop below
        RaftService.installSnapshot.responseDeserialize,
        metadata,
        { deadline: Date.now() + this.snapshotTimeoutMs },
        (error, ack) => {
          outcome = { error, ack };
          signalEnd();
          interruptRead?.();
          wake();
        },
      );
      transfer.cancel = () => call.cancel();
      if (transfer.aborted !== null) call.cancel();
      call.on('error', (err: Error) => this.log.debug({ peer: link.id, err }, 'snapshot call error'));

      // Backpressure: at most SNAPSHOT_WRITE_WINDOW chunks wait in the call (a write's callback runs once HTTP/2
      // has taken the chunk, which the peer's flow-control window paces), and never more once write() asks us to
      // wait for 'drain'.
      let unsent = 0;
      let needDrain = false;
      call.on('drain', () => {
        needDrain = false;
        wake();
      });
      const write = async (bytes: Buffer): Promise<void> => {
        unsent++;
        const ok = call.write(bytes, () => {
          unsent--;
          wake();
        });
        if (!ok) needDrain = true;
        while (outcome === null && (needDrain || unsent >= SNAPSHOT_WRITE_WINDOW)) {
          await new Promise<void>((resolve) => (waiter = resolve));
        }
      };

      const header: SnapshotHeader = {
        clusterId: this.clusterId,
        from: this.self,
        to: link.id,
        term: message.term,
        snapshotIndex: message.snapshot.index,
        snapshotTerm: message.snapshot.term,
        size: source.size,
        config: message.snapshot.config === undefined ? empty : encodeConfState(message.snapshot.config),
      };
      await write(encodeControlChunk({ $case: 'header', value: header }));
      let sent = 0;
      let crc = 0;
      let complete = false;
      let pieces: AsyncIterator<Uint8Array> | null = null;
      try {
        pieces = rechunk(source.chunks(), this.snapshotChunkBytes)[Symbol.asyncIterator]();
        while (outcome === null) {
          // A source that stalls must not outlive the call (deadline, peer gone, close()). Not Promise.race with
          // `ended`: each race would leave a reaction on `ended`, keeping every chunk alive until the call ends.
          const iterator = pieces;
          const next = await new Promise<IteratorResult<Uint8Array> | 'ended'>((resolve, reject) => {
            interruptRead = () => resolve('ended');
            iterator.next().then(resolve, reject);
          });
          interruptRead = null;
          if (next === 'ended') break;
          if (next.done === true) {
            complete = true;
            break;
          }
          const data = next.value;
          sent += data.length;
          if (sent > source.size)
            throw new Error(`the source holds more than its size of ${source.size} bytes`);
          crc = crc32(data, crc);
          await write(encodeDataChunk(data));
        }
        if (complete && sent !== source.size) {
          throw new Error(`the source holds ${sent} bytes, but its size is ${source.size}`);
        }
      } catch (err) {
        call.cancel();
        throw new Error(`reading the snapshot failed: ${errorMessage(err)}`, { cause: err });
      } finally {
        if (!complete) pieces?.return?.().catch(() => {});
      }
      if (complete) {
        await write(encodeControlChunk({ $case: 'trailer', value: { crc32: crc } }));
        call.end();
      }
      await ended;
      const result = outcome as { error: grpc.ServiceError | null; ack: SnapshotAck | undefined } | null;
      if (transfer.aborted !== null) throw new Error(transfer.aborted);
      if (result === null) throw new Error('the call ended without a result'); // cannot happen: `ended` resolved
      if (result.error !== null) {
        throw new Error(`${grpc.status[result.error.code]}: ${result.error.details}`, {
          cause: result.error,
        });
      }
      if (result.ack?.accepted !== true) {
        throw new Error(`${link.id} refused it: ${result.ack?.error || 'no reason given'}`);
      }
      if (!complete) throw new Error(`${link.id} acknowledged it before the end of the data`);
    } finally {
      client.close();
    }
  }

  private serveInstallSnapshot(
    call: grpc.ServerReadableStream<SnapshotChunk, SnapshotAck>,
    callback: grpc.sendUnaryData<SnapshotAck>,
  ): void {
    let ended = false;
    let registered: IncomingCall | null = null;
    const end = (status: Partial<grpc.StatusObject> | null, ack?: SnapshotAck): void => {
      if (ended) return;
      ended = true;
      if (registered !== null) this.incoming.delete(registered);
      if (status === null) callback(null, ack);
      else callback(status);
    };
    const reject = (code: grpc.status, details: string, fields: object): void => {
      this.counters.rejectedStreams++;
      this.warnThrottled(`reject:${code}:${details}`, { ...fields, code: grpc.status[code] }, details);
      end({ code, details });
    };
    let reader: CallReader<SnapshotChunk> | null = null;
    const shutdown = (): void => {
      const details = `node ${this.self} is shutting down`;
      reader?.fail(new Error(details));
      end({ code: grpc.status.UNAVAILABLE, details });
    };
    // The sender went away (cancelled, deadline, connection lost), or we answered: nothing more to answer.
    call.on('cancelled', () => {
      ended = true;
      if (registered !== null) this.incoming.delete(registered);
      reader?.fail(new Error('the call was cancelled (sender gone, deadline exceeded or connection lost)'));
    });
    call.on('error', (err: Error) => {
      this.log.debug({ err, remote: call.getPeer() }, 'incoming snapshot call error');
      reader?.fail(err);
    });

    if (this.state !== 'running') {
      end({ code: grpc.status.UNAVAILABLE, details: `node ${this.self} is not running` });
      return;
    }
    const remote = call.getPeer();
    const caller = this.checkCaller(call.metadata, 'snapshot');
    if ('code' in caller) {
      reject(caller.code, caller.details, { remote });
      return;
    }
    const { from } = caller;
    const onSnapshot = this.onSnapshot;
    if (onSnapshot === null) {
      reject(grpc.status.UNIMPLEMENTED, `node ${this.self} does not accept snapshots`, { remote, from });
      return;
    }
    if (this.incomingSnapshots.has(from)) {
      reject(grpc.status.RESOURCE_EXHAUSTED, `a snapshot transfer from ${from} is already running`, {
        remote,
        from,
      });
      return;
    }
    this.incomingSnapshots.add(from);
    registered = {
      from,
      shutdown,
      revoke: (details) => {
        reader?.fail(new Error(details));
        end({ code: grpc.status.PERMISSION_DENIED, details });
      },
    };
    this.incoming.add(registered);
    // Before anything reads the call (the reader starts reading at once).
    limitReadAhead(call, SNAPSHOT_READ_AHEAD);
    reader = new CallReader<SnapshotChunk>(call);
    void this.receiveSnapshot(from, remote, reader, onSnapshot, reject, end).finally(() =>
      this.incomingSnapshots.delete(from),
    );
  }

  private async receiveSnapshot(
    from: NodeId,
    remote: string,
    reader: CallReader<SnapshotChunk>,
    onSnapshot: SnapshotHandler,
    reject: (code: grpc.status, details: string, fields: object) => void,
    end: (status: Partial<grpc.StatusObject> | null, ack?: SnapshotAck) => void,
  ): Promise<void> {
    let first: SnapshotChunk | null;
    try {
      first = await reader.next();
    } catch {
      return; // cancelled or shutting down: answered already or nobody to answer
    }
    if (first?.part?.$case !== 'header') {
      reject(grpc.status.INVALID_ARGUMENT, `snapshot from ${from}: the first message is not a header`, {
        remote,
      });
      return;
    }
    const header = first.part.value;
    if (header.clusterId !== this.clusterId) {
      reject(
        grpc.status.FAILED_PRECONDITION,
        `cluster id mismatch: snapshot header from ${JSON.stringify(from)} is for cluster ` +
          `${JSON.stringify(header.clusterId)}, node ${this.self} is in cluster ${JSON.stringify(this.clusterId)}`,
        { remote },
      );
      return;
    }
    if (header.from !== from) {
      reject(
        grpc.status.PERMISSION_DENIED,
        `sender mismatch: snapshot header from ${JSON.stringify(header.from)} on the call of ${JSON.stringify(from)}`,
        { remote },
      );
      return;
    }
    if (header.to !== this.self) {
      reject(
        grpc.status.FAILED_PRECONDITION,
        `snapshot from ${from} is addressed to node ${JSON.stringify(header.to)}, this is node ${this.self}`,
        { remote },
      );
      return;
    }
    if (header.size > this.maxSnapshotBytes) {
      reject(
        grpc.status.RESOURCE_EXHAUSTED,
        `snapshot from ${from} announces ${header.size} bytes, more than the maximum of ${this.maxSnapshotBytes}`,
        { remote },
      );
      return;
    }
    let config: ConfState | undefined;
    try {
      if (header.config.length > 0) config = decodeConfState(header.config);
    } catch (err) {
      reject(grpc.status.INVALID_ARGUMENT, `snapshot from ${from}: ${errorMessage(err)}`, { remote });
      return;
    }
    const snapshot: SnapshotMeta = {
      index: header.snapshotIndex,
      term: header.snapshotTerm,
      ...(config === undefined ? {} : { config }),
    };
    const message: InstallSnapshot = {
      type: 'InstallSnapshot',
      from,
      to: this.self,
      term: header.term,
      snapshot,
    };
    const chunks = new IncomingSnapshot(reader, header);
    const started = performance.now();
    let refusal: string | null = null;
    try {
      await onSnapshot(message, chunks);
    } catch (err) {
      refusal = errorMessage(err);
    }
    // The handler may have swallowed the data's failure, or stopped reading early: the snapshot is not whole.
    if (refusal === null && chunks.failure !== null) refusal = chunks.failure.message;
    if (refusal === null && !chunks.complete) {
      refusal = `node ${this.self} stopped reading after ${chunks.bytes} of ${header.size} bytes`;
    }
    const fields = { from, ...snapshot, bytes: chunks.bytes, size: header.size };
    if (refusal === null) {
      this.counters.snapshotsReceived++;
      this.log.info({ ...fields, ms: Math.round(performance.now() - started) }, 'snapshot received');
    } else {
      this.counters.snapshotsFailed++;
      this.log.warn({ ...fields, error: refusal }, 'incoming snapshot failed');
    }
    end(null, { accepted: refusal === null, error: refusal ?? '' });
  }

  // ---- shutdown ----

  private async shutdown(): Promise<void> {
    this.state = 'closed';
    for (const transfer of this.outgoingSnapshots.values()) {
      transfer.aborted ??= `transport of ${this.self} closed`;
      transfer.cancel();
    }
    for (const link of this.links.values()) {
      if (link.redial !== null) clearTimeout(link.redial);
      link.redial = null;
      link.call?.cancel();
      link.call = null;
      link.client?.close();
      link.client = null;
      link.outbox = [];
    }
    for (const call of [...this.incoming]) call.shutdown();
    const server = this.server;
    this.server = null;
    if (server === null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, this.shutdownGraceMs);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.log.info({ port: this.boundPort }, 'raft transport closed');
  }

  private warnThrottled(key: string, fields: object, msg: string): void {
    const now = performance.now();
    const last = this.warned.get(key);
    if (last !== undefined && now - last.at < WARN_INTERVAL_MS) {
      last.suppressed++;
      return;
    }
    const suppressed = last?.suppressed ?? 0;
    if (this.warned.size > 1000) this.warned.clear(); // keys come from the network; bound the map
    this.warned.set(key, { at: now, suppressed: 0 });
    this.log.warn(suppressed > 0 ? { ...fields, suppressed } : fields, msg);
  }
}

/**
 * The generated service, except that batches and snapshot chunks are decoded from a plain Uint8Array view of the
 * received Buffer, so that entry data and snapshot data come out as plain Uint8Array views (as the core's types
 * say) rather than Buffers, whose slice() shares memory where Uint8Array's copies.
 */
const serverDefinition = {
  stream: {
    ...RaftService.stream,
    requestDeserialize: (buffer: Buffer): Batch =>
      Batch.decode(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)),
  },
  installSnapshot: {
    ...RaftService.installSnapshot,
    requestDeserialize: (buffer: Buffer): SnapshotChunk =>
      SnapshotChunk.decode(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)),
  },
} satisfies grpc.ServiceDefinition;

/** A view of the encoded bytes as a Buffer, without copying (gRPC wants a Buffer). */
function bytesToBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function firstString(values: grpc.MetadataValue[]): string | undefined {
  const value = values[0];
  return typeof value === 'string' ? value : undefined;
}

/**
 * The wire form of a core message. The core message itself is the body's value: the encoder reads only the
 * body's own fields, so nothing is copied (entries included).
 */
export function toEnvelope(message: Message): Envelope | undefined {
  const { from, to, term } = message;
  switch (message.type) {
    case 'RequestVote':
      return { from, to, term, body: { $case: 'requestVote', value: message } };
    case 'RequestVoteResponse':
      return { from, to, term, body: { $case: 'requestVoteResponse', value: message } };
    case 'AppendEntries':
      return { from, to, term, body: { $case: 'appendEntries', value: message } };
    case 'AppendEntriesResponse':
      return { from, to, term, body: { $case: 'appendEntriesResponse', value: message } };
    case 'TimeoutNow':
      return { from, to, term, body: { $case: 'timeoutNow', value: {} } };
    case 'Forward':
      return { from, to, term, body: { $case: 'forward', value: message } };
    case 'ForwardResponse':
      return {
        from,
        to,
        term,
        body: {
          $case: 'forwardResponse',
          value: {
            leader: message.leader ?? '',
            results: message.results.map((r) =>
              r.error === undefined
                ? { id: r.id, index: r.index, term: r.term, error: '' }
                : { id: r.id, index: 0, term: 0, error: r.error },
            ),
          },
        },
      };
    case 'InstallSnapshot':
      // Never an envelope: the snapshot travels on its own call (sendSnapshot).
      return undefined;
    default: {
      const _unknown: never = message;
      return undefined;
    }
  }
}

/**
 * The core message an envelope carries, or why it cannot be delivered. Entry data are views into the received
 * buffer (not copies); nothing in the transport writes to them.
 */
export function fromEnvelope(envelope: Envelope): Message | string {
  const { from, to, term, body } = envelope;
  if (body === undefined) return 'no body (unknown message type?)';
  switch (body.$case) {
    case 'requestVote': {
      const { lastLogIndex, lastLogTerm, preVote, transfer } = body.value;
      return { type: 'RequestVote', from, to, term, lastLogIndex, lastLogTerm, preVote, transfer };
    }
    case 'requestVoteResponse': {
      const { voteGranted, preVote } = body.value;
      return { type: 'RequestVoteResponse', from, to, term, voteGranted, preVote };
    }
    case 'appendEntries': {
      const { prevLogIndex, prevLogTerm, entries, leaderCommit, context } = body.value;
      for (const entry of entries) {
        // The decoder accepts any int32 for an enum; the core knows only these.
        if (
          entry.type !== EntryType.NORMAL &&
          entry.type !== EntryType.NOOP &&
          entry.type !== EntryType.CONFIG
        )
          return `entry ${entry.index} has unknown type ${entry.type}`;
      }
      return {
        type: 'AppendEntries',
        from,
        to,
        term,
        prevLogIndex,
        prevLogTerm,
        entries,
        leaderCommit,
        context,
      };
    }
    case 'appendEntriesResponse': {
      const { success, matchIndex, rejectedIndex, conflictTerm, conflictIndex, context } = body.value;
      return {
        type: 'AppendEntriesResponse',
        from,
        to,
        term,
        success,
        matchIndex,
        rejectedIndex,
        conflictTerm,
        conflictIndex,
        context,
      };
    }
    case 'timeoutNow':
      return { type: 'TimeoutNow', from, to, term };
    case 'forward':
      return { type: 'Forward', from, to, term, requests: body.value.requests };
    case 'forwardResponse': {
      const results: ForwardResponse['results'][number][] = [];
      for (const r of body.value.results) {
        if (r.error === '') results.push({ id: r.id, index: r.index, term: r.term });
        else if (forwardErrors.includes(r.error as ForwardError))
          results.push({ id: r.id, error: r.error as ForwardError });
        else return `forwarded request ${r.id} has unknown error ${JSON.stringify(r.error)}`;
      }
      const leader = body.value.leader === '' ? null : body.value.leader;
      return { type: 'ForwardResponse', from, to, term, results, leader };
    }
    default: {
      const _unknown: never = body;
      return 'unknown body';
    }
  }
}

const empty = new Uint8Array(0);
const forwardErrors: readonly ForwardError[] = ['not_leader', 'busy', 'transferring'];
