// A deterministic cluster simulator (STYLE.md 5, after etcd/raft's test network and TigerBeetle's VOPR).
//
// Several cores are wired by an in-memory network; one seeded PRNG decides every delay, loss, duplication,
// partition, crash, client request and membership change, so a seed replays exactly. After every event the Raft
// safety properties (Figure 3 of the paper) are checked:
//   Election Safety, Log Matching, Leader Completeness, State Machine Safety,
// and, since the configuration may change (thesis chapter 4), the membership checks of the section so named below:
// every commitment and every election had the majorities its configuration requires (both halves while joint),
// every node uses the latest configuration in its log, configurations change one at a time through legal steps.

import {
  confState,
  decodeConfState,
  encodeConfState,
  isJoint,
  isVoter,
  members,
  type ConfChange,
} from '../raft/confstate.js';
import { Raft, type Ready } from '../raft/raft.js';
import { SeededRandom } from '../raft/random.js';
import {
  EntryType,
  type ConfState,
  type Entry,
  type Message,
  type NodeId,
  type SnapshotMeta,
} from '../raft/types.js';
import { MemoryStorage } from '../storage/memory.js';

export interface SimOptions {
  readonly seed: number;
  /** The initial cluster: voters n1..n{nodes}. */
  readonly nodes: number;
  /**
   * Node ids n1..n{pool} exist (default: `nodes`). Those beyond the initial cluster run from the start as joining
   * nodes, bootstrapped with no voters (as a node that joins a running cluster is), until a membership change adds
   * them; removed members keep running.
   */
  readonly pool?: number;
  /** Rounds with faults; every round each live node ticks once. */
  readonly faultRounds: number;
  /** Rounds allowed, after faults stop, for the cluster to settle (then liveness is checked). */
  readonly calmRounds: number;
  readonly faults: FaultRates;
  /** Called with each trace line (for `npm run sim -- --verbose`). */
  readonly trace?: (line: string) => void;
}

/** Probabilities per round (or per message for loss and duplication). */
export interface FaultRates {
  readonly loss: number;
  readonly duplicate: number;
  /** Messages take 1..maxDelay rounds; different delays reorder them. */
  readonly maxDelay: number;
  readonly crash: number;
  readonly restart: number;
  readonly partition: number;
  readonly heal: number;
  readonly propose: number;
  /** Chance that a Ready's storage write takes 1-3 rounds; a crash meanwhile loses it, or keeps a torn prefix. */
  readonly slowDisk: number;
  /** Chance that a leader is asked for a random membership change (thesis chapter 4), while faults last. */
  readonly confChange: number;
  /** Chance that a leader is asked to hand leadership to a random member (thesis §3.10), while faults last. */
  readonly transfer: number;
  /**
   * Chance that a leader that has just appended a Config entry (C_old,new, C_new or a change of learners) is cut
   * off at once from a random part of the cluster, before the entry goes out: the windows of a membership change.
   */
  readonly confCut: number;
}

export const defaultFaults: FaultRates = {
  loss: 0.05,
  duplicate: 0.02,
  maxDelay: 4,
  crash: 0.004,
  restart: 0.05,
  partition: 0.01,
  heal: 0.02,
  propose: 0.3,
  slowDisk: 0.3,
  confChange: 0,
  transfer: 0,
  confCut: 0,
};

/**
 * The faults of `npm run sim -- --membership`: membership changes and leadership transfers on top of the default
 * faults, and a little more crashing and partitioning, since a larger pool of nodes spreads them thinner.
 */
export const membershipFaults: FaultRates = {
  ...defaultFaults,
  crash: 0.006,
  partition: 0.015,
  confChange: 0.06,
  transfer: 0.004,
  confCut: 0.2,
};

/** The pool of node ids a membership run uses unless told otherwise (n1..n7). */
export const defaultMembershipPool = 7;

/** The simulated state machine takes a snapshot every this many applied entries, keeping a few in the log. */
const snapshotEvery = 25;
const retainEntries = 5;

/**
 * Membership changes keep at least this many voters (or the initial count, if smaller), except that one removal in
 * `belowFloorChance` may go below it (down to one voter): a cluster of one or two voters is legal and its paths
 * deserve some runs, but with too few voters partitions and crashes decide nothing interesting.
 */
const minVoters = 3;
const belowFloorChance = 0.1;
/** A learner is "caught up" for promotion when it lags the leader's last index by at most this many entries. */
const promoteLag = 5;

export class SafetyViolation extends Error {}

interface SimNode {
  readonly id: NodeId;
  /** A member of the initial cluster (bootstrapped with the initial voters), or a joining node (with none). */
  readonly initial: boolean;
  /** What survives a crash: only what a Ready's write completed ("synced"). */
  readonly storage: MemoryStorage;
  raft: Raft | null; // null while crashed
  /** Chain hash of the stored log by index: chain(i) covers entries 1..i (Log Matching check). */
  chain: Map<number, number>;
  /** The simulated state machine: how far it applied, and a hash of everything it applied. */
  appliedIndex: number;
  stateHash: number;
  /** A Ready whose storage write has not completed yet; nothing of it is sent or applied before it does. */
  pending: { readonly rd: Ready; readonly doneAt: number } | null;
  /** Snapshots received from leaders, waiting for the core to decide to install them, by "index:term". */
  readonly staged: Map<string, SimSnapshot>;
  /** The configuration as the runtime would know it: the one at boot, then each one a Ready reported. */
  reported: ConfState;
  /** The indexes of the Config entries among the stored entries (kept with `chain`). */
  storedConfigs: number[];
  /** The Config entries in storage changed since the configuration was last recomputed from it. */
  storageChanged: boolean;
  /** The configuration (object) last found equal to the one recomputed from storage. */
  verified: ConfState | null;
  /** The leader's replication set was last checked at this term and configuration. */
  checkedLeader: { readonly term: number; readonly config: ConfState } | null;
}

/** What the simulated state machine's snapshot holds: its applied index and a hash of the applied entries. */
interface SimSnapshot {
  readonly meta: SnapshotMeta;
  readonly data: readonly Uint8Array[];
}

interface InFlight {
  readonly at: number;
  readonly message: Message;
  /** For InstallSnapshot: the data, as the transport would stream it. */
  readonly snapshot?: SimSnapshot;
}

interface Proposal {
  readonly index: number;
  readonly term: number;
  readonly data: string;
}

/** A leader's state just before an input that may advance its commit index. */
interface LeaderBefore {
  readonly term: number;
  readonly committed: number;
  readonly config: ConfState;
}

export interface SimResult {
  readonly rounds: number;
  readonly acknowledged: number;
  readonly elections: number;
  readonly maxTerm: number;
  readonly committed: number;
  readonly snapshotsInstalled: number;
  readonly readsConfirmed: number;
  /** Membership changes asked of leaders, by outcome: "ok" or the refusal's reason. */
  readonly confChanges: Readonly<Record<string, number>>;
  /** Configurations committed (Config entries applied), joint ones included. */
  readonly configsCommitted: number;
  /** Leadership transfers a leader accepted. */
  readonly transfers: number;
  /** Snapshots a joining node took before the first Config entry (see #checkSnapshotConfig). */
  readonly blindSnapshots: number;
  /** The voters of the final configuration. */
  readonly finalVoters: readonly NodeId[];
}

