// The node runtime: owns the core, drives its clock, honours the Ready contract, applies committed entries to
// the key-value store and answers the clients waiting for them.

import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { electionTicks, heartbeatTicks } from '../config/load.js';
import type { ClusterConfig } from '../config/types.js';
import { encodeCommand, type Command } from '../kv/command.js';
import { KvStore, type ApplyResult } from '../kv/store.js';
import {
  applyChanges,
  decodeConfState,
  isJoint,
  isVoter,
  members,
  type ConfChange,
} from '../raft/confstate.js';
import { Raft, type RaftLimits, type Ready } from '../raft/raft.js';
import { SeededRandom } from '../raft/random.js';
import {
  EntryType,
  type ConfState,
  type Entry,
  type HardState,
  type InstallSnapshot,
  type Message,
  type NodeId,
  sameHardState,
  type Role,
  type SnapshotMeta,
} from '../raft/types.js';
import type { Storage } from '../storage/storage.js';
import type { Forward, ForwardResponse, Message as WireMessage, Transport } from '../transport/transport.js';
import type {
  Consistency,
  KvService,
  KvValue,
  MembersResult,
  NodeStatus,
  ReadResult,
  WriteOptions,
} from './api.js';
import {
  configView,
  encodeAddressBook,
  parseAddressBook,
  type MemberAddress,
  type MemberInfo,
  type MemberRole,
} from './members.js';
import type { WriteResult } from '../kv/store.js';
import { ThresholdWaiters, WaiterMap } from './waiters.js';
import {
  InvalidRequestError,
  LeaderMovedError,
  MembershipError,
  NotLeaderError,
  ProposalDroppedError,
  TimeoutError,
  UnavailableError,
} from './errors.js';

export interface RaftNodeOptions {
  readonly id: NodeId;
  readonly config: ClusterConfig;
  readonly storage: Storage;
  readonly transport: Transport;
  readonly logger: Logger;
  readonly raftLimits?: Partial<RaftLimits>;
  /**
   * Asks the leader for a confirmed read index (a follower's linearizable read, thesis §6.4). Provided by the
   * HTTP layer; without it a follower refuses linearizable reads with NotLeaderError.
   */
  readonly readIndexFromLeader?: (leader: NodeId, self: NodeId, timeoutMs: number) => Promise<number>;
  /** Client requests waiting for their entry to apply; beyond this new ones get 503 (STYLE.md 7). */
  readonly maxPendingRequests?: number;
  /**
   * The voters of the configuration to use while the node's storage holds none (a new cluster): by default every
   * node of `config`. A node joining a running cluster passes [] and learns its configuration from the leader.
   */
  readonly bootstrapVoters?: readonly NodeId[];
  /** Where this node dials some peers' gRPC servers instead of their advertised address (fault injection). */
  readonly dial?: Readonly<Record<NodeId, string>>;
}

