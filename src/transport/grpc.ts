// The gRPC transport: every node serves rafting.v1.Raft/Stream (proto/raft.proto) and keeps one long-lived
// client-streaming call open to each peer, writing one Batch per peer per send(). Raft messages are one-way, so a
// response is just a message on the other node's own stream back to us.
//
// Delivery is best effort, as the Transport interface allows: when a peer is unreachable or its stream is
// backpressured, messages are dropped and counted, and Raft's own retries (heartbeats, re-sent AppendEntries,
// repeated elections) recover. Messages on one stream arrive in order.

import * as grpc from '@grpc/grpc-js';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import type { Message, NodeId } from '../raft/types.js';
import {
  Batch,
  EntryType,
  RaftService,
  type Envelope,
  type RaftServer,
  type StreamClosed,
} from './gen/raft.js';
import type { PeerAddress, Transport } from './transport.js';

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
  /** The other members. An entry for `self` is ignored. Streams from ids not listed here are rejected. */
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
  /** Outgoing streams opened (including reopenings). */
  readonly streamsOpened: number;
  /** Outgoing streams that ended with an error status (peer down, restarted, rejected us...). */
  readonly streamFailures: number;
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
}

type State = 'new' | 'starting' | 'running' | 'closed';

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
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly channelOptions: grpc.ChannelOptions;
  /** Ends each open incoming call (with OK) — used by close(). */
  private readonly incoming = new Set<() => void>();
  private readonly counters: Mutable<GrpcTransportStats> = {
    sentBatches: 0,
    sentMessages: 0,
    droppedMessages: 0,
    receivedBatches: 0,
    receivedMessages: 0,
    rejectedMessages: 0,
    rejectedStreams: 0,
    streamsOpened: 0,
    streamFailures: 0,
  };
  private readonly warned = new Map<string, { at: number; suppressed: number }>();
  /** Reused for every batch: finish() copies the bytes out and keeps the grown buffer for the next batch. */
  private writer = new BinaryWriter();
  private state: State = 'new';
  private server: grpc.Server | null = null;
  private boundPort: number | null = null;
  private onMessage: (message: Message) => void = () => {};
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
    for (const peer of options.peers) {
      if (peer.id === this.self) continue;
      if (this.links.has(peer.id)) throw new Error(`GrpcTransport: peer ${peer.id} is listed twice`);
      this.links.set(peer.id, {
        id: peer.id,
        address: peer.grpcAddress,
        client: null,
        call: null,
        accepted: false,
        retryAt: 0,
        backoffMs: this.backoffMinMs,
        lastFailure: null,
        outbox: [],
      });
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

  async start(onMessage: (message: Message) => void): Promise<void> {
    if (this.state !== 'new')
      throw new Error(`GrpcTransport(${this.self}): start() called twice or after close()`);
    this.state = 'starting';
    this.onMessage = onMessage;
    const server = new grpc.Server({
      'grpc.max_send_message_length': this.maxMessageBytes,
      'grpc.max_receive_message_length': this.maxMessageBytes,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
    });
    const implementation: RaftServer = { stream: (call, callback) => this.serveStream(call, callback) };
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
  }

  send(messages: readonly Message[]): void {
    if (this.state !== 'running') {
      this.counters.droppedMessages += messages.length;
      return;
    }
    let touched: PeerLink[] | null = null;
    for (const message of messages) {
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
    const end = (status: Partial<grpc.StatusObject> | null): void => {
      if (ended) return;
      ended = true;
      this.incoming.delete(endOk);
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
      this.incoming.delete(endOk);
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
    const cluster = firstString(call.metadata.get(CLUSTER_HEADER));
    const from = firstString(call.metadata.get(FROM_HEADER));
    if (cluster !== this.clusterId) {
      reject(
        grpc.status.FAILED_PRECONDITION,
        `cluster id mismatch: stream from ${JSON.stringify(from)} is for cluster ${JSON.stringify(cluster)}, ` +
          `node ${this.self} is in cluster ${JSON.stringify(this.clusterId)}`,
        { remote },
      );
      return;
    }
    if (from === undefined || !this.links.has(from)) {
      reject(
        grpc.status.PERMISSION_DENIED,
        `unknown node id ${JSON.stringify(from)}: not a peer of ${this.self} in cluster ${JSON.stringify(this.clusterId)}`,
        { remote },
      );
      return;
    }
    this.incoming.add(endOk);
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

  // ---- shutdown ----

  private async shutdown(): Promise<void> {
    this.state = 'closed';
    for (const link of this.links.values()) {
      link.call?.cancel();
      link.call = null;
      link.client?.close();
      link.client = null;
      link.outbox = [];
    }
    for (const endOk of [...this.incoming]) endOk();
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
 * The generated service, except that batches are decoded from a plain Uint8Array view of the received Buffer, so
 * that entry data come out as plain Uint8Array views (as the core's types say) rather than Buffers, whose slice()
 * shares memory where Uint8Array's copies.
 */
const serverDefinition = {
  stream: {
    ...RaftService.stream,
    requestDeserialize: (buffer: Buffer): Batch =>
      Batch.decode(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)),
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
      const { lastLogIndex, lastLogTerm } = body.value;
      return { type: 'RequestVote', from, to, term, lastLogIndex, lastLogTerm };
    }
    case 'requestVoteResponse':
      return { type: 'RequestVoteResponse', from, to, term, voteGranted: body.value.voteGranted };
    case 'appendEntries': {
      const { prevLogIndex, prevLogTerm, entries, leaderCommit } = body.value;
      for (const entry of entries) {
        // The decoder accepts any int32 for an enum; the core knows only these.
        if (entry.type !== EntryType.NORMAL && entry.type !== EntryType.NOOP)
          return `entry ${entry.index} has unknown type ${entry.type}`;
      }
      return { type: 'AppendEntries', from, to, term, prevLogIndex, prevLogTerm, entries, leaderCommit };
    }
    case 'appendEntriesResponse': {
      const { success, matchIndex, rejectedIndex, conflictTerm, conflictIndex } = body.value;
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
      };
    }
    case 'timeoutNow':
      return 'TimeoutNow is not supported yet';
    default: {
      const _unknown: never = body;
      return 'unknown body';
    }
  }
}
