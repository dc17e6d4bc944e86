// The node runtime: owns the core, drives its clock, honours the Ready contract, applies committed entries to
// the key-value store and answers the clients waiting for them.

import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { electionTicks, heartbeatTicks } from '../config/load.js';
import type { ClusterConfig } from '../config/types.js';
import { encodeCommand, type Command } from '../kv/command.js';
import { KvStore, type ApplyResult } from '../kv/store.js';
import { Raft, type RaftLimits, type Ready } from '../raft/raft.js';
import { SeededRandom } from '../raft/random.js';
import { EntryType, type Entry, type Message, type NodeId } from '../raft/types.js';
import type { Storage } from '../storage/storage.js';
import type { Transport } from '../transport/transport.js';
import type { Consistency, DeleteResult, KvService, KvValue, NodeStatus } from './api.js';
import { NotLeaderError, ProposalDroppedError, TimeoutError, UnavailableError } from './errors.js';

export interface RaftNodeOptions {
  readonly id: NodeId;
  readonly config: ClusterConfig;
  readonly storage: Storage;
  readonly transport: Transport;
  readonly logger: Logger;
  readonly raftLimits?: Partial<RaftLimits>;
  /** Client requests waiting for their entry to apply; beyond this new ones get 503 (STYLE.md 7). */
  readonly maxPendingRequests?: number;
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
  readonly #kv = new KvStore();
  readonly #waiters = new Map<number, Waiter>();
  readonly #maxPending: number;
  #ticker: NodeJS.Timeout | undefined;
  /** A Ready is being handled (possibly waiting for storage); another must not start (the Ready contract). */
  #busy = false;
  #scheduled = false;
  #closed = false;
  #fatal: Error | undefined;

  private constructor(options: RaftNodeOptions, raft: Raft) {
    this.id = options.id;
    this.#config = options.config;
    this.#storage = options.storage;
    this.#transport = options.transport;
    this.#logger = options.logger;
    this.#maxPending = options.maxPendingRequests ?? 20_000;
    this.#raft = raft;
  }

  /** Loads the node's stored state and builds its core; call `start` to join the cluster. */
  static async create(options: RaftNodeOptions): Promise<RaftNode> {
    const { config, logger } = options;
    const stored = await options.storage.load();
    const election = electionTicks(config);
    const raft = new Raft({
      id: options.id,
      voters: config.nodes.map((n) => n.id),
      // The config's range [min, max] is inclusive; the core draws from [min, max).
      electionTicksMin: election.min,
      electionTicksMax: election.max + 1,
      heartbeatTicks: heartbeatTicks(config),
      random: new SeededRandom(randomInt(2 ** 32)),
      hardState: stored.hardState,
      entries: stored.entries,
      ...(options.raftLimits === undefined ? {} : { limits: options.raftLimits }),
      log: (line) => logger.info(line),
    });
    return new RaftNode(options, raft);
  }

  async start(): Promise<void> {
    await this.#transport.start((m) => this.#onMessage(m));
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
    await this.#transport.close();
    await this.#storage.close();
  }

  // -----------------------------------------------------------------------------------------------------------
  // KvService

  async put(key: string, value: string): Promise<KvValue> {
    const result = await this.#propose({ op: 'set', key, value });
    if (result.op !== 'set') throw new Error(`node: set answered with ${result.op}`);
    return { key: result.key, value: result.value, index: result.index };
  }

  async delete(key: string): Promise<DeleteResult> {
    const result = await this.#propose({ op: 'delete', key });
    if (result.op !== 'delete') throw new Error(`node: delete answered with ${result.op}`);
    return { key: result.key, deleted: result.deleted, index: result.index };
  }

  async get(key: string, consistency: Consistency): Promise<KvValue | null> {
    if (consistency === 'stale') return toValue(key, this.#kv.get(key));
    // Until ReadIndex (thesis §6.4) lands, a linearizable read is ordered through the log: it is answered when
    // its entry applies, which proves this node was leader when the entry committed.
    const result = await this.#propose({ op: 'get', key });
    if (result.op !== 'get') throw new Error(`node: get answered with ${result.op}`);
    return toValue(key, result.found);
  }

  status(): NodeStatus {
    const matches = this.#raft.matchIndexes();
    return {
      id: this.id,
      role: this.#raft.role,
      term: this.#raft.term,
      leader: this.#raft.leader,
      commitIndex: this.#raft.log.committed,
      lastApplied: this.#kv.lastApplied,
      lastLogIndex: this.#raft.log.lastIndex(),
      peers: this.#config.nodes
        .filter((n) => n.id !== this.id)
        .map((n) => ({
          id: n.id,
          grpcAddress: n.grpcAddress,
          webAddress: n.webAddress,
          matchIndex: matches.get(n.id) ?? null,
        })),
    };
  }

  webAddressOf(id: NodeId): string | undefined {
    return this.#config.nodes.find((n) => n.id === id)?.webAddress;
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
      return Promise.reject(new NotLeaderError(proposed.leader));
    }
    this.#schedule();
    // A request still waiting at this index was proposed in an earlier term of ours and lost its slot to another
    // leader's entry, which this node's log now holds in its place: it can never commit.
    this.#settleSuperseded(proposed.index);
    return new Promise<ApplyResult>((resolve, reject) => {
      const waiter: Waiter = {
        term: proposed.term,
        resolve,
        reject,
        timer: setTimeout(() => {
          if (this.#waiters.get(proposed.index) === waiter) this.#waiters.delete(proposed.index);
          reject(
            new TimeoutError(
              `not applied within ${this.#config.requestTimeoutMs} ms; the request may or may not take effect`,
            ),
          );
        }, this.#config.requestTimeoutMs),
      };
      this.#waiters.set(proposed.index, waiter);
    });
  }

  // -----------------------------------------------------------------------------------------------------------
  // Driving the core

  #tick(): void {
    this.#raft.tick();
    this.#schedule();
  }

  #onMessage(m: Message): void {
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
      while (this.#raft.hasReady() && !this.#closed) await this.#handleReady(this.#raft.ready());
    } catch (e) {
      // Storage failed: the node can no longer keep Raft's promises, so it stops taking part.
      this.#fatal = e instanceof Error ? e : new Error(String(e));
      this.#logger.fatal({ err: this.#fatal }, 'storage failed; the node stops');
      void this.close();
    } finally {
      this.#busy = false;
    }
  }

  /** The Ready contract: persist, then send, then apply, then advance. */
  async #handleReady(rd: Ready): Promise<void> {
    if (rd.hardState !== undefined || rd.entries.length > 0)
      await this.#storage.save(rd.hardState, rd.entries);
    if (rd.messages.length > 0) this.#transport.send(rd.messages);
    for (const entry of rd.committedEntries) this.#apply(entry);
    this.#raft.advance(rd);
  }

  #apply(entry: Entry): void {
    if (entry.type === EntryType.Noop) {
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

function toValue(key: string, found: { value: string; index: number } | null): KvValue | null {
  return found === null ? null : { key, value: found.value, index: found.index };
}