const electionTicksMin = 10;
const electionTicksMax = 20;
const heartbeatTicks = 3;

export class Simulator {
  readonly #opts: SimOptions;
  readonly #rng: SeededRandom;
  readonly #nodes: SimNode[];
  /** Every node id of the pool. */
  readonly #ids: NodeId[];
  /** The initial cluster's voters. */
  readonly #initial: ConfState;
  #now = 0;
  #network: InFlight[] = [];
  /** Directed links that drop everything: "from>to". */
  #cut = new Set<string>();
  #faulty = true;
  #proposalSeq = 0;
  #confSeq = 0;
  readonly #recent: string[] = [];

  // What the checks remember.
  readonly #leaderOfTerm = new Map<number, NodeId>();
  /** Committed entries as first observed anywhere: index -> "term:data". */
  readonly #committed: string[] = [''];
  /** (index, term) -> chain hash of the log prefix ending there. */
  readonly #chainAt = new Map<string, number>();
  /** index -> hash of the state machine after applying up to index, as first observed anywhere. */
  readonly #stateAt = new Map<number, number>();
  #snapshotsInstalled = 0;
  readonly #pending = new Map<NodeId, Proposal[]>();
  readonly #acknowledged: Proposal[] = [];
  /** Linearizable reads in flight: request id -> the highest index applied anywhere when the read began. */
  readonly #reads = new Map<number, number>();
  #readSeq = 0;
  #readsConfirmed = 0;
  #elections = 0;
  /** Durable votes: "term:voter" -> the candidate the voter's storage says it voted for in that term. */
  readonly #votes = new Map<string, NodeId>();
  /** The highest commit index any node has known: a lower bound of what is committed. */
  #maxCommitted = 0;
  /** The committed configurations in index order, as first applied anywhere (the initial one is not listed). */
  readonly #committedConfs: { readonly index: number; readonly conf: ConfState }[] = [];
  readonly #confOutcomes: Record<string, number> = {};
  #transfers = 0;
  #blindSnapshots = 0;