/** A membership change waiting to complete: its entry at `index` (of `term`), then a C_new at or after it. */
interface ConfWaiter {
  readonly index: number;
  readonly term: number;
  /** Its entry was applied with the right term; it completes with the next configuration that is not joint. */
  landed: boolean;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

interface Waiter {
  readonly term: number;
  readonly resolve: (result: ApplyResult) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class RaftNode implements KvService {
  readonly id: NodeId;
  readonly #config: ClusterConfig;
  readonly #storage: Storage;
  readonly #transport: Transport;
  readonly #logger: Logger;
  readonly #raft: Raft;
  readonly #kv: KvStore;
  readonly #waiters = new Map<number, Waiter>();
  /** Writes passed to the leader (thesis §6.2) whose index it has not told yet, by request id. */
  readonly #forwarded = new Map<
    number,
    {
      readonly leader: NodeId;
      readonly deadline: number;
      readonly resolve: (result: ApplyResult) => void;
      readonly reject: (error: Error) => void;
      readonly timer: NodeJS.Timeout;
    }
  >();
  /** Writes to pass to each leader on the next turn. */
  readonly #forwardQueue = new Map<NodeId, { id: number; data: Uint8Array }[]>();
  #forwardScheduled = false;
  /** Leader: answers to Forwards whose entries the next Ready carries; they are sent first in it (#onForward). */
  #forwardReplies: ForwardResponse[] = [];
  #forwardSeq = 0;
  readonly #maxPending: number;
  #ticker: NodeJS.Timeout | undefined;
  /** A Ready is being handled (possibly waiting for storage); another must not start (the Ready contract). */
  #busy = false;
  #scheduled = false;
  #closed = false;
  #fatal: Error | undefined;
  readonly #readIndexFromLeader: RaftNodeOptions['readIndexFromLeader'];
  /** Linearizable reads waiting for the leader's confirmation, by request id. */
  readonly #reads = new WaiterMap<number>();
  #readSeq = 0;
  /** Reads waiting for the state machine to apply their index. */
  readonly #applied = new ThresholdWaiters();
  /** Requests waiting for a leader to be known. */
  #leaderWaiters: ((leader: NodeId | null) => void)[] = [];
  /** The leader as of the latest Ready, and how often it became one it was not before (for metrics). */
  #seenLeader: NodeId | null = null;
  #leaderChanges = 0;
  /** A leadership transfer in progress: resolved when `to` leads. */
  #transfer: { readonly to: NodeId; readonly done: (leader: NodeId, term: number) => void } | null = null;
  #role: Role = 'follower';
  /** The hard state as last written to storage. */
  #durable: HardState;
  /** The hard state of the latest Ready (its commit index may not be written yet). */
  #latestHardState: HardState;
  /** The hard state as last handed to storage (possibly not durable yet). */
  #requestedHardState: HardState;
  /** Writes handed to storage and not yet durable, and the last of them (storage completes them in order). */
  #writesInFlight = 0;
  #lastWrite: Promise<void> = Promise.resolve();
  /** The index of the latest snapshot of the local state machine. */
  #snapshotIndex: number;
  #snapshotting = false;
  /** Peers a snapshot is being streamed to (at most one transfer each). */
  readonly #sendingSnapshotTo = new Set<NodeId>();
  /** Where every member (and every node the config file names) can be reached; see members.ts. */
  readonly #book = new Map<NodeId, MemberAddress>();
  readonly #dial: Readonly<Record<NodeId, string>>;
  /** Membership changes waiting to complete (at most a few: the core takes one change at a time). */
  #confWaiters: ConfWaiter[] = [];
  /** Checks run on every tick (a promotion waiting for its learner to catch up). */
  readonly #onTick = new Set<() => void>();

  private constructor(options: RaftNodeOptions, raft: Raft, kv: KvStore, snapshotIndex: number) {
    this.#durable = raft.hardState();
    this.#latestHardState = this.#durable;
    this.#requestedHardState = this.#durable;
    this.#readIndexFromLeader = options.readIndexFromLeader;
    this.id = options.id;
    this.#config = options.config;
    this.#storage = options.storage;
    this.#transport = options.transport;
    this.#logger = options.logger;
    this.#maxPending = options.maxPendingRequests ?? 20_000;
    this.#raft = raft;
    this.#kv = kv;
    this.#snapshotIndex = snapshotIndex;
    this.#dial = options.dial ?? {};
    for (const n of options.config.nodes) {
      this.#book.set(n.id, { grpcAddress: n.grpcAddress, webAddress: n.webAddress });
    }
  }

  /** Loads the node's stored state and builds its core; call `start` to join the cluster. */
  static async create(options: RaftNodeOptions): Promise<RaftNode> {
    const { config, logger } = options;
    const stored = await options.storage.load();
    const kv = new KvStore();
    if (stored.snapshot !== null) await restoreFromStorage(kv, options.storage, stored.snapshot);
    const election = electionTicks(config);
    const raft = new Raft({
      id: options.id,
      voters: options.bootstrapVoters ?? config.nodes.map((n) => n.id),
      // The config's range [min, max] is inclusive; the core draws from [min, max).
      electionTicksMin: election.min,
      electionTicksMax: election.max + 1,
      heartbeatTicks: heartbeatTicks(config),
      random: new SeededRandom(randomInt(2 ** 32)),
      hardState: stored.hardState,
      snapshot: stored.snapshot,
      entries: stored.entries,
      ...(options.raftLimits === undefined ? {} : { limits: options.raftLimits }),
      log: (line) => logger.info(line),
    });
    logger.info(
      { snapshot: stored.snapshot, entries: stored.entries.length, term: stored.hardState.term },
      `${options.id} loaded its state`,
    );
    return new RaftNode(options, raft, kv, stored.snapshot?.index ?? 0);
  }

  async start(): Promise<void> {
    this.#onConfig(this.#raft.config);
    this.#storage.setBlockingWrites?.(this.#role !== 'leader'); // see #handleReady
    await this.#transport.start(
      (m) => this.#onMessage(m),
      (m, chunks) => this.#onSnapshot(m, chunks),
    );
    this.#ticker = setInterval(() => this.#tick(), this.#config.tickIntervalMs);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#ticker);
    for (const [index, waiter] of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new UnavailableError('the node is shutting down; the outcome of the request is unknown'));
      this.#waiters.delete(index);
    }
    for (const [id, w] of this.#forwarded) {
      clearTimeout(w.timer);
      w.reject(new UnavailableError('the node is shutting down; the outcome of the request is unknown'));
      this.#forwarded.delete(id);
    }
    const closing = new UnavailableError('the node is shutting down');
    this.#rejectConfWaiters(
      () => true,
      new UnavailableError('the node is shutting down; the outcome of the change is unknown'),
    );
    this.#reads.rejectAll(closing);
    this.#applied.rejectAll(closing);
    this.#notifyLeader(null, true);
    await this.#transport.close();
    await this.#storage.close();
  }

  // -----------------------------------------------------------------------------------------------------------
  // KvService

  async put(key: string, value: string, options: WriteOptions = {}): Promise<WriteResult> {
    return writeResult(await this.#write({ op: 'set', key, value, ...options }));
  }

  async delete(key: string, options: WriteOptions = {}): Promise<WriteResult> {
    return writeResult(await this.#write({ op: 'delete', key, ...options }));
  }

  /**
   * A write on any node: proposed here on the leader, else passed to the leader over the peer stream (thesis §6.2)
   * and answered here once this node applies its entry. While no leader is known it waits a bounded time for one.
   */
  async #write(command: Command): Promise<ApplyResult> {
    const deadline = Date.now() + this.#leaderWaitMs();
    for (;;) {
      if (this.#raft.role === 'leader') return this.#propose(command);
      const leader = this.#raft.leader ?? (await this.awaitLeader(Math.max(0, deadline - Date.now())));
      if (leader === null) throw new NotLeaderError(null);
      if (leader === this.id) continue;
      try {
        return await this.#forward(leader, command);
      } catch (e) {
        // The node we asked no longer leads and proposed nothing: ask the one it names, within the same budget.
        if (!(e instanceof NotLeaderError) || Date.now() >= deadline || this.#closed) throw e;
        if (e.leader === leader || (e.leader === null && this.#raft.leader === leader)) {
          await this.awaitLeader(
            Math.min(this.#config.heartbeatIntervalMs, Math.max(0, deadline - Date.now())),
          );
        }
      }
    }
  }

  /** Queues a write for the leader; the queue goes out as one Forward per leader on the next turn. */
  #forward(leader: NodeId, command: Command): Promise<ApplyResult> {
    if (this.#closed || this.#fatal !== undefined) {
      return Promise.reject(new UnavailableError('the node is shutting down'));
    }
    if (this.#waiters.size + this.#forwarded.size >= this.#maxPending) {
      return Promise.reject(new UnavailableError(`too many requests in flight (${this.#maxPending})`));
    }
    const id = ++this.#forwardSeq;
    const data = encodeCommand(command);
    const queue = this.#forwardQueue.get(leader) ?? [];
    queue.push({ id, data });
    this.#forwardQueue.set(leader, queue);
    if (!this.#forwardScheduled) {
      this.#forwardScheduled = true;
      setImmediate(() => this.#flushForwards());
    }
    const deadline = Date.now() + this.#config.requestTimeoutMs;
    return new Promise<ApplyResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#forwarded.delete(id);
        reject(new TimeoutError(forwardTimedOut(leader, this.#config.requestTimeoutMs)));
      }, this.#config.requestTimeoutMs);
      this.#forwarded.set(id, { leader, deadline, resolve, reject, timer });
    });
  }

  #flushForwards(): void {
    this.#forwardScheduled = false;
    if (this.#closed) return;
    const messages: WireMessage[] = [];
    for (const [leader, queue] of this.#forwardQueue) {
      // Bounded messages: at most maxForwardRequests requests, and about 1 MiB of commands, in each.
      let batch: Forward['requests'][number][] = [];
      let bytes = 0;
      const flush = () => {
        if (batch.length === 0) return;
        messages.push({ type: 'Forward', from: this.id, to: leader, term: this.#raft.term, requests: batch });
        batch = [];
        bytes = 0;
      };
      for (const request of queue) {
        if (batch.length >= maxForwardRequests || (bytes > 0 && bytes + request.data.length > 1 << 20))
          flush();
        batch.push(request);
        bytes += request.data.length;
      }
      flush();
    }
    this.#forwardQueue.clear();
    if (messages.length > 0) this.#transport.send(messages);
  }

  /** Leader: proposes the writes a follower passed on, and tells it where each went. */
  #onForward(m: Forward): void {
    const results: ForwardResponse['results'][number][] = [];
    for (const [n, { id, data }] of m.requests.entries()) {
      if (n >= maxForwardRequests) {
        results.push({ id, error: 'busy' });
        continue;
      }
      const proposed = this.#raft.propose(data);
      if (proposed.ok) {
        // The follower answers its client once it has applied the entry: it must hear of its commit at once.
        this.#raft.wantCommit(m.from, proposed.index);
        this.#settleSuperseded(proposed.index);
        results.push({ id, index: proposed.index, term: proposed.term });
      } else {
        results.push({ id, error: proposed.reason });
      }
    }
    const reply: ForwardResponse = {
      type: 'ForwardResponse',
      from: this.id,
      to: m.from,
      term: this.#raft.term,
      results,
      leader: this.#raft.leader,
    };
    if (results.some((r) => r.error === undefined)) {
      // The answer rides in the same batch as the AppendEntries carrying these entries (one message on the wire
      // instead of two). It goes out before them, and so before any commit index covering them, which the
      // follower needs: it must know where its requests went before they apply.
      this.#forwardReplies.push(reply);
    } else {
      this.#transport.send([reply]);
    }
    this.#schedule();
  }

  /** Follower: the leader proposed (or refused) our writes; each now waits for its entry to apply here. */
  #onForwardResponse(m: ForwardResponse): void {
    for (const result of m.results) {
      const w = this.#forwarded.get(result.id);
      if (w === undefined || w.leader !== m.from) continue;
      this.#forwarded.delete(result.id);
      clearTimeout(w.timer);
      if (result.error !== undefined) {
        w.reject(
          result.error === 'not_leader'
            ? new NotLeaderError(m.leader === m.from ? null : m.leader)
            : new UnavailableError(
                result.error === 'busy'
                  ? 'the leader has too many uncommitted entries; retry later'
                  : 'leadership is being handed over; retry shortly',
              ),
        );
        continue;
      }
      if (result.index <= this.#kv.lastApplied) {
        w.reject(
          new TimeoutError('the entry applied before the leader said where it put it; outcome unknown'),
        );
        continue;
      }
      // Of two requests given the same index (by leaders of different terms), only the later leader's can commit.
      const other = this.#waiters.get(result.index);
      if (other !== undefined && other.term >= result.term) {
        w.reject(
          new ProposalDroppedError('leadership changed before the request committed; it did not apply'),
        );
        continue;
      }
      this.#settleSuperseded(result.index);
      this.#waiters.set(
        result.index,
        this.#waiter(result.index, result.term, w.resolve, w.reject, w.deadline),
      );
    }
  }

  /** A client waiting for the entry at `index` (of `term`) to apply, until `deadline`. */
  #waiter(
    index: number,
    term: number,
    resolve: (result: ApplyResult) => void,
    reject: (error: Error) => void,
    deadline: number,
  ): Waiter {
    const waiter: Waiter = {
      term,
      resolve,
      reject,
      timer: setTimeout(
        () => {
          if (this.#waiters.get(index) === waiter) this.#waiters.delete(index);
          reject(
            new TimeoutError(
              `not applied within ${this.#config.requestTimeoutMs} ms; the request may or may not take effect`,
            ),
          );
        },
        Math.max(0, deadline - Date.now()),
      ),
    };
    return waiter;
  }

  async get(key: string, consistency: Consistency): Promise<ReadResult> {
    if (consistency !== 'stale') {
      if (this.#applied.size + this.#reads.size >= this.#maxPending) {
        throw new UnavailableError(`too many reads in flight (${this.#maxPending})`);
      }
      const index = await this.#readBarrier(consistency);
      await this.#applied.wait(index, this.#kv.lastApplied, this.#config.requestTimeoutMs, notAppliedInTime);
    }
    return { found: toValue(key, this.#kv.get(key)), appliedIndex: this.#kv.lastApplied };
  }

  /**
   * The index a read must see: the leader's confirmed read index (ReadIndex, thesis §6.4), or with a valid lease
   * the leader's commit index without a round trip (thesis §6.4.1). A follower asks the leader.
   */
  async #readBarrier(consistency: Consistency): Promise<number> {
    if (consistency === 'lease' && this.#raft.leaseValid()) return this.#raft.log.committed;
    if (this.#raft.role === 'leader') return this.readIndex();
    const leader = this.#raft.leader ?? (await this.awaitLeader(this.#leaderWaitMs()));
    if (leader === null || this.#readIndexFromLeader === undefined) throw new NotLeaderError(leader);
    if (leader === this.id) return this.readIndex();
    return this.#readIndexFromLeader(leader, this.id, this.#config.requestTimeoutMs);
  }

  readIndex(forPeer?: NodeId): Promise<number> {
    if (this.#closed) return Promise.reject(new UnavailableError('the node is shutting down'));
    const requestId = ++this.#readSeq;
    const result = this.#raft.readIndex(requestId);
    if (!result.ok) {
      if (result.reason === 'busy') return Promise.reject(new UnavailableError('too many reads in flight'));
      return Promise.reject(new NotLeaderError(result.leader));
    }
    this.#schedule();
    const index = this.#reads.wait(
      requestId,
      this.#config.requestTimeoutMs,
      'leadership not confirmed in time',
    );
    if (forPeer === undefined) return index;
    // The follower answers once it has applied this index: it must hear of the commit index at once.
    return index.then((i) => {
      this.#raft.wantCommit(forPeer, i);
      this.#schedule();
      return i;
    });
  }

  async transferLeadership(to: NodeId): Promise<{ leader: NodeId; term: number }> {
    const result = this.#raft.transferLeadership(to);
    if (!result.ok) {
      if (result.reason === 'not_leader') throw new NotLeaderError(result.leader);
      if (result.reason === 'already_leader') return { leader: this.id, term: this.#raft.term };
      throw new InvalidRequestError(
        result.reason === 'unknown_target'
          ? `${to} is not a member of the cluster`
          : result.reason === 'not_voter'
            ? `${to} is a learner; only a voter can lead`
            : 'a transfer is already running',
      );
    }
    this.#schedule();
    // The core gives up after an election timeout; wait a little longer to see the outcome.
    const waitMs = this.#config.electionTimeoutMaxMs * 2 + this.#config.heartbeatIntervalMs;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#transfer = null;
        reject(new TimeoutError(`${to} did not take over within ${waitMs} ms (it may be down or behind)`));
      }, waitMs);
      this.#transfer = {
        to,
        done: (leader, term) => {
          clearTimeout(timer);
          this.#transfer = null;
          if (leader === to) resolve({ leader, term });
          else reject(new TimeoutError(`leadership went to ${leader} instead of ${to}`));
        },
      };
    });
  }

  awaitLeader(timeoutMs: number): Promise<NodeId | null> {
    const leader = this.#raft.leader;
    if (leader !== null || this.#closed) return Promise.resolve(leader);
    return new Promise((resolve) => {
      const waiter = (l: NodeId | null) => {
        clearTimeout(timer);
        resolve(l);
      };
      const timer = setTimeout(() => {
        this.#leaderWaiters = this.#leaderWaiters.filter((w) => w !== waiter);
        resolve(null);
      }, timeoutMs);
      this.#leaderWaiters.push(waiter);
    });
  }

  /** About two election timeouts: a leader usually appears within one (§9.3). */
  #leaderWaitMs(): number {
    return this.#config.electionTimeoutMaxMs * 2;
  }

  #notifyLeader(leader: NodeId | null, force = false): void {
    if ((leader === null && !force) || this.#leaderWaiters.length === 0) return;
    const waiters = this.#leaderWaiters;
    this.#leaderWaiters = [];
    for (const w of waiters) w(leader);
  }

  leader(): NodeId | null {
    return this.#raft.leader;
  }

  /** Counters for the metrics endpoint (src/node/metrics.ts). */
  stats(): { readonly leaderChanges: number; readonly pendingRequests: number } {
    return {
      leaderChanges: this.#leaderChanges,
      pendingRequests: this.#waiters.size + this.#forwarded.size + this.#applied.size + this.#reads.size,
    };
  }

  status(): NodeStatus {
    return {
      id: this.id,
      role: this.#raft.role,
      term: this.#raft.term,
      leader: this.#raft.leader,
      commitIndex: this.#raft.log.committed,
      lastApplied: this.#kv.lastApplied,
      lastLogIndex: this.#raft.log.lastIndex(),
      firstLogIndex: this.#raft.log.firstIndex(),
      snapshotIndex: this.#snapshotIndex,
      config: configView(this.#raft.config, this.#raft.configIndex),
      peers: this.#memberInfos().filter((m) => m.id !== this.id),
    };
  }

  webAddressOf(id: NodeId): string | undefined {
    return this.#book.get(id)?.webAddress;
  }

  // -----------------------------------------------------------------------------------------------------------
  // Membership (thesis chapter 4). The core decides what is safe; this adds the addresses, waits for a learner to
  // catch up before promoting it, moves leadership away from a leader that is being removed, and answers once the
  // change is complete (C_new committed).

  members(): MembersResult {
    const { nodes: _nodes, clusterId, ...settings } = this.#config;
    return {
      clusterId,
      leader: this.#raft.leader,
      config: configView(this.#raft.config, this.#raft.configIndex),
      members: this.#memberInfos(),
      settings,
    };
  }

  #memberInfos(): MemberInfo[] {
    const c = this.#raft.config;
    const matches = this.#raft.matchIndexes();
    return members(c).map((id) => ({
      id,
      grpcAddress: this.#book.get(id)?.grpcAddress ?? '',
      webAddress: this.#book.get(id)?.webAddress ?? '',
      role: c.learners.includes(id) ? 'learner' : 'voter',
      outgoing: c.outgoing.includes(id),
      matchIndex: matches.get(id) ?? null,
      reachable:
        this.#raft.role !== 'leader'
          ? null
          : id === this.id || this.#raft.memberProgress(id)?.recentlyActive === true,
    }));
  }

  /** Adds a learner (thesis §4.2.1); with role 'voter', promotes it once it has caught up. */
  async addMember(id: NodeId, address: MemberAddress, role: MemberRole): Promise<MembersResult> {
    this.#requireLeader();
    for (const [other, a] of this.#book) {
      if (other === id || !members(this.#raft.config).includes(other)) continue;
      if (a.grpcAddress === address.grpcAddress || a.webAddress === address.webAddress) {
        throw new MembershipError('invalid_change', `${other} already uses that address`);
      }
    }
    await this.#changeConfig([{ type: 'addLearner', id }], [id, address]);
    if (role === 'voter') return this.promoteMember(id);
    return this.members();
  }

  /** Promotes a learner to voter once it is within `learnerMaxLagEntries` of the leader (thesis §4.2.1). */
  async promoteMember(id: NodeId): Promise<MembersResult> {
    this.#requireLeader();
    const c = this.#raft.config;
    if (!members(c).includes(id)) throw notMember(id);
    if (isVoter(c, id)) throw new MembershipError('invalid_change', `${id} is already a voter`);
    await this.#caughtUp(id);
    await this.#changeConfig([{ type: 'promote', id }]);
    return this.members();
  }

  /** Removes a member; the leader first hands leadership to the most up-to-date other voter. */
  async removeMember(id: NodeId): Promise<MembersResult> {
    this.#requireLeader();
    const c = this.#raft.config;
    if (!members(c).includes(id)) throw notMember(id);
    if (id === this.id) {
      const target = this.#bestSuccessor();
      if (target === null) {
        throw new MembershipError(
          'invalid_change',
          `${id} leads and no other voter is up to date enough to take over; the change would leave no leader`,
        );
      }
      const { leader } = await this.transferLeadership(target);
      throw new LeaderMovedError(leader);
    }
    await this.#changeConfig([{ type: 'remove', id }]);
    return this.members();
  }

  #requireLeader(): void {
    if (this.#closed) throw new UnavailableError('the node is shutting down');
    if (this.#raft.role !== 'leader') throw new NotLeaderError(this.#raft.leader);
  }

  /** The voter (not this leader) that answered recently with the highest match index, or null. */
  #bestSuccessor(): NodeId | null {
    let best: { id: NodeId; match: number } | null = null;
    for (const id of this.#raft.config.voters) {
      const p = this.#raft.memberProgress(id);
      if (id === this.id || p === undefined || !p.recentlyActive) continue;
      if (best === null || p.match > best.match) best = { id, match: p.match };
    }
    return best?.id ?? null;
  }

  /** Resolves once learner `id` is close enough to the leader's log to vote; see learnerMaxLagEntries. */
  #caughtUp(id: NodeId): Promise<void> {
    const maxLag = this.#config.learnerMaxLagEntries;
    const lag = (): number | null => {
      const p = this.#raft.memberProgress(id);
      if (p === undefined || !p.recentlyActive) return null;
      return this.#raft.log.lastIndex() - p.match;
    };
    const now = lag();
    if (now !== null && now <= maxLag) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = (error?: Error) => {
        this.#onTick.delete(check);
        clearTimeout(timer);
        if (error === undefined) resolve();
        else reject(error);
      };
      const check = () => {
        if (this.#raft.role !== 'leader') return done(new NotLeaderError(this.#raft.leader));
        const l = lag();
        if (l !== null && l <= maxLag) done();
      };
      const timer = setTimeout(() => {
        const l = lag();
        done(
          new MembershipError(
            'learner_behind',
            l === null
              ? `${id} has not answered the leader recently; start it (or check its address) and promote it again`
              : `${id} is ${l} entries behind the leader (the limit is ${maxLag}) after ` +
                  `${this.#config.learnerCatchupTimeoutMs} ms; promote it again once it has caught up`,
          ),
        );
      }, this.#config.learnerCatchupTimeoutMs);
      this.#onTick.add(check);
    });
  }

  /**
   * Proposes `changes` and resolves once the change is complete: its entry committed and, for a change of voters,
   * the C_new that follows it (thesis §4.3). `added` gives the address of a new member.
   */
  async #changeConfig(changes: readonly ConfChange[], added?: [NodeId, MemberAddress]): Promise<void> {
    // The members after the change, by the core's own arithmetic (an invalid change is refused by the core below).
    const next = applyChanges(this.#raft.config, changes, '');
    const ids = members(next.ok ? next.next : this.#raft.config);
    const book = new Map(this.#book);
    if (added !== undefined) book.set(added[0], added[1]);
    const context = encodeAddressBook(ids, book);
    const deadline = Date.now() + this.#config.requestTimeoutMs;
    for (;;) {
      this.#requireLeader();
      const result = this.#raft.proposeConfChange(changes, context);
      if (result.ok) {
        this.#schedule();
        return this.#awaitConfChange(result.index, result.term, deadline);
      }
      switch (result.reason) {
        case 'not_leader':
          throw new NotLeaderError(result.leader);
        case 'transferring':
          throw new UnavailableError(`leadership is being handed to ${result.to}; retry shortly`);
        case 'busy':
          throw new UnavailableError('too many uncommitted entries; retry later');
        case 'pending':
          throw new MembershipError('change_in_progress', result.message);
        case 'invalid':
          throw new MembershipError('invalid_change', result.message);
        case 'no_quorum':
          throw new MembershipError('no_quorum', result.message);
        case 'not_ready':
          // A new leader commits its no-op within a round trip: wait for the next entry applied, then retry.
          await this.#applied.wait(
            this.#kv.lastApplied + 1,
            this.#kv.lastApplied,
            Math.max(1, deadline - Date.now()),
            `the new leader did not commit an entry of its term in time: ${result.message}`,
          );
      }
    }
  }

  #awaitConfChange(index: number, term: number, deadline: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter: ConfWaiter = {
        index,
        term,
        landed: false,
        resolve,
        reject,
        timer: setTimeout(
          () => {
            this.#confWaiters = this.#confWaiters.filter((w) => w !== waiter);
            reject(
              new TimeoutError(
                `the membership change at index ${index} did not complete in time; it may still take effect`,
              ),
            );
          },
          Math.max(1, deadline - Date.now()),
        ),
      };
      this.#confWaiters.push(waiter);
    });
  }

  /** Settles the membership changes an applied entry decides (see ConfWaiter). */
  #settleConfWaiters(entry: Entry): void {
    if (this.#confWaiters.length === 0) return;
    this.#rejectConfWaiters(
      (w) => w.index === entry.index && (w.term !== entry.term || entry.type !== EntryType.Config),
      new ProposalDroppedError('leadership changed before the membership change committed; it did not apply'),
    );
    for (const w of this.#confWaiters) if (w.index === entry.index) w.landed = true;
    if (entry.type !== EntryType.Config || isJoint(decodeConfState(entry.data))) return;
    const done = this.#confWaiters.filter((w) => w.landed);
    this.#confWaiters = this.#confWaiters.filter((w) => !w.landed);
    for (const w of done) {
      clearTimeout(w.timer);
      w.resolve();
    }
  }

  #rejectConfWaiters(which: (w: ConfWaiter) => boolean, error: Error): void {
    const rejected = this.#confWaiters.filter(which);
    if (rejected.length === 0) return;
    this.#confWaiters = this.#confWaiters.filter((w) => !which(w));
    for (const w of rejected) {
      clearTimeout(w.timer);
      w.reject(error);
    }
  }

  /**
   * The configuration in force changed (thesis §4.1: as soon as it is in the log): learn the members' addresses
   * and tell the transport whom to talk to. Before the first configuration a joining node knows, it talks to every
   * node it was told about.
   */
  #onConfig(c: ConfState): void {
    for (const [id, address] of parseAddressBook(c.context)) this.#book.set(id, address);
    const ids = c.voters.length === 0 ? [...this.#book.keys()] : members(c);
    this.#transport.setPeers(
      ids
        .filter((id) => id !== this.id)
        .flatMap((id) => {
          const address = this.#dial[id] ?? this.#book.get(id)?.grpcAddress;
          return address === undefined ? [] : [{ id, grpcAddress: address }];
        }),
    );
    const learners = c.learners.length === 0 ? '' : `, learners ${c.learners.join(',')}`;
    const joint = isJoint(c) ? ` (joint with ${c.outgoing.join(',')})` : '';
    this.#logger.info(
      { config: configView(c, this.#raft.configIndex) },
      `configuration: voters ${c.voters.join(',')}${learners}${joint}`,
    );
    if (c.voters.length > 0 && !members(c).includes(this.id)) {
      this.#logger.warn(
        `${this.id} is not a member of the configuration in force; it takes no part any more`,
      );
    }
  }

  /** The applied state, for tests that compare replicas. */
  appliedEntries(): [string, { value: string; index: number }][] {
    return this.#kv.entries();
  }

  // -----------------------------------------------------------------------------------------------------------
  // Proposals: every proposal made while a Ready is being handled rides in the next one, so one AppendEntries
  // per follower and one storage write carry a whole batch of client requests.

  #propose(command: Command): Promise<ApplyResult> {
    if (this.#closed || this.#fatal !== undefined) {
      return Promise.reject(new UnavailableError('the node is shutting down'));
    }
    if (this.#waiters.size >= this.#maxPending) {
      return Promise.reject(new UnavailableError(`too many requests in flight (${this.#maxPending})`));
    }
    const proposed = this.#raft.propose(encodeCommand(command));
    if (!proposed.ok) {
      if (proposed.reason === 'busy') {
        return Promise.reject(new UnavailableError('too many uncommitted entries; retry later'));
      }
      if (proposed.reason === 'transferring') {
        return Promise.reject(
          new UnavailableError(`leadership is being handed to ${proposed.to}; retry shortly`),
        );
      }
      return Promise.reject(new NotLeaderError(proposed.leader));
    }
    this.#schedule();
    // A request still waiting at this index was proposed in an earlier term of ours and lost its slot to another
    // leader's entry, which this node's log now holds in its place: it can never commit.
    this.#settleSuperseded(proposed.index);
    const deadline = Date.now() + this.#config.requestTimeoutMs;
    return new Promise<ApplyResult>((resolve, reject) => {
      this.#waiters.set(
        proposed.index,
        this.#waiter(proposed.index, proposed.term, resolve, reject, deadline),
      );
    });
  }

  // -----------------------------------------------------------------------------------------------------------
  // Driving the core

  #tick(): void {
    this.#raft.tick();
    for (const check of this.#onTick) check();
    this.#notifyLeader(this.#raft.leader);
    this.#schedule();
  }

  #onMessage(m: WireMessage): void {
    if (this.#closed) return;
    if (m.type === 'Forward') return this.#onForward(m);
    if (m.type === 'ForwardResponse') return this.#onForwardResponse(m);
    this.#raft.step(m);
    this.#schedule();
  }

  /**
   * A leader streams us a snapshot (§7): store it aside first, then let the core decide whether to install it (it
   * may be stale by now); an accepted one comes back in a Ready.
   */
  async #onSnapshot(m: InstallSnapshot, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    if (this.#closed) throw new UnavailableError('the node is shutting down');
    await this.#storage.stageSnapshot(m.snapshot, chunks);
    if (this.#closed) return;
    this.#raft.step(m);
    this.#schedule();
  }

  /** Handles Readies soon, after the current burst of input (so proposals and messages batch up). */
  #schedule(): void {
    if (this.#scheduled || this.#busy || this.#closed) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    if (this.#busy || this.#closed) return;
    this.#busy = true;
    try {
      while (this.#raft.hasReady() && !this.#closed && this.#fatal === undefined) {
        // Pipelined writes, bounded: beyond maxWritesInFlight, wait for those in progress.
        if (this.#writesInFlight >= maxWritesInFlight) await this.#lastWrite;
        await this.#handleReady(this.#raft.ready());
      }
    } catch (e) {
      this.#fail(e);
    } finally {
      this.#busy = false;
    }
  }

  /** Storage failed: the node can no longer keep Raft's promises, so it stops taking part. */
  #fail(e: unknown): void {
    if (this.#fatal !== undefined) return;
    this.#fatal = e instanceof Error ? e : new Error(String(e));
    this.#logger.fatal({ err: this.#fatal }, 'storage failed; the node stops');
    void this.close();
  }

  /**
   * The Ready contract, pipelined: install a snapshot; hand the entries and hard state to storage; send what does
   * not depend on them; apply what is committed; advance; and once storage says the write is durable, tell the
   * core (`persisted`) and send what depends on it. The next Ready need not wait for this write (storage keeps
   * writes in order), so a leader's AppendEntries and commit announcements never wait for its own fdatasync.
   *
   * Committed entries are applied before this Ready's write completes: they are already durable on a majority
   * (that is what commit means, §5.3), and the state machine lives in memory, so nothing about them waits for this
   * node's disk.
   */
  async #handleReady(rd: Ready): Promise<void> {
    if (rd.softState.role !== this.#role) {
      // Before this Ready's write. A follower (or candidate) writes its log on the main thread, blocking: what it
      // sends waits for the write anyway (acknowledgements and votes promise what is being written, Figure 2), and
      // entries arriving meanwhile wait in the socket and go to disk together in the next write. That saves the
      // thread pool's two hand-offs per write, 5-10% of the servers' CPU with one client. A leader writes through
      // the thread pool: its AppendEntries and answers must not wait for its own disk (thesis §10.2.1).
      this.#storage.setBlockingWrites?.(rd.softState.role !== 'leader');
    }
    if (rd.snapshot !== undefined) {
      await this.#lastWrite; // the staged snapshot replaces the log: no write of it may still be in progress
      await this.#installSnapshot(rd.snapshot);
    }
    // Before sending: this Ready's messages may go to members the new configuration just added.
    if (rd.config !== undefined) this.#onConfig(rd.config);
    if (rd.hardState !== undefined) this.#latestHardState = rd.hardState;
    // Thesis §10.2.1: a leader's AppendEntries do not depend on its own copy being durable (it counts itself toward
    // a majority only for entries in its stable storage), so they leave at once. Everything else waits for every
    // write handed out so far: votes and acknowledgements promise what is being written, and so does any message
    // sent while a change of the term or the vote is not yet durable.
    const latest = this.#latestHardState;
    const early =
      rd.softState.role === 'leader' &&
      latest.term === this.#durable.term &&
      latest.vote === this.#durable.vote;
    const now: Message[] = [];
    const later: Message[] = [];
    for (const m of rd.messages) {
      if (m.type === 'InstallSnapshot') continue;
      (early && m.type === 'AppendEntries' ? now : later).push(m);
    }
    if (this.#forwardReplies.length > 0) {
      const replies: WireMessage[] = this.#forwardReplies;
      this.#forwardReplies = [];
      this.#transport.send(now.length > 0 ? replies.concat(now) : replies);
    } else if (now.length > 0) this.#transport.send(now);
    for (const entry of rd.committedEntries) this.#apply(entry);
    this.#applied.reached(this.#kv.lastApplied);
    for (const read of rd.readStates) this.#reads.resolve(read.requestId, read.index);
    // Only the term, the vote and the entries must be durable before anything depends on them (Figure 2:
    // persistent state). The commit index is kept only so that a restart re-applies less: a Ready that changes
    // nothing else needs no write (and no fdatasync on the commit path); the commit index rides along with the
    // next write that is needed. It never runs ahead of the stored log: the entries it covers were handed to
    // storage by an earlier Ready, and storage keeps writes in order.
    const requested = this.#requestedHardState;
    const termOrVote = latest.term !== requested.term || latest.vote !== requested.vote;
    let wrote = false;
    if (termOrVote || rd.entries.length > 0) {
      const hardState = sameHardState(latest, requested) ? undefined : latest;
      this.#requestedHardState = latest;
      const entries = rd.entries;
      const write = this.#storage.save(hardState, entries).then(() => {
        if (hardState !== undefined) this.#durable = hardState;
        if (!this.#closed) this.#raft.persisted(entries);
      });
      wrote = true;
      this.#writesInFlight++;
      this.#lastWrite = write;
      write.then(
        () => {
          this.#writesInFlight--;
          // The core may have committed (a leader counts its own durable entries): handle that now, as the loop
          // would have had it waited for the write, rather than a turn of the event loop later.
          if (!this.#busy) void this.#drain();
        },
        (e: unknown) => {
          this.#writesInFlight--;
          this.#fail(e);
        },
      );
    }
    if (later.length > 0) {
      // After every write handed out so far (writes complete in order, so these go out in Ready order too).
      if (this.#writesInFlight === 0) this.#transport.send(later);
      else
        void this.#lastWrite.then(
          () => this.#transport.send(later),
          () => undefined,
        );
    }
    for (const m of rd.messages) if (m.type === 'InstallSnapshot') this.#sendSnapshot(m);
    this.#raft.advance(rd, !wrote);
    this.#observeRole(rd);
    this.#maybeSnapshot();
  }

  #observeRole(rd: Ready): void {
    const { role, leader } = rd.softState;
    if (this.#role === 'leader' && role !== 'leader') {
      // Reads waiting for this leader's confirmation will never get it; their clients should retry elsewhere.
      this.#reads.rejectAll(new ProposalDroppedError('leadership was lost before the read was confirmed'));
    }
    this.#role = role;
    if (leader !== null && leader !== this.#seenLeader) this.#leaderChanges++;
    this.#seenLeader = leader;
    this.#notifyLeader(leader);
    if (this.#transfer !== null && leader !== null && leader !== this.id)
      this.#transfer.done(leader, this.#raft.term);
  }

  async #installSnapshot(meta: SnapshotMeta): Promise<void> {
    await this.#storage.installStagedSnapshot(meta);
    await restoreFromStorage(this.#kv, this.#storage, meta);
    this.#snapshotIndex = meta.index;
    // Requests this node accepted as leader and that the snapshot covers: whether they committed is unknown here.
    for (const [index, waiter] of this.#waiters) {
      if (index > meta.index) continue;
      this.#waiters.delete(index);
      clearTimeout(waiter.timer);
      waiter.reject(
        new TimeoutError('the node installed a snapshot over this request; its outcome is unknown'),
      );
    }
    this.#rejectConfWaiters(
      (w) => w.index <= meta.index,
      new TimeoutError('the node installed a snapshot over this membership change; its outcome is unknown'),
    );
    this.#logger.info({ snapshot: meta }, `${this.id} installed a snapshot from the leader`);
  }

  /** Streams our latest snapshot to a follower that needs compacted entries (§7). */
  #sendSnapshot(m: InstallSnapshot): void {
    if (this.#sendingSnapshotTo.has(m.to)) return;
    this.#sendingSnapshotTo.add(m.to);
    const done = (delivered: boolean) => {
      this.#sendingSnapshotTo.delete(m.to);
      if (this.#closed) return;
      this.#raft.reportSnapshot(m.to, delivered);
      this.#schedule();
    };
    void (async () => {
      const source = await this.#storage.openSnapshot();
      if (source === null) throw new Error('no snapshot to send');
      this.#logger.info(
        { to: m.to, snapshot: source.meta, bytes: source.size },
        `sending a snapshot to ${m.to}`,
      );
      await this.#transport.sendSnapshot({ ...m, snapshot: source.meta }, source);
    })().then(
      () => done(true),
      (e: unknown) => {
        this.#logger.warn({ to: m.to, err: e }, `sending a snapshot to ${m.to} failed`);
        done(false);
      },
    );
  }

  /**
   * Snapshots the state machine after `snapshotThresholdEntries` applied entries, then compacts the log (§7). The
   * state is copied at once (a point in time), and written while the node goes on.
   */
  #maybeSnapshot(): void {
    const index = this.#kv.lastApplied;
    if (this.#snapshotting || index - this.#snapshotIndex < this.#config.snapshotThresholdEntries) return;
    const term = this.#raft.log.term(index);
    if (term === undefined) return; // a newer snapshot is being installed
    // Thesis §5.1: the snapshot keeps the configuration as of its last index.
    const meta = { index, term, config: this.#raft.log.configAt(index) };
    // A point in time, read while the node goes on applying (see KvStore.beginSnapshot).
    const view = this.#kv.beginSnapshot(snapshotSliceBytes);
    this.#snapshotting = true;
    void (async () => {
      await this.#storage.saveSnapshot(meta, view.chunks());
      if (this.#closed) return;
      this.#snapshotIndex = meta.index;
      this.#raft.compact(meta, this.#config.snapshotRetainEntries);
      await this.#storage.compact(this.#raft.log.firstIndex() - 1);
      this.#logger.info(
        { snapshot: meta, firstIndex: this.#raft.log.firstIndex() },
        `${this.id} took a snapshot`,
      );
    })()
      .catch((e: unknown) => this.#logger.error({ err: e }, 'taking a snapshot failed'))
      .finally(() => {
        view.release();
        this.#snapshotting = false;
      });
  }

  #apply(entry: Entry): void {
    this.#settleConfWaiters(entry);
    if (entry.type === EntryType.Noop || entry.type === EntryType.Config) {
      // Neither is a command for the state machine; a Config entry already took effect when it was appended.
      this.#kv.skip(entry.index);
      this.#settle(entry, null);
      return;
    }
    this.#settle(entry, this.#kv.apply(entry.index, entry.data));
  }

  #settleSuperseded(index: number): void {
    const waiter = this.#waiters.get(index);
    if (waiter === undefined) return;
    this.#waiters.delete(index);
    clearTimeout(waiter.timer);
    waiter.reject(
      new ProposalDroppedError('leadership changed before the request committed; it did not apply'),
    );
  }

  /** Answers the client waiting for this index, if any (on the leader that accepted its proposal). */
  #settle(entry: Entry, result: ApplyResult | null): void {
    const waiter = this.#waiters.get(entry.index);
    if (waiter === undefined) return;
    this.#waiters.delete(entry.index);
    clearTimeout(waiter.timer);
    if (entry.term !== waiter.term || result === null) {
      // Another leader's entry took this index: ours was never committed (Log Matching, §5.3).
      waiter.reject(
        new ProposalDroppedError('leadership changed before the request committed; it did not apply'),
      );
    } else if (result.op === 'invalid') {
      waiter.reject(new Error(`command rejected by the state machine: ${result.error}`));
    } else {
      waiter.resolve(result);
    }
  }
}

