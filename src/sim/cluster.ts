// A deterministic cluster simulator (STYLE.md 5, after etcd/raft's test network and TigerBeetle's VOPR).
//
// Several cores are wired by an in-memory network; one seeded PRNG decides every delay, loss, duplication,
// partition, crash and client request, so a seed replays exactly. After every event the Raft safety properties
// (Figure 3 of the paper) are checked:
//   Election Safety, Log Matching, Leader Completeness, State Machine Safety.

import { Raft, type Ready } from '../raft/raft.js';
import { SeededRandom } from '../raft/random.js';
import { EntryType, type Entry, type Message, type NodeId, type SnapshotMeta } from '../raft/types.js';
import { MemoryStorage } from '../storage/memory.js';

export interface SimOptions {
  readonly seed: number;
  readonly nodes: number;
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
};

/** The simulated state machine takes a snapshot every this many applied entries, keeping a few in the log. */
const snapshotEvery = 25;
const retainEntries = 5;

export class SafetyViolation extends Error {}

interface SimNode {
  readonly id: NodeId;
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

export interface SimResult {
  readonly rounds: number;
  readonly acknowledged: number;
  readonly elections: number;
  readonly maxTerm: number;
  readonly committed: number;
  readonly snapshotsInstalled: number;
  readonly readsConfirmed: number;
}

const electionTicksMin = 10;
const electionTicksMax = 20;
const heartbeatTicks = 3;

export class Simulator {
  readonly #opts: SimOptions;
  readonly #rng: SeededRandom;
  readonly #nodes: SimNode[];
  readonly #ids: NodeId[];
  #now = 0;
  #network: InFlight[] = [];
  /** Directed links that drop everything: "from>to". */
  #cut = new Set<string>();
  #faulty = true;
  #proposalSeq = 0;
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

  constructor(opts: SimOptions) {
    this.#opts = opts;
    this.#rng = new SeededRandom(opts.seed);
    this.#ids = Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`);
    this.#nodes = this.#ids.map((id) => ({
      id,
      storage: new MemoryStorage(),
      raft: null,
      chain: new Map([[0, 0]]),
      appliedIndex: 0,
      stateHash: 0,
      pending: null,
      staged: new Map(),
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
        const tail = this.#recent.slice(-60).join('\n  ');
        e.message = `seed ${this.#opts.seed} round ${this.#now}: ${e.message}\nlast events:\n  ${tail}`;
      }
      throw e;
    }
    return {
      rounds: this.#now,
      acknowledged: this.#acknowledged.length,
      elections: this.#elections,
      maxTerm: Math.max(...this.#nodes.map((n) => n.storage.snapshot().hardState.term)),
      committed: this.#committed.length - 1,
      snapshotsInstalled: this.#snapshotsInstalled,
      readsConfirmed: this.#readsConfirmed,
    };
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
    if (this.#rng.chance(this.#opts.faults.propose)) this.#propose();
    if (this.#rng.chance(this.#opts.faults.propose / 2)) this.#read();
  }

  #deliver(): void {
    const due: InFlight[] = [];
    const later: InFlight[] = [];
    for (const f of this.#network) (f.at <= this.#now ? due : later).push(f);
    this.#network = later;
    for (const { message, snapshot } of due) {
      const node = this.#node(message.to);
      if (node.raft === null) {
        // Delivered to a crashed node: lost. A snapshot transfer fails visibly to its sender.
        if (message.type === 'InstallSnapshot') this.#reportSnapshot(message, false);
        continue;
      }
      // The runtime stages the data before stepping the core.
      if (snapshot !== undefined) node.staged.set(`${snapshot.meta.index}:${snapshot.meta.term}`, snapshot);
      node.raft.step(message);
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
    while (node.pending === null && raft.hasReady()) {
      const rd = raft.ready();
      this.#observeRole(node, raft, rd);
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
    raft.advance(rd);
    this.#maybeSnapshot(node, raft);
    this.#process(node);
  }

  #write(node: SimNode, hardState: Ready['hardState'], entries: readonly Entry[]): void {
    node.storage.saveSync(hardState, entries);
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

  /** The state machine takes a snapshot now and then and the log is compacted (§7). */
  #maybeSnapshot(node: SimNode, raft: Raft): void {
    const latest = node.storage.snapshotData()?.meta.index ?? 0;
    if (node.appliedIndex - latest < snapshotEvery) return;
    const term = raft.log.term(node.appliedIndex);
    if (term === undefined) return; // the core holds a newer snapshot that the next Ready installs
    const meta = { index: node.appliedIndex, term };
    const data = [new TextEncoder().encode(`${node.appliedIndex}:${node.stateHash}`)];
    node.storage.installSync({ meta, data }); // as saveSnapshot + compact: the snapshot matches the log
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

  /** Starts (or restarts) a node from what its storage holds; its state machine is rebuilt by re-applying. */
  #boot(node: SimNode): void {
    const stored = node.storage.snapshot();
    node.appliedIndex = 0;
    node.stateHash = 0;
    const snap = node.storage.snapshotData();
    if (snap !== null) this.#restoreState(node, snap);
    this.#rebuildChain(node);
    node.raft = new Raft({
      id: node.id,
      voters: this.#ids,
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
    const list = this.#pending.get(node.id) ?? [];
    list.push({ index: result.index, term: result.term, data });
    this.#pending.set(node.id, list);
    this.#process(node);
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
    if (known === undefined) this.#committed[entry.index] = key;
    else if (known !== key) {
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
  // Liveness, once faults stop

  #settled(): boolean {
    const leaders = this.#nodes.filter((n) => n.raft?.role === 'leader');
    if (leaders.length !== 1) return false;
    const leader = leaders[0]?.raft;
    if (leader === undefined || leader === null || leader.log.committed < leader.log.lastIndex())
      return false;
    return this.#nodes.every((n) => n.appliedIndex === leader.log.lastIndex());
  }

  #checkLiveness(): void {
    if (!this.#settled()) {
      const states = this.#nodes.map(
        (n) =>
          `${n.id}:${n.raft?.role}@${n.raft?.term} last=${n.raft?.log.lastIndex()} applied=${n.appliedIndex}`,
      );
      throw new Error(`liveness: the cluster did not settle after faults stopped: ${states.join(' ')}`);
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