  constructor(opts: SimOptions) {
    this.#opts = opts;
    const pool = Math.max(opts.pool ?? opts.nodes, opts.nodes);
    this.#rng = new SeededRandom(opts.seed);
    this.#ids = Array.from({ length: pool }, (_, i) => `n${i + 1}`);
    this.#initial = confState(this.#ids.slice(0, opts.nodes));
    this.#nodes = this.#ids.map((id, i) => ({
      id,
      initial: i < opts.nodes,
      storage: new MemoryStorage(),
      raft: null,
      chain: new Map([[0, 0]]),
      appliedIndex: 0,
      stateHash: 0,
      pending: null,
      staged: new Map(),
      reported: this.#initial,
      storedConfigs: [],
      storageChanged: true,
      verified: null,
      checkedLeader: null,
    }));
    for (const node of this.#nodes) this.#boot(node);
  }

  run(): SimResult {
    try {
      for (let i = 0; i < this.#opts.faultRounds; i++) this.#round();
      this.#calm();
      for (let i = 0; i < this.#opts.calmRounds && !this.#settled(); i++) this.#round();
      this.#checkLiveness();
    } catch (e) {
      if (e instanceof SafetyViolation || e instanceof Error) {
        const tail = this.#recent.slice(-80).join('\n  ');
        e.message =
          `seed ${this.#opts.seed} round ${this.#now}: ${e.message}\n` +
          `replay: ${this.#replayCommand()}\nlast events:\n  ${tail}`;
      }
      throw e;
    }
    const final = this.#nodes.find((n) => n.raft?.role === 'leader')?.raft?.config ?? this.#initial;
    return {
      rounds: this.#now,
      acknowledged: this.#acknowledged.length,
      elections: this.#elections,
      maxTerm: Math.max(...this.#nodes.map((n) => n.storage.snapshot().hardState.term)),
      committed: this.#committed.length - 1,
      snapshotsInstalled: this.#snapshotsInstalled,
      readsConfirmed: this.#readsConfirmed,
      confChanges: { ...this.#confOutcomes },
      configsCommitted: this.#committedConfs.length,
      transfers: this.#transfers,
      blindSnapshots: this.#blindSnapshots,
      finalVoters: [...final.voters],
    };
  }

  /** The `npm run sim` command line that replays this run. */
  #replayCommand(): string {
    const o = this.#opts;
    const pool = this.#ids.length;
    let flags = `--seed ${o.seed} --nodes ${o.nodes}`;
    if (o.faults === membershipFaults) {
      flags += ' --membership';
      if (pool !== defaultMembershipPool) flags += ` --pool ${pool}`;
    } else if (o.faults !== defaultFaults || pool !== o.nodes) {
      return `(custom options: seed ${o.seed}, ${o.nodes} nodes, pool ${pool}, faults ${JSON.stringify(o.faults)})`;
    }
    if (o.faultRounds !== 1500 || o.calmRounds !== 1500) {
      if (o.faultRounds !== o.calmRounds)
        return `(custom rounds: ${o.faultRounds} + ${o.calmRounds}; ${flags})`;
      flags += ` --rounds ${o.faultRounds}`;
    }
    return `npm run sim -- ${flags} --verbose`;
  }

  // -----------------------------------------------------------------------------------------------------------
  // One round: faults, ticks, deliveries, client requests.

  #round(): void {
    this.#now++;
    if (this.#faulty) this.#injectFaults();
    for (const node of this.#nodes) {
      if (node.pending !== null && node.pending.doneAt <= this.#now) this.#complete(node);
    }
    for (const node of this.#nodes) {
      if (node.raft === null) continue;
      node.raft.tick();
      this.#process(node);
    }
    this.#deliver();
    const f = this.#opts.faults;
    if (this.#rng.chance(f.propose)) this.#propose();
    if (this.#rng.chance(f.propose / 2)) this.#read();
    // (Rates of 0 draw nothing, so runs without membership changes replay as they did before these existed.)
    if (this.#faulty && f.confChange > 0 && this.#rng.chance(f.confChange)) this.#changeMembership();
    if (this.#faulty && f.transfer > 0 && this.#rng.chance(f.transfer)) this.#transfer();
  }

  #deliver(): void {
    const due: InFlight[] = [];
    const later: InFlight[] = [];
    for (const f of this.#network) (f.at <= this.#now ? due : later).push(f);
    this.#network = later;
    for (const { message, snapshot } of due) {
      const node = this.#node(message.to);
      const raft = node.raft;
      if (raft === null) {
        // Delivered to a crashed node: lost. A snapshot transfer fails visibly to its sender.
        if (message.type === 'InstallSnapshot') this.#reportSnapshot(message, false);
        continue;
      }
      // The runtime stages the data before stepping the core.
      if (snapshot !== undefined) node.staged.set(`${snapshot.meta.index}:${snapshot.meta.term}`, snapshot);
      const before = leaderBefore(raft);
      raft.step(message);
      this.#checkCommit(node, raft, before);
      this.#maybeCutAfterChange(node, raft, before);
      this.#process(node);
      // The transport tells the sender the transfer completed.
      if (message.type === 'InstallSnapshot') this.#reportSnapshot(message, true);
    }
  }

  #send(sender: SimNode, m: Message): void {
    const f = this.#opts.faults;
    let message = m;
    let snapshot: SimSnapshot | undefined;
    if (message.type === 'InstallSnapshot') {
      // The runtime streams the sender's current snapshot, which may be newer than the one the core named.
      const current = sender.storage.snapshotData();
      if (current === null) throw new Error(`${sender.id} sends a snapshot it does not have`);
      snapshot = current;
      message = { ...message, snapshot: current.meta };
    }
    const lost = this.#cut.has(`${message.from}>${message.to}`) || (this.#faulty && this.#rng.chance(f.loss));
    if (lost) {
      if (message.type === 'InstallSnapshot') this.#reportSnapshot(message, false);
      return;
    }
    const copies = this.#faulty && this.#rng.chance(f.duplicate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = this.#faulty ? this.#rng.int(1, f.maxDelay + 1) : 1;
      this.#network.push({ at: this.#now + delay, message, ...(snapshot === undefined ? {} : { snapshot }) });
    }
  }

  /**
   * Runs the Ready loop of one node the way the runtime does: persist, then send, apply and advance. A write may
   * take a few rounds (a slow disk); the node handles no further Ready until it completes.
   */
  #process(node: SimNode): void {
    const raft = node.raft;
    if (raft === null) return;
    this.#noteCommit(raft);
    while (node.pending === null && raft.hasReady()) {
      const rd = raft.ready();
      this.#observeRole(node, raft, rd);
      if (rd.config !== undefined) node.reported = rd.config;
      const writes = rd.snapshot !== undefined || rd.hardState !== undefined || rd.entries.length > 0;
      // As the runtime does (thesis §10.2.1): a leader's AppendEntries leave before its own write completes, unless
      // the Ready changes the term or vote.
      const stored = node.storage.snapshot().hardState;
      const early =
        rd.softState.role === 'leader' &&
        (rd.hardState === undefined ||
          (rd.hardState.term === stored.term && rd.hardState.vote === stored.vote));
      const later = early ? rd.messages.filter((m) => m.type !== 'AppendEntries') : rd.messages;
      if (early) for (const m of rd.messages) if (m.type === 'AppendEntries') this.#send(node, m);
      const rest = { ...rd, messages: later };
      node.pending = { rd: rest, doneAt: this.#now };
      if (writes && this.#faulty && this.#rng.chance(this.#opts.faults.slowDisk)) {
        node.pending = { rd: rest, doneAt: this.#now + this.#rng.int(1, 4) };
        return;
      }
      this.#complete(node);
    }
    if (node.raft === raft) this.#checkMembership(node, raft);
  }

  /** The pending Ready's write is durable: install, store, send, apply, advance (the Ready contract). */
  #complete(node: SimNode): void {
    const raft = node.raft;
    const pending = node.pending;
    if (raft === null || pending === null) return;
    node.pending = null;
    const { rd } = pending;
    if (rd.snapshot !== undefined) this.#install(node, rd.snapshot);
    this.#write(node, rd.hardState, rd.entries);
    for (const m of rd.messages) this.#send(node, m);
    for (const entry of rd.committedEntries) this.#apply(node, raft, entry);
    for (const read of rd.readStates) this.#checkRead(node, read.requestId, read.index);
    const before = leaderBefore(raft);
    raft.advance(rd);
    this.#checkCommit(node, raft, before);
    this.#maybeCutAfterChange(node, raft, before);
    this.#maybeSnapshot(node, raft);
    this.#process(node);
  }

  #write(node: SimNode, hardState: Ready['hardState'], entries: readonly Entry[]): void {
    node.storage.saveSync(hardState, entries);
    const first = entries[0];
    if (first !== undefined) {
      const configs = node.storedConfigs;
      while ((configs[configs.length - 1] ?? 0) >= first.index) {
        configs.pop();
        node.storageChanged = true;
      }
      for (const e of entries) {
        if (e.type !== EntryType.Config) continue;
        configs.push(e.index);
        node.storageChanged = true;
      }
    }
    if (hardState !== undefined && hardState.vote !== '')
      this.#checkVote(node, hardState.term, hardState.vote);
    this.#checkLogMatching(node, entries);
  }

  /** Installs the staged snapshot the core accepted; the state machine is reset from it. */
  #install(node: SimNode, meta: SnapshotMeta): void {
    const staged = node.staged.get(`${meta.index}:${meta.term}`);
    if (staged === undefined) {
      throw new Error(`${node.id} installs snapshot ${meta.index}/${meta.term} that it never received`);
    }
    for (const [key, other] of node.staged) if (other.meta.index <= meta.index) node.staged.delete(key);
    node.storage.installSync(staged);
    this.#rebuildChain(node);
    this.#restoreState(node, staged);
    this.#snapshotsInstalled++;
    this.#event(`${node.id} installed snapshot at ${meta.index}`);
  }

  /**
   * The state machine takes a snapshot now and then and the log is compacted (§7). As the runtime must, the
   * snapshot carries the configuration in force at its last index (thesis §5.1), which the core knows.
   */
  #maybeSnapshot(node: SimNode, raft: Raft): void {
    const latest = node.storage.snapshotData()?.meta.index ?? 0;
    if (node.appliedIndex - latest < snapshotEvery) return;
    const term = raft.log.term(node.appliedIndex);
    if (term === undefined) return; // the core holds a newer snapshot that the next Ready installs
    const config = raft.log.configAt(node.appliedIndex);
    this.#checkSnapshotConfig(node, node.appliedIndex, config);
    const meta: SnapshotMeta = { index: node.appliedIndex, term, config };
    const data = [new TextEncoder().encode(`${node.appliedIndex}:${node.stateHash}`)];
    node.storage.installSync({ meta, data }); // as saveSnapshot + compact: the snapshot matches the log
    node.storedConfigs = node.storedConfigs.filter((index) => index > meta.index);
    // MemoryStorage dropped the log up to the snapshot; keep the retained tail like a real compaction would:
    raft.compact(meta, retainEntries);
  }

  #restoreState(node: SimNode, snap: SimSnapshot): void {
    const text = new TextDecoder().decode(snap.data[0]);
    const [index, hash] = text.split(':').map(Number);
    if (index !== snap.meta.index || hash === undefined) throw new Error(`bad simulated snapshot ${text}`);
    const expected = this.#stateAt.get(index);
    if (expected !== undefined && expected !== hash) {
      throw new SafetyViolation(
        `State Machine Safety: ${node.id} restored a snapshot at ${index} unlike the applied state`,
      );
    }
    node.appliedIndex = index;
    node.stateHash = hash;
  }

  // -----------------------------------------------------------------------------------------------------------
  // Faults

  #injectFaults(): void {
    const f = this.#opts.faults;
    const live = this.#nodes.filter((n) => n.raft !== null);
    const down = this.#nodes.filter((n) => n.raft === null);
    if (live.length > 0 && this.#rng.chance(f.crash)) this.#crash(this.#rng.pick(live));
    if (down.length > 0 && this.#rng.chance(f.restart)) this.#boot(this.#rng.pick(down));
    if (this.#rng.chance(f.partition)) this.#partition();
    if (this.#cut.size > 0 && this.#rng.chance(f.heal)) {
      this.#cut.clear();
      this.#event('network healed');
    }
  }

  /** Partitions cut links between any nodes of the pool: members, learners, joining and removed nodes alike. */
  #partition(): void {
    const ids = [...this.#ids];
    const shape = this.#rng.int(0, 3);
    if (shape === 0) {
      // Isolate one node, both ways.
      const lone = this.#rng.pick(ids);
      for (const other of ids) if (other !== lone) this.#cutBoth(lone, other);
      this.#event(`partition: ${lone} isolated`);
    } else if (shape === 1) {
      // Two halves.
      const shuffled = ids.sort(() => this.#rng.float() - 0.5);
      const k = this.#rng.int(1, ids.length);
      const a = shuffled.slice(0, k);
      const b = shuffled.slice(k);
      for (const x of a) for (const y of b) this.#cutBoth(x, y);
      this.#event(`partition: [${a.join(',')}] | [${b.join(',')}]`);
    } else {
      // One-way: a node can send but not receive (or the other way round).
      const x = this.#rng.pick(ids);
      const inbound = this.#rng.chance(0.5);
      for (const y of ids) if (y !== x) this.#cut.add(inbound ? `${y}>${x}` : `${x}>${y}`);
      this.#event(`partition: ${x} ${inbound ? 'cannot receive' : 'cannot send'}`);
    }
  }

  /** After an input to a leader: if it appended a configuration (C_new, say), maybe cut it off (confCut). */
  #maybeCutAfterChange(node: SimNode, raft: Raft, before: LeaderBefore | null): void {
    if (before !== null && raft.role === 'leader' && raft.config !== before.config)
      this.#cutAfterChange(node);
  }

  /** A leader just appended a Config entry: with `confCut`, part of the cluster stops hearing it at once. */
  #cutAfterChange(node: SimNode): void {
    const rate = this.#opts.faults.confCut;
    if (!this.#faulty || rate === 0 || !this.#rng.chance(rate)) return;
    const cut = this.#ids.filter((id) => id !== node.id && this.#rng.chance(0.5));
    for (const other of cut) this.#cutBoth(node.id, other);
    this.#event(`partition: ${node.id} cut from [${cut.join(',')}] right after a configuration change`);
  }

  #cutBoth(a: NodeId, b: NodeId): void {
    this.#cut.add(`${a}>${b}`);
    this.#cut.add(`${b}>${a}`);
  }

  #crash(node: SimNode): void {
    const pending = node.pending;
    if (pending !== null) {
      // The write in progress is lost, or a prefix of it reached the disk (a torn write): entries in order, then the
      // hard state. Nothing that depends on it was sent.
      const { rd } = pending;
      const records = rd.entries.length + (rd.hardState === undefined ? 0 : 1);
      const kept = this.#rng.int(0, records + 1);
      if (kept > 0) {
        if (rd.snapshot !== undefined) this.#install(node, rd.snapshot);
        const entries = rd.entries.slice(0, kept);
        this.#write(node, kept > rd.entries.length ? rd.hardState : undefined, entries);
      }
      this.#event(`${node.id} lost ${records - kept} of ${records} unsynced records`);
    }
    node.pending = null;
    node.staged.clear();
    node.raft = null;
    this.#pending.delete(node.id); // A crashed leader acknowledges nothing more.
    this.#event(`${node.id} crashed`);
  }

  /**
   * Starts (or restarts) a node from what its storage holds; its state machine is rebuilt by re-applying. A
   * member of the initial cluster is bootstrapped with the initial voters, a joining node with none, on every boot:
   * from then on its configuration is the latest its storage holds (thesis §4.1).
   */
  #boot(node: SimNode): void {
    const stored = node.storage.snapshot();
    node.appliedIndex = 0;
    node.stateHash = 0;
    const snap = node.storage.snapshotData();
    if (snap !== null) this.#restoreState(node, snap);
    this.#rebuildChain(node);
    const raft = new Raft({
      id: node.id,
      voters: node.initial ? this.#initial.voters : [],
      electionTicksMin,
      electionTicksMax,
      heartbeatTicks,
      random: new SeededRandom(this.#rng.next()),
      hardState: stored.hardState,
      snapshot: stored.snapshot,
      entries: stored.entries,
      limits: { maxBatchEntries: 8, maxInflightMessages: 4 },
      log: (line) => this.#event(line),
    });
    node.raft = raft;
    node.reported = raft.config; // what the runtime reads at start; Ready reports changes from there
    node.storageChanged = true;
    if (this.#now > 0) this.#event(`${node.id} restarted`);
  }

  /** Faults stop: the network heals, crashed nodes restart, messages are neither lost nor duplicated. */
  #calm(): void {
    this.#faulty = false;
    this.#cut.clear();
    for (const node of this.#nodes) if (node.raft === null) this.#boot(node);
    this.#event('faults stopped');
  }

  // -----------------------------------------------------------------------------------------------------------
  // Clients

  #propose(): void {
    const leaders = this.#nodes.filter((n) => n.raft?.role === 'leader');
    if (leaders.length === 0) return;
    const node = this.#rng.pick(leaders);
    const data = `p${++this.#proposalSeq}`;
    const result = node.raft?.propose(new TextEncoder().encode(data));
    if (result === undefined || !result.ok) return;
    this.#expect(node, { index: result.index, term: result.term, data });
    this.#process(node);
  }

  /** The leader answers the client once the entry is applied (checked in #apply, and against the end state). */
  #expect(node: SimNode, p: Proposal): void {
    const list = this.#pending.get(node.id) ?? [];
    list.push(p);
    this.#pending.set(node.id, list);
  }

  /** A linearizable read (ReadIndex) on a node that believes it leads. */
  #read(): void {
    const leaders = this.#nodes.filter((n) => n.raft?.role === 'leader');
    if (leaders.length === 0) return;
    const node = this.#rng.pick(leaders);
    const requestId = ++this.#readSeq;
    if (node.raft?.readIndex(requestId).ok !== true) return;
    this.#reads.set(requestId, this.#committed.length - 1);
    this.#process(node);
  }

  /**
   * Linearizable reads: a confirmed read index must cover every entry that was applied anywhere (so committed, and
   * possibly acknowledged to a client) before the read began; a deposed leader answering from its own state would
   * fail this.
   */
  #checkRead(node: SimNode, requestId: number, index: number): void {
    const atLeast = this.#reads.get(requestId);
    if (atLeast === undefined) throw new Error(`${node.id} confirmed unknown read ${requestId}`);
    this.#reads.delete(requestId);
    this.#readsConfirmed++;
    if (index < atLeast) {
      throw new SafetyViolation(
        `stale read: ${node.id} confirmed read ${requestId} at ${index} < ${atLeast}`,
      );
    }
  }

  /**
   * An operator asks a node that believes it leads for a random membership change (thesis chapter 4). Most are
   * plausible (add a learner, promote a caught-up learner, remove a voter or a learner, sometimes the leader itself,
   * replace two voters at once); some are not (promote a learner that lags, add a voter directly, ask twice, ask
   * something invalid). The core refuses what it must; refusals are counted, not errors.
   */
  #changeMembership(): void {
    const leaders = this.#nodes.filter((n) => n.raft?.role === 'leader');
    if (leaders.length === 0) return;
    const node = this.#rng.pick(leaders);
    const raft = node.raft;
    if (raft === null) return;
    const changes = this.#pickChanges(raft);
    if (changes.length === 0) return;
    const result = raft.proposeConfChange(changes, `c${++this.#confSeq}`);
    const outcome = result.ok ? 'ok' : result.reason;
    this.#confOutcomes[outcome] = (this.#confOutcomes[outcome] ?? 0) + 1;
    const asked = changes.map((c) => `${c.type} ${c.id}`).join(', ');
    this.#event(
      `${node.id} asked to ${asked}: ` +
        (result.ok ? `accepted at ${result.index}` : `refused (${result.reason})`),
    );
    if (result.ok) {
      this.#cutAfterChange(node);
      // Acknowledged like a command once the leader applies it: then it must be in the committed log for good.
      this.#expect(node, {
        index: result.index,
        term: result.term,
        data: decoder.decode(encodeConfState(result.config)),
      });
    }
    this.#process(node);
  }

  #pickChanges(raft: Raft): ConfChange[] {
    const c = raft.config;
    const rng = this.#rng;
    const voters = [...new Set([...c.voters, ...c.outgoing])];
    const learners = [...c.learners];
    const strangers = this.#ids.filter((id) => !members(c).includes(id));
    const caughtUp = learners.filter(
      (id) => raft.log.lastIndex() - (raft.memberProgress(id)?.match ?? 0) <= promoteLag,
    );
    const floor = Math.min(minVoters, this.#opts.nodes);
    const mayShrink = (by: number) =>
      c.voters.length - by >= floor || (c.voters.length - by >= 1 && rng.chance(belowFloorChance));
    const removeVoter = (): NodeId => (rng.chance(0.25) ? raft.id : rng.pick(c.voters));
    const r = rng.float();
    if (c.voters.length < floor && r < 0.5) {
      // Below the floor: grow back first.
      if (caughtUp.length > 0) return [{ type: 'promote', id: rng.pick(caughtUp) }];
      if (strangers.length > 0) return [{ type: 'addLearner', id: rng.pick(strangers) }];
    }
    if (r < 0.25) {
      return strangers.length > 0 ? [{ type: 'addLearner', id: rng.pick(strangers) }] : [];
    }
    if (r < 0.45) {
      // Promote a caught-up learner, or now and then one that lags (it must then catch up as a voter).
      const pool = rng.chance(0.75) ? caughtUp : learners;
      return pool.length > 0 ? [{ type: 'promote', id: rng.pick(pool) }] : [];
    }
    if (r < 0.5) {
      // A voter added directly, with no learner phase.
      return strangers.length > 0 ? [{ type: 'addVoter', id: rng.pick(strangers) }] : [];
    }
    if (r < 0.68) {
      return mayShrink(1) ? [{ type: 'remove', id: removeVoter() }] : [];
    }
    if (r < 0.78) {
      return learners.length > 0 ? [{ type: 'remove', id: rng.pick(learners) }] : [];
    }
    if (r < 0.86) {
      // Swap one voter for a learner.
      if (learners.length === 0) return [];
      return [
        { type: 'promote', id: rng.pick(learners) },
        { type: 'remove', id: removeVoter() },
      ];
    }
    if (r < 0.94) {
      // Replace two voters at once: C_old and C_new then share only the voters that stay (thesis §4.3).
      if (learners.length < 2 || c.voters.length < 2) return [];
      const [a, b] = shuffle(rng, learners);
      const [x, y] = shuffle(rng, c.voters);
      if (a === undefined || b === undefined || x === undefined || y === undefined) return [];
      return [
        { type: 'promote', id: a },
        { type: 'promote', id: b },
        { type: 'remove', id: x },
        { type: 'remove', id: y },
      ];
    }
    // Something the core must refuse as invalid (or as pending, if a change is under way).
    const anyone = rng.pick(this.#ids);
    const kind = rng.int(0, 4);
    if (kind === 0) return [{ type: 'addLearner', id: rng.pick(voters) }];
    if (kind === 1) return [{ type: 'promote', id: rng.pick(voters) }];
    if (kind === 2) return strangers.length > 0 ? [{ type: 'remove', id: rng.pick(strangers) }] : [];
    return [
      { type: 'addLearner', id: anyone },
      { type: 'remove', id: anyone },
    ];
  }

  /** An operator asks a node that believes it leads to hand over to a random member (thesis §3.10). */
  #transfer(): void {
    const leaders = this.#nodes.filter((n) => n.raft?.role === 'leader');
    if (leaders.length === 0) return;
    const node = this.#rng.pick(leaders);
    const raft = node.raft;
    if (raft === null) return;
    const others = members(raft.config).filter((id) => id !== raft.id);
    if (others.length === 0) return;
    if (raft.transferLeadership(this.#rng.pick(others)).ok) this.#transfers++;
    this.#process(node);
  }

  // -----------------------------------------------------------------------------------------------------------
  // Safety checks (Figure 3)

  /** Election Safety: at most one leader can be elected in a given term (§5.2). */
  #observeRole(node: SimNode, raft: Raft, rd: Ready): void {
    if (rd.softState.role !== 'leader') return;
    const known = this.#leaderOfTerm.get(raft.term);
    if (known === undefined) {
      this.#leaderOfTerm.set(raft.term, node.id);
      this.#elections++;
      this.#checkLeaderCompleteness(node, raft);
      this.#checkElectionQuorum(node, raft);
    } else if (known !== node.id) {
      throw new SafetyViolation(`Election Safety: ${known} and ${node.id} both lead term ${raft.term}`);
    }
  }

  /** Leader Completeness: a leader's log holds every entry committed in earlier terms (§5.4). */
  #checkLeaderCompleteness(node: SimNode, raft: Raft): void {
    const { index: offset, term: offsetTerm } = raft.log.offset();
    if (
      offset > 0 &&
      this.#committed[offset] !== undefined &&
      !this.#committed[offset]?.startsWith(`${offsetTerm}:`)
    ) {
      throw new SafetyViolation(
        `Leader Completeness: ${node.id}'s snapshot at ${offset} has term ${offsetTerm}`,
      );
    }
    for (let i = offset + 1; i < this.#committed.length; i++) {
      const entry = raft.log.entry(i);
      const have = entry === undefined ? 'nothing' : entryKey(entry);
      if (have !== this.#committed[i]) {
        throw new SafetyViolation(
          `Leader Completeness: ${node.id} leads term ${raft.term} but has ${have} at committed index ${i} ` +
            `(committed: ${this.#committed[i]})`,
        );
      }
    }
  }

  /**
   * Log Matching: if two logs have an entry with the same index and term, the logs are identical up to there
   * (§5.3). Checked on stored logs with a hash chain: equal (index, term) must mean an equal prefix hash.
   */
  #checkLogMatching(node: SimNode, written: readonly Entry[]): void {
    const first = written[0];
    if (first === undefined) return;
    for (const index of node.chain.keys()) if (index >= first.index) node.chain.delete(index);
    for (const entry of written) {
      const before = node.chain.get(entry.index - 1);
      if (before === undefined) throw new Error(`${node.id}: wrote ${entry.index} without its predecessor`);
      const hash = chainHash(before, entry);
      node.chain.set(entry.index, hash);
      const key = `${entry.index}:${entry.term}`;
      const seen = this.#chainAt.get(key);
      if (seen === undefined) this.#chainAt.set(key, hash);
      else if (seen !== hash) {
        throw new SafetyViolation(
          `Log Matching: ${node.id} differs from another log before index ${entry.index}`,
        );
      }
    }
  }

  /** State Machine Safety: no two servers apply different entries at the same index (§5.4.3). */
  #apply(node: SimNode, raft: Raft, entry: Entry): void {
    if (entry.index !== node.appliedIndex + 1) {
      throw new SafetyViolation(`${node.id} applied index ${entry.index} after ${node.appliedIndex}`);
    }
    node.appliedIndex = entry.index;
    node.stateHash = chainHash(node.stateHash, entry);
    const seenState = this.#stateAt.get(entry.index);
    if (seenState === undefined) this.#stateAt.set(entry.index, node.stateHash);
    else if (seenState !== node.stateHash) {
      throw new SafetyViolation(
        `State Machine Safety: ${node.id}'s state after ${entry.index} differs from others'`,
      );
    }
    const key = entryKey(entry);
    const known = this.#committed[entry.index];
    if (known === undefined) {
      this.#committed[entry.index] = key;
      if (entry.type === EntryType.Config) this.#noteCommittedConfig(entry);
    } else if (known !== key) {
      throw new SafetyViolation(
        `State Machine Safety: ${node.id} applied ${key} at ${entry.index}, others ${known}`,
      );
    }
    // The leader that proposed this entry now answers its client.
    const pending = this.#pending.get(node.id);
    if (raft.role === 'leader' && pending !== undefined) {
      while (pending.length > 0 && (pending[0]?.index ?? Infinity) <= entry.index) {
        const p = pending.shift();
        if (p === undefined) break;
        const applied = p.index === entry.index ? entry : null;
        if (applied !== null && applied.term === p.term && decode(applied) === p.data)
          this.#acknowledged.push(p);
      }
    }
  }

  // -----------------------------------------------------------------------------------------------------------
  // Membership checks (thesis chapter 4)
  //
  // - Commitment (§5.3, §5.4.2, thesis §4.3): when a leader advances its commit index to c, the entry at c is of
  //   its own term, and a majority of the voters of its configuration have c in their stable storage; while
  //   joint, a majority of C_new and, separately, a majority of C_old.
  // - Elections (§5.2, thesis §4.3): a new leader holds the durable votes of a majority of its configuration's
  //   voters (of both halves while joint); no server's storage ever shows two votes in one term (Figure 2).
  // - The configuration in force (thesis §4.1) is the latest in the node's log: recomputed from what its storage
  //   holds (the last Config entry, else the snapshot's configuration, else the bootstrap one) it equals the
  //   core's, and the runtime's view through Ready.config agrees too.
  // - One change at a time (thesis §4.1, §4.3): in any log, every Config entry but the last is committed.
  // - Legal steps (thesis §4.3): each committed configuration follows the previous committed one as C_old ->
  //   C_old,new (the outgoing voters are C_old's), C_old,new -> C_new (the same members, outgoing dropped), or a
  //   change of learners alone (§4.2.1: learners count toward no majority, so no joint step is needed).
  // - Snapshots (thesis §5.1) carry the configuration committed as of their last index.
  // - Roles: a candidate or leader is a voter of its configuration (§4.2.1: learners and strangers never campaign),
  //   or an outgoing voter of the joint configuration before a C_new that removes it and is not committed yet
  //   (§4.2.2: a removed leader stays until C_new commits; see Raft.#mayCampaign for candidates); a leader
  //   replicates to exactly the members of its configuration.

  /** The highest commit index known anywhere, kept after every input to every node. */
  #noteCommit(raft: Raft): void {
    if (raft.log.committed > this.#maxCommitted) this.#maxCommitted = raft.log.committed;
  }

  /** After an input to a node that led before it: the commit rule of §5.3/§5.4.2 and thesis §4.3. */
  #checkCommit(node: SimNode, raft: Raft, before: LeaderBefore | null): void {
    this.#noteCommit(raft);
    if (before === null || raft.term !== before.term || raft.log.committed <= before.committed) return;
    const c = raft.log.committed;
    const term = raft.log.term(c);
    if (term !== before.term) {
      throw new SafetyViolation(
        `commit rule (§5.4.2): ${node.id}, leader of term ${before.term}, committed ${c} of term ${term} by counting`,
      );
    }
    const halves = isJoint(before.config)
      ? [before.config.voters, before.config.outgoing]
      : [before.config.voters];
    for (const half of halves) {
      const holders = half.filter((id) => this.#holds(this.#node(id), c, term));
      if (holders.length * 2 <= half.length) {
        throw new SafetyViolation(
          `commit rule (§5.3, thesis §4.3): ${node.id} committed ${c} at term ${term} but only ` +
            `[${holders.join(',')}] of the voters [${half.join(',')}] store it ` +
            `(configuration ${describeConf(before.config)})`,
        );
      }
    }
  }

  /** Whether the node's stable storage holds entry (index, term), or a snapshot that covers it. */
  #holds(node: SimNode, index: number, term: number): boolean {
    const hash = this.#chainAt.get(`${index}:${term}`);
    if (hash !== undefined && node.chain.get(index) === hash) return true;
    return (node.storage.snapshotData()?.meta.index ?? 0) >= index;
  }

  /** Figure 2: one vote per term, and persistent state never goes back. */
  #checkVote(node: SimNode, term: number, vote: NodeId): void {
    const key = `${term}:${node.id}`;
    const earlier = this.#votes.get(key);
    if (earlier === undefined) this.#votes.set(key, vote);
    else if (earlier !== vote) {
      throw new SafetyViolation(
        `one vote per term (§5.2): ${node.id} voted for ${earlier} and ${vote} in term ${term}`,
      );
    }
  }

  /** §5.2, thesis §4.3: a new leader won the votes of a majority of each half of its configuration. */
  #checkElectionQuorum(node: SimNode, raft: Raft): void {
    const c = raft.config;
    if (!this.#mayStand(raft)) {
      throw new SafetyViolation(
        `thesis §4.2.1: ${node.id} became leader of term ${raft.term} but is no voter of ${describeConf(c)}`,
      );
    }
    const votedFor = (id: NodeId) => id === node.id || this.#votes.get(`${raft.term}:${id}`) === node.id;
    for (const half of isJoint(c) ? [c.voters, c.outgoing] : [c.voters]) {
      const granted = half.filter(votedFor);
      if (granted.length * 2 <= half.length) {
        throw new SafetyViolation(
          `election (§5.2, thesis §4.3): ${node.id} leads term ${raft.term} with the votes of ` +
            `[${granted.join(',')}] of the voters [${half.join(',')}] (configuration ${describeConf(c)})`,
        );
      }
    }
  }

  /** The per-node membership checks, after every input once the node's Ready loop has run. */
  #checkMembership(node: SimNode, raft: Raft): void {
    const c = raft.config;
    if (raft.role === 'candidate' && !this.#mayStand(raft)) {
      throw new SafetyViolation(
        `thesis §4.2.1: ${node.id} campaigns at term ${raft.term} but is no voter of ${describeConf(c)}`,
      );
    }
    if (raft.role === 'leader') this.#checkLeaderConfig(node, raft, c);
    if (node.pending !== null) return;
    // The Ready loop is done: nothing unstable, nothing to install, so storage holds exactly the core's log.
    if (node.reported !== c && !sameConf(node.reported, c)) {
      throw new SafetyViolation(
        `Ready.config: ${node.id} reported ${describeConf(node.reported)} but uses ${describeConf(c)}`,
      );
    }
    if (node.storageChanged || node.verified !== c) this.#checkStoredConfig(node, c);
  }

  /** A leader is a voter of its configuration (thesis §4.2.2 aside) and replicates to its members (§4.1). */
  #checkLeaderConfig(node: SimNode, raft: Raft, c: ConfState): void {
    if (!this.#mayStand(raft)) {
      throw new SafetyViolation(
        `thesis §4.2.2: ${node.id} leads term ${raft.term} under ${describeConf(c)} (at ${raft.configIndex}, ` +
          `committed ${raft.log.committed}), which excludes it`,
      );
    }
    // The replication set changes only with the configuration or the term: check it then.
    const checked = node.checkedLeader;
    if (checked !== null && checked.term === raft.term && checked.config === c) return;
    node.checkedLeader = { term: raft.term, config: c };
    const wanted = members(c)
      .filter((id) => id !== raft.id)
      .sort();
    const have = [...raft.matchIndexes().keys()].sort();
    if (wanted.join(',') !== have.join(',')) {
      throw new SafetyViolation(
        `thesis §4.1: ${node.id} leads under ${describeConf(c)} but replicates to [${have.join(',')}]`,
      );
    }
  }

  /**
   * Whether the node may be a candidate or a leader: it votes in its configuration, or that configuration is a C_new
   * not committed yet (as far as the node knows) that removes it from the joint configuration before, where it was
   * an outgoing voter. Thesis §4.2.2: a leader so removed manages the cluster until C_new commits; a voter so
   * removed may need to be elected for C_new to commit at all (when it holds the only logs C_old's majority takes).
   */
  #mayStand(raft: Raft): boolean {
    if (isVoter(raft.config, raft.id)) return true;
    const index = raft.configIndex;
    if (index <= raft.log.committed) return false;
    const previous = this.#previousConfig(raft, index);
    return isJoint(previous) && previous.outgoing.includes(raft.id);
  }

  /**
   * The configuration before the one at `index` in the node's log: the Config entry before it, read from the log,
   * else the one in force where the log was compacted, which is committed there (the entries after it need not be).
   */
  #previousConfig(raft: Raft, index: number): ConfState {
    for (let i = index - 1; i >= raft.log.firstIndex(); i--) {
      const e = raft.log.entry(i);
      if (e?.type === EntryType.Config) return decodeConfState(e.data);
    }
    return this.#committedConfigAt(raft.log.firstIndex() - 1);
  }

  /** Recomputes the configuration from what the node's storage holds, as a restart would, and compares. */
  #checkStoredConfig(node: SimNode, c: ConfState): void {
    node.storageChanged = false;
    const stored = node.storage.snapshot();
    const configs = stored.entries.filter((e) => e.type === EntryType.Config);
    for (const e of configs.slice(0, -1)) {
      if (e.index > this.#maxCommitted) {
        throw new SafetyViolation(
          `one change at a time (thesis §4.1): ${node.id}'s log holds the Config entry at ${e.index}, not ` +
            `committed (at most ${this.#maxCommitted} is), and a later one`,
        );
      }
    }
    const last = configs[configs.length - 1];
    let expected: ConfState;
    let source: string;
    if (last !== undefined) {
      expected = decodeConfState(last.data);
      source = `its Config entry at ${last.index}`;
    } else if (stored.snapshot !== null) {
      const config = stored.snapshot.config;
      if (config === undefined) throw new Error(`${node.id}: a snapshot without a configuration`);
      expected = config;
      source = `its snapshot at ${stored.snapshot.index}`;
    } else {
      expected = node.initial ? this.#initial : confState([]);
      source = 'its bootstrap';
    }
    if (!sameConf(expected, c)) {
      throw new SafetyViolation(
        `thesis §4.1: ${node.id} uses ${describeConf(c)} but the latest configuration its storage holds is ` +
          `${describeConf(expected)} (${source})`,
      );
    }
    node.verified = c;
  }

  /** Thesis §4.3: a committed configuration follows the previous committed one by a legal step. */
  #noteCommittedConfig(entry: Entry): void {
    const next = decodeConfState(entry.data);
    const prev = this.#committedConfs[this.#committedConfs.length - 1]?.conf ?? this.#initial;
    const fault = illegalStep(prev, next);
    if (fault !== null) {
      throw new SafetyViolation(
        `thesis §4.3: the configuration committed at ${entry.index}, ${describeConf(next)}, cannot follow ` +
          `${describeConf(prev)}: ${fault}`,
      );
    }
    this.#committedConfs.push({ index: entry.index, conf: next });
    this.#event(`configuration committed at ${entry.index}: ${describeConf(next)}`);
  }

  /** The committed configuration in force at `index` (which has been applied somewhere). */
  #committedConfigAt(index: number): ConfState {
    for (let i = this.#committedConfs.length - 1; i >= 0; i--) {
      const c = this.#committedConfs[i];
      if (c !== undefined && c.index <= index) return c.conf;
    }
    return this.#initial;
  }

  /** Thesis §5.1: a snapshot holds "the latest configuration as of the last included index". */
  #checkSnapshotConfig(node: SimNode, index: number, config: ConfState): void {
    const expected = this.#committedConfigAt(index);
    if (!sameConf(config, expected)) {
      if (!node.initial && config.voters.length === 0 && expected === this.#initial) {
        // A known gap, not checked: the initial configuration is in no log, so a joining node that received the
        // log from its start knows no configuration before the first Config entry, and snapshots its bootstrap
        // one (no voters) there. Harmless to safety (a node with no voters neither campaigns nor counts votes),
        // and to liveness once the Config entries after the snapshot reach it; counted in the result.
        this.#blindSnapshots++;
        this.#event(`${node.id} snapshots at ${index} without knowing the initial configuration`);
        return;
      }
      throw new SafetyViolation(
        `thesis §5.1: ${node.id} snapshots at ${index} with ${describeConf(config)}, but the configuration ` +
          `committed as of ${index} is ${describeConf(expected)}`,
      );
    }
  }

  // -----------------------------------------------------------------------------------------------------------
  // Liveness, once faults stop

  /**
   * Settled: one leader, a voter of a configuration that is committed and not joint, everything committed, and
   * every member of that configuration (voters and learners; removed and never-added nodes are ignored) applied it
   * all.
   */
  #settled(): boolean {
    const leaders = this.#nodes.filter((n) => n.raft?.role === 'leader');
    if (leaders.length !== 1) return false;
    const leader = leaders[0]?.raft;
    if (leader === undefined || leader === null || leader.log.committed < leader.log.lastIndex())
      return false;
    const c = leader.config;
    if (isJoint(c) || leader.configIndex > leader.log.committed) return false;
    return members(c).every((id) => this.#node(id).appliedIndex === leader.log.lastIndex());
  }

  #checkLiveness(): void {
    if (!this.#settled()) {
      const states = this.#nodes.map(
        (n) =>
          `${n.id}:${n.raft?.role}@${n.raft?.term} last=${n.raft?.log.lastIndex()} applied=${n.appliedIndex}` +
          ` conf=${n.raft === null ? '-' : describeConf(n.raft.config)}`,
      );
      throw new Error(`liveness: the cluster did not settle after faults stopped: ${states.join(' ')}`);
    }
    const leader = this.#nodes.find((n) => n.raft?.role === 'leader')?.raft;
    if (leader !== undefined && leader !== null) {
      for (const id of members(leader.config)) {
        const raft = this.#node(id).raft;
        if (raft === null || !sameConf(raft.config, leader.config)) {
          throw new Error(
            `liveness: member ${id} uses ${raft === null ? 'nothing' : describeConf(raft.config)}, the leader ` +
              `${describeConf(leader.config)}`,
          );
        }
      }
    }
    for (const p of this.#acknowledged) {
      const key = this.#committed[p.index];
      if (key !== `${p.term}:${p.data}`) {
        throw new SafetyViolation(
          `acknowledged proposal ${p.data} at ${p.index} is not in the committed log`,
        );
      }
    }
  }

  // -----------------------------------------------------------------------------------------------------------

  #reportSnapshot(message: Message, delivered: boolean): void {
    const sender = this.#node(message.from);
    // Its Ready is handled on its next tick: it may be in the middle of handling one now.
    sender.raft?.reportSnapshot(message.to, delivered);
  }

  /** Recomputes the node's log hash chain from what its storage holds. */
  #rebuildChain(node: SimNode): void {
    const stored = node.storage.snapshot();
    node.chain = new Map([[0, 0]]);
    node.storedConfigs = stored.entries.filter((e) => e.type === EntryType.Config).map((e) => e.index);
    node.storageChanged = true;
    if (stored.snapshot !== null) node.chain.set(stored.snapshot.index, this.#chainOf(stored.snapshot));
    for (const e of stored.entries) node.chain.set(e.index, chainHash(node.chain.get(e.index - 1) ?? 0, e));
  }

  /** The chain hash of the committed log prefix ending at a snapshot's last entry. */
  #chainOf(meta: SnapshotMeta): number {
    const hash = this.#chainAt.get(`${meta.index}:${meta.term}`);
    if (hash === undefined)
      throw new Error(`no log was ever stored up to snapshot ${meta.index}/${meta.term}`);
    return hash;
  }

  #node(id: NodeId): SimNode {
    const node = this.#nodes.find((n) => n.id === id);
    if (node === undefined) throw new Error(`sim: no node ${id}`);
    return node;
  }

  #event(line: string): void {
    const text = `[${this.#now}] ${line}`;
    this.#recent.push(text);
    if (this.#recent.length > 200) this.#recent.splice(0, 100);
    this.#opts.trace?.(text);
  }
}