/** Resets `kv` from the storage's current snapshot, which must be `meta`. */
async function restoreFromStorage(kv: KvStore, storage: Storage, meta: SnapshotMeta): Promise<void> {
  const source = await storage.openSnapshot();
  if (source === null || source.meta.index !== meta.index || source.meta.term !== meta.term) {
    throw new Error(`storage holds no snapshot at index ${meta.index} term ${meta.term}`);
  }
  await kv.restore(source.chunks());
  if (kv.lastApplied !== meta.index) {
    throw new Error(`the snapshot at index ${meta.index} holds a state applied up to ${kv.lastApplied}`);
  }
}

const notAppliedInTime = 'the node did not apply the read index in time';

function writeResult(result: ApplyResult): WriteResult {
  if (result.op === 'get') throw new Error('node: a write answered like a read');
  if (result.op === 'invalid') throw new Error(`node: the state machine rejected a write: ${result.error}`);
  return result;
}

function toValue(key: string, found: { value: string; index: number } | null): KvValue | null {
  return found === null ? null : { key, value: found.value, index: found.index };
}

function notMember(id: NodeId): MembershipError {
  return new MembershipError('member_not_found', `${id} is not a member of the cluster`);
}

/**
 * Ready writes that may be in progress at once (pipelining). Storage coalesces writes queued behind one in
 * progress, so more in flight cost no more fdatasyncs; the bound keeps the held messages bounded.
 */
const maxWritesInFlight = 4;

/**
 * A snapshot of the state machine is encoded this many bytes per turn of the event loop: small enough that
 * encoding never holds up requests for long (a 1 MiB slice took 3-5 ms and raised p99 under load several-fold).
 */
const snapshotSliceBytes = 64 * 1024;

/** Requests in one Forward message (and the most a leader takes from one). */
const maxForwardRequests = 512;

function forwardTimedOut(leader: NodeId, ms: number): string {
  return `the leader ${leader} did not say within ${ms} ms where it put the request; it may or may not take effect`;
}