function leaderBefore(raft: Raft): LeaderBefore | null {
  return raft.role === 'leader'
    ? { term: raft.term, committed: raft.log.committed, config: raft.config }
    : null;
}

/**
 * Why `next` cannot directly follow `prev` as committed configurations (thesis §4.3), or null if it can. Judged
 * on sets: the order of ids is the core's business.
 */
function illegalStep(prev: ConfState, next: ConfState): string | null {
  if (next.voters.length === 0) return 'no voters';
  if (isJoint(prev)) {
    if (isJoint(next)) return 'a joint configuration after a joint one';
    if (!sameSet(next.voters, prev.voters) || !sameSet(next.learners, prev.learners)) {
      return 'C_new must keep the members of C_old,new and drop only the outgoing voters';
    }
    return null;
  }
  if (isJoint(next)) {
    if (!sameSet(next.outgoing, prev.voters)) return "the outgoing voters must be C_old's voters";
    if (sameSet(next.voters, prev.voters)) return 'a joint configuration that changes no voter';
    return null;
  }
  if (!sameSet(next.voters, prev.voters)) return 'the voters changed without a joint configuration';
  return null;
}

function sameSet(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

function sameConf(a: ConfState, b: ConfState): boolean {
  return (
    a.voters.join(',') === b.voters.join(',') &&
    a.outgoing.join(',') === b.outgoing.join(',') &&
    a.learners.join(',') === b.learners.join(',') &&
    a.context === b.context
  );
}

function describeConf(c: ConfState): string {
  const parts = [`voters ${c.voters.join(',') || '-'}`];
  if (isJoint(c)) parts.push(`outgoing ${c.outgoing.join(',')}`);
  if (c.learners.length > 0) parts.push(`learners ${c.learners.join(',')}`);
  return `{${parts.join('; ')}}`;
}

function shuffle<T>(rng: SeededRandom, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(0, i + 1);
    const a = out[i];
    const b = out[j];
    if (a === undefined || b === undefined) continue;
    out[i] = b;
    out[j] = a;
  }
  return out;
}

const decoder = new TextDecoder();
function decode(entry: Entry): string {
  return entry.type === EntryType.Noop ? '(noop)' : decoder.decode(entry.data);
}

function entryKey(entry: Entry): string {
  return `${entry.term}:${decode(entry)}`;
}

/** A 32-bit FNV-1a style hash of (previous hash, term, type, data). */
function chainHash(prev: number, entry: Entry): number {
  let h = (prev ^ 0x811c9dc5) >>> 0;
  const mix = (byte: number): void => {
    h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  };
  for (let t = entry.term; t > 0; t = Math.floor(t / 256)) mix(t & 0xff);
  mix(0xfe);
  mix(entry.type);
  for (const byte of entry.data) mix(byte);
  return h;
}
