// THE CORE: a deterministic Raft state machine (Figure 2 of the Raft paper; thesis chapter 3).
//
// It never touches a clock, the network, the disk or a random source of its own. The outside drives it:
//   tick()        one logical clock tick (timeouts are counted in ticks)
//   step(m)       one incoming message from a peer
//   propose(d)    a new command (leader only)
//   ready()       what must be persisted, sent and applied now
//   advance(rd)   the outside has done all of that Ready
// and the same inputs always give the same outputs, so a seeded simulator can replay any run exactly.

import {
  applyChanges,
  confState,
  encodeConfState,
  isJoint,
  isVoter,
  leaveJoint,
  members,
  type ConfChange,
} from './confstate.js';
import { RaftLog, type IndexedConf } from './log.js';
import { Progress } from './progress.js';
import { jointMatchIndex, jointTally } from './quorum.js';
import type { Random } from './random.js';
import {
  EntryType,
  type AppendEntries,
  type AppendEntriesResponse,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  sameHardState,
  type RequestVote,
  type RequestVoteResponse,
  type Role,
  type SnapshotMeta,
  type InstallSnapshot,
  type SoftState,
  type TimeoutNow,
} from './types.js';

export interface RaftOptions {
  readonly id: NodeId;
  /**
   * The bootstrap configuration's voters: the configuration in force while neither the snapshot nor the log holds
   * one (a new cluster). A node that joins a running cluster starts with none: it votes in no election and stands
   * for none until its log brings it a configuration that names it (thesis §4.2.1).
   */
  readonly voters: readonly NodeId[];
  /** The bootstrap configuration's learners (default none). */
  readonly learners?: readonly NodeId[];
  /** Election timeouts are drawn uniformly from [electionTicksMin, electionTicksMax) (§5.2). */
  readonly electionTicksMin: number;
  readonly electionTicksMax: number;
  /** The leader sends AppendEntries to every follower at least this often (§5.2: heartbeats). */
  readonly heartbeatTicks: number;
  readonly random: Random;
  /** What storage held at start (empty for a new node). */
  readonly hardState: HardState;
  /** The latest durable snapshot, if any; `entries` follow it. The state machine must already hold its state. */
  readonly snapshot?: SnapshotMeta | null;
  readonly entries: readonly Entry[];
  /** Limits (STYLE.md 7). Defaults in `defaultLimits`. */
  readonly limits?: Partial<RaftLimits>;
  /** One line per role change and other notable events ("node1 became leader at term 3"). */
  readonly log?: (line: string) => void;
  /** PreVote (thesis §9.6). Default true. */
  readonly preVote?: boolean;
  /** CheckQuorum (thesis §6.2): a leader that hears from no majority for an election timeout steps down. Default true. */
  readonly checkQuorum?: boolean;
  /** Lease reads: how many ticks of clock drift between nodes the lease allows for. Default 1. */
  readonly leaseDriftTicks?: number;
}

/** A linearizable read the leader confirmed (thesis §6.4): answer it once the state machine applied `index`. */
export interface ReadState {
  readonly requestId: number;
  readonly index: number;
}

export type ReadIndexResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'not_leader'; readonly leader: NodeId | null }
  | { readonly ok: false; readonly reason: 'busy' };

export type TransferResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'not_leader'; readonly leader: NodeId | null }
  | {
      readonly ok: false;
      readonly reason: 'unknown_target' | 'not_voter' | 'already_leader' | 'in_progress';
    };

/** The answer to a membership change (thesis §4.1, §4.3). */
export type ConfChangeResult =
  | { readonly ok: true; readonly index: number; readonly term: number; readonly config: ConfState }
  | { readonly ok: false; readonly reason: 'not_leader'; readonly leader: NodeId | null }
  | { readonly ok: false; readonly reason: 'transferring'; readonly to: NodeId }
  | { readonly ok: false; readonly reason: 'busy' }
  /** Another change is still in progress. */
  | { readonly ok: false; readonly reason: 'pending'; readonly message: string }
  /** This leader has not yet committed an entry of its term (it was just elected): retry shortly. */
  | { readonly ok: false; readonly reason: 'not_ready'; readonly message: string }
  /** The change itself is invalid (adding a member twice, removing a stranger, leaving no voter...). */
  | { readonly ok: false; readonly reason: 'invalid'; readonly message: string }
  /** The new configuration's voters would include no majority this leader can currently reach. */
  | { readonly ok: false; readonly reason: 'no_quorum'; readonly message: string };

/** What the leader knows about a member's replication (for status pages and learner promotion). */
export interface MemberProgress {
  readonly match: number;
  /** Ticks since the member last answered, or null if it never did in this term. */
  readonly idleTicks: number | null;
  /** It answered within the last election timeout: it counts as reachable for a membership change. */
  readonly recentlyActive: boolean;
}

export interface RaftLimits {
  /** Entries in one AppendEntries message. */
  readonly maxBatchEntries: number;
  /** Payload bytes in one AppendEntries message (exceeded only by a single larger entry). */
  readonly maxBatchBytes: number;
  /** AppendEntries messages in flight to one follower in replicate state (pipelining window). */
  readonly maxInflightMessages: number;
  /** Entries the leader holds uncommitted before it refuses new proposals (back-pressure). */
  readonly maxUncommittedEntries: number;
  /** Committed entries handed to the state machine in one Ready. */
  readonly maxApplyEntries: number;
  /** Linearizable reads waiting for leadership confirmation at once. */
  readonly maxPendingReads: number;
}

export const defaultLimits: RaftLimits = {
  maxBatchEntries: 512,
  maxBatchBytes: 1 << 20,
  maxInflightMessages: 64,
  maxUncommittedEntries: 50_000,
  maxApplyEntries: 4096,
  maxPendingReads: 20_000,
};

/** Everything the outside must do now; see the module comment. */
export interface Ready {
  /**
   * A leader's snapshot to install before anything else in this Ready (§7): make the received snapshot current in
   * storage and reset the state machine from it. The log already reflects it.
   */
  readonly snapshot: SnapshotMeta | undefined;
  /** Present when it changed since the last Ready: persist it before sending `messages`. */
  readonly hardState: HardState | undefined;
  /** Persist these before sending `messages`; storage drops any stored entry at or after entries[0].index. */
  readonly entries: readonly Entry[];
  /** Send these once the above is durable. */
  readonly messages: readonly Message[];
  /** Apply these to the state machine, in order (Figure 2: "If commitIndex > lastApplied: ... apply"). */
  readonly committedEntries: readonly Entry[];
  /** Confirmed linearizable reads (thesis §6.4). */
  readonly readStates: readonly ReadState[];
  readonly softState: SoftState;
  /** The configuration in force, when it changed since the last Ready (thesis §4.1: the latest in the log). */
  readonly config: ConfState | undefined;
}

export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly reason: 'not_leader'; readonly leader: NodeId | null }
  | { readonly ok: false; readonly reason: 'busy' }
  | { readonly ok: false; readonly reason: 'transferring'; readonly to: NodeId };

interface PendingRead {
  readonly requestId: number;
  readonly index: number;
  /** The heartbeat round a majority must acknowledge to confirm the leadership this read relies on. */
  readonly round: number;
}

export class Raft {
  readonly id: NodeId;
  readonly #limits: RaftLimits;
  readonly #random: Random;
  readonly #logLine: (line: string) => void;
  readonly #electionTicksMin: number;
  readonly #electionTicksMax: number;
  readonly #heartbeatTicks: number;
  readonly #preVote: boolean;
  readonly #checkQuorum: boolean;
  readonly #leaseTicks: number;

  // Persistent state (Figure 2). Invariant: #vote is '' or a voter, and was chosen during #term.
  #term: number;
  #vote: NodeId;
  readonly log: RaftLog;

  // Volatile state.
  #role: Role = 'follower';
  #leader: NodeId | null = null;
  #electionElapsed = 0;
  #heartbeatElapsed = 0;
  /** Invariant: electionTicksMin <= #electionTimeout < electionTicksMax. Re-drawn on every reset (§5.2). */
  #electionTimeout = 0;
  /** Candidate only: this is a PreVote round (thesis §9.6); the term moves only once it is won. */
  #preCandidate = false;
  /** The logical clock, in ticks since start. */
  #ticks = 0;
  /**
   * Leader only: heartbeat rounds. Every AppendEntries carries the current round as its context, which followers
   * echo; a round acknowledged by a majority proves this node was still leader when the round began. That confirms
   * ReadIndex reads (thesis §6.4) and starts leases. #roundSentAt maps each recent round to the tick it began.
   */
  #round = 0;
  readonly #roundSentAt = new Map<number, number>();
  /** A round was opened for reads and its heartbeats still have to go out. */
  #readRoundOpen = false;
  /** Leases count only rounds after this one (rounds from before a leadership transfer do not). */
  #leaseFloorRound = 0;
  #pendingReads: PendingRead[] = [];
  /** Reads that arrived before this leader committed an entry of its own term (thesis §6.4 step 1). */
  #readsAwaitingCommit: number[] = [];
  #readStates: ReadState[] = [];
  /** Leader only: a leadership transfer in progress (thesis §3.10). */
  #transferee: NodeId | null = null;
  /** Candidate only: the answers received in this election. */
  readonly #votes = new Map<NodeId, boolean>();
  /** Leader only: one entry per other voter. */
  readonly #progress = new Map<NodeId, Progress>();
  /** Leader only: new entries wait here for the next Ready, so one AppendEntries per follower carries them all. */
  #broadcastPending = false;
  /**
   * Leader only: the commit index advanced and followers should hear of it now, not with the next heartbeat: a
   * follower answers a client whose write it passed on once it applies the entry (thesis §6.2), and sees a fresh
   * state sooner. (etcd/raft broadcasts an append after every commit for the same reason.)
   */
  #commitToAnnounce = false;

  #messages: Message[] = [];
  /** The latest durable snapshot (what InstallSnapshot sends), or null. */
  #snapshot: SnapshotMeta | null;
  /** A received snapshot the outside must install with the next Ready. */
  #pendingInstall: SnapshotMeta | undefined;
  /** The hard state as of the last Ready handed out, to detect changes. */
  #lastHardState: HardState;
  /** The configuration as of the last Ready handed out (at first: the one it started with), to detect changes. */
  #lastConf: IndexedConf;

  constructor(options: RaftOptions) {
    if (!(options.electionTicksMin > options.heartbeatTicks)) {
      throw new Error('raft: the election timeout must be longer than the heartbeat interval (§5.6)');
    }
    if (!(options.electionTicksMax > options.electionTicksMin)) {
      throw new Error('raft: electionTicksMax must be greater than electionTicksMin');
    }
    this.id = options.id;
    this.#limits = { ...defaultLimits, ...options.limits };
    this.#random = options.random;
    this.#logLine = options.log ?? (() => {});
    this.#electionTicksMin = options.electionTicksMin;
    this.#electionTicksMax = options.electionTicksMax;
    this.#heartbeatTicks = options.heartbeatTicks;
    this.#preVote = options.preVote ?? true;
    this.#checkQuorum = options.checkQuorum ?? true;
    this.#leaseTicks = this.#electionTicksMin - (options.leaseDriftTicks ?? 1);
    this.#term = options.hardState.term;
    this.#vote = options.hardState.vote;
    this.#snapshot = options.snapshot ?? null;
    this.log = new RaftLog(
      this.#snapshot,
      options.entries,
      options.hardState.commit,
      confState(options.voters, options.learners ?? []),
    );
    this.#lastHardState = options.hardState;
    this.#lastConf = this.log.config();
    this.#resetElectionTimer();
    this.#logLine(`${this.id} started as follower at term ${this.#term}, last index ${this.log.lastIndex()}`);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Queries

  get term(): number {
    return this.#term;
  }
  get role(): Role {
    return this.#role;
  }
  get leader(): NodeId | null {
    return this.#leader;
  }
  /** The configuration in force: the latest in the log, committed or not (thesis §4.1). */
  get config(): ConfState {
    return this.log.config().conf;
  }
  /** The index of the entry holding the configuration in force (0: the bootstrap configuration). */
  get configIndex(): number {
    return this.log.config().index;
  }
  get voters(): readonly NodeId[] {
    return this.config.voters;
  }
  hardState(): HardState {
    return { term: this.#term, vote: this.#vote, commit: this.log.committed };
  }
  softState(): SoftState {
    return { role: this.#role, leader: this.#leader };
  }
  /** Leader only: each follower's (and learner's) match index. */
  matchIndexes(): ReadonlyMap<NodeId, number> {
    const out = new Map<NodeId, number>();
    for (const [id, pr] of this.#progress) out.set(id, pr.match);
    return out;
  }
  /** Leader only: what it knows of one member's replication; undefined for itself, strangers and on followers. */
  memberProgress(id: NodeId): MemberProgress | undefined {
    const pr = this.#progress.get(id);
    if (pr === undefined) return undefined;
    const idleTicks = pr.activeAt < 0 ? null : this.#ticks - pr.activeAt;
    return {
      match: pr.match,
      idleTicks,
      recentlyActive: idleTicks !== null && idleTicks <= this.#electionTicksMin,
    };
  }

  // ---------------------------------------------------------------------------------------------------------
  // Inputs

  /** One tick of the logical clock. */
  tick(): void {
    this.#ticks++;
    if (this.#role === 'leader') {
      this.#tickLeader();
      return;
    }
    this.#electionElapsed++;
    if (this.#electionElapsed < this.#electionTimeout) return;
    if (!this.#mayCampaign()) {
      // Thesis §4.2.1: a learner, or a node the configuration does not name (not yet added, or removed), never
      // starts an election (but see #mayCampaign); it only forgets a leader it has not heard from.
      this.#leader = null;
      this.#resetElectionTimer();
      return;
    }
    // §5.2: a follower (or candidate) that hears nothing for an election timeout starts an election, first asking
    // for PreVotes (thesis §9.6) when enabled.
    if (this.#preVote) this.#preCampaign();
    else this.#campaign(false);
  }

  #tickLeader(): void {
    this.#electionElapsed++;
    if (this.#electionElapsed >= this.#electionTicksMin) {
      this.#electionElapsed = 0;
      // CheckQuorum (thesis §6.2): a leader that did not hear from a majority for an election timeout steps down,
      // so that a leader cut off from the majority stops serving (and its clients go elsewhere).
      if (this.#checkQuorum && !this.#quorumActive()) {
        this.#logLine(`${this.id} heard from no majority for an election timeout`);
        this.#becomeFollower(this.#term, null);
        return;
      }
      if (this.#transferee !== null) {
        this.#logLine(
          `${this.id} gave up transferring leadership to ${this.#transferee}: it did not take over`,
        );
        this.#endTransfer();
      }
    }
    this.#heartbeatElapsed++;
    if (this.#heartbeatElapsed >= this.#heartbeatTicks) {
      this.#heartbeatElapsed = 0;
      this.#openRound();
      this.#broadcastAppend(true);
    }
  }

  /** Counts the voters heard from since the last check (this leader included), and resets the marks. */
  #quorumActive(): boolean {
    const votes = new Map<NodeId, boolean>([[this.id, true]]);
    for (const [id, pr] of this.#progress) {
      votes.set(id, pr.recentActive);
      pr.recentActive = false;
    }
    return jointTally(this.config, votes) === 'won';
  }

  /** A new command for the state machine. Only the leader accepts one (§5.1: clients talk to the leader). */
  propose(data: Uint8Array): ProposeResult {
    if (this.#role !== 'leader') return { ok: false, reason: 'not_leader', leader: this.#leader };
    // Thesis §3.10: while leadership is being handed over, the leader takes no new commands.
    if (this.#transferee !== null) return { ok: false, reason: 'transferring', to: this.#transferee };
    if (this.log.lastIndex() - this.log.committed >= this.#limits.maxUncommittedEntries) {
      return { ok: false, reason: 'busy' };
    }
    const index = this.log.lastIndex() + 1;
    this.log.append({ index, term: this.#term, type: EntryType.Normal, data });
    this.#broadcastPending = true;
    return { ok: true, index, term: this.#term };
  }

  /**
   * One message from a peer. Messages for someone else are ignored. Senders outside the configuration are not:
   * thesis §4.1, "servers process incoming RPC requests without consulting their current configurations" (a new
   * node must follow a leader it has never heard of; a voter must be able to elect a node it has not yet learned
   * was added).
   */
  step(m: Message): void {
    if (m.to !== this.id || m.from === this.id) return;

    // Figure 2, Rules for All Servers: "If RPC request or response contains term T > currentTerm: set
    // currentTerm = T, convert to follower" (§5.1).
    if (m.term > this.#term) {
      if (m.type === 'RequestVote' && !m.transfer && this.#inLease()) {
        // Thesis §4.2.3: a server that heard from a leader within the minimum election timeout disregards
        // RequestVote, neither updating its term nor granting (a removed or cut-off server cannot depose a working
        // leader). PreVotes are answered (with a refusal) below.
        if (!m.preVote) return;
      }
      const preVoteTerm =
        (m.type === 'RequestVote' && m.preVote) || (m.type === 'RequestVoteResponse' && m.preVote);
      if (!preVoteTerm) {
        // A granted PreVote answer carries the term it was asked about, and a PreVote request the candidate's next
        // term: neither makes anyone change term (thesis §9.6). Everything else does (§5.1).
        const fromLeader =
          m.type === 'AppendEntries' || m.type === 'InstallSnapshot' || m.type === 'TimeoutNow';
        this.#becomeFollower(m.term, fromLeader ? m.from : null);
      } else if (m.type === 'RequestVoteResponse' && !m.voteGranted) {
        this.#becomeFollower(m.term, null); // refused because the voter is at a later term: catch up to it
      }
    } else if (m.term < this.#term) {
      this.#stepStale(m);
      return;
    }

    switch (m.type) {
      case 'RequestVote':
        return this.#handleRequestVote(m);
      case 'RequestVoteResponse':
        return this.#handleVoteResponse(m);
      case 'AppendEntries':
        return this.#handleAppendEntries(m);
      case 'AppendEntriesResponse':
        return this.#handleAppendResponse(m);
      case 'InstallSnapshot':
        return this.#handleInstallSnapshot(m);
      case 'TimeoutNow':
        return this.#handleTimeoutNow(m);
    }
  }

  /**
   * A linearizable read (ReadIndex, thesis §6.4). The leader notes its commit index, confirms it is still leader
   * with a round of heartbeats (shared by every read that arrives before the round goes out), and reports the read
   * in Ready.readStates; the outside answers it once its state machine applied that index. Nothing goes to the log.
   */
  readIndex(requestId: number): ReadIndexResult {
    if (this.#role !== 'leader') return { ok: false, reason: 'not_leader', leader: this.#leader };
    if (this.#pendingReads.length + this.#readsAwaitingCommit.length >= this.#limits.maxPendingReads) {
      return { ok: false, reason: 'busy' };
    }
    // Step 1: a new leader does not know the commit index until it has committed an entry of its own term (its
    // no-op, §8); reads wait for that.
    if (this.log.term(this.log.committed) !== this.#term) {
      this.#readsAwaitingCommit.push(requestId);
      return { ok: true };
    }
    this.#addRead(requestId);
    return { ok: true };
  }

  #addRead(requestId: number): void {
    if (!this.#readRoundOpen) {
      this.#openRound();
      this.#readRoundOpen = true;
    }
    this.#pendingReads.push({ requestId, index: this.log.committed, round: this.#round });
    this.#confirmReads(); // a single-node cluster is its own majority
  }

  /** Starts a new heartbeat round; the AppendEntries sent from now on carry it. */
  #openRound(): void {
    this.#round++;
    this.#roundSentAt.set(this.#round, this.#ticks);
  }

  /** The latest round a majority (this leader included) has acknowledged. */
  #quorumRound(): number {
    return jointMatchIndex(this.config, (id) =>
      id === this.id ? this.#round : (this.#progress.get(id)?.ackedRound ?? 0),
    );
  }

  #confirmReads(): void {
    if (this.#pendingReads.length === 0) return;
    const confirmed = this.#quorumRound();
    let n = 0;
    while (n < this.#pendingReads.length && (this.#pendingReads[n]?.round ?? Infinity) <= confirmed) n++;
    for (const read of this.#pendingReads.splice(0, n)) {
      this.#readStates.push({ requestId: read.requestId, index: read.index });
    }
  }

  /**
   * Whether the leader may answer a read from its own state right now (a lease read). A majority acknowledged a
   * heartbeat round that began less than an election timeout (minus the allowed clock drift) ago, and with
   * CheckQuorum and leader stickiness (thesis §4.2.3) no other leader can be elected before the timeout runs out
   * (thesis §6.4.1). Never during a leadership transfer. The read must still wait until the state machine has
   * applied this leader's commit index.
   */
  leaseValid(): boolean {
    if (this.#role !== 'leader' || !this.#checkQuorum || this.#transferee !== null) return false;
    if (this.log.term(this.log.committed) !== this.#term) return false;
    const round = this.#quorumRound();
    if (round <= this.#leaseFloorRound) return false;
    const sentAt = this.#roundSentAt.get(round);
    return sentAt !== undefined && this.#ticks - sentAt < this.#leaseTicks;
  }

  /**
   * Leadership transfer (thesis §3.10): stop taking commands, bring `to` up to date, then send it TimeoutNow so it
   * starts an election at once. Given up after an election timeout. The outside watches the soft state to see
   * `to` take over.
   */
  transferLeadership(to: NodeId): TransferResult {
    if (this.#role !== 'leader') return { ok: false, reason: 'not_leader', leader: this.#leader };
    if (to === this.id) return { ok: false, reason: 'already_leader' };
    const pr = this.#progress.get(to);
    if (pr === undefined) return { ok: false, reason: 'unknown_target' };
    // Only a voter can win the election TimeoutNow starts (thesis §4.2.1: learners do not stand).
    if (!isVoter(this.config, to)) return { ok: false, reason: 'not_voter' };
    if (this.#transferee !== null) return { ok: false, reason: 'in_progress' };
    this.#transferee = to;
    this.#electionElapsed = 0; // the transfer gets a whole election timeout
    this.#logLine(`${this.id} transfers leadership to ${to}`);
    this.#maybeSendTimeoutNow(to, pr);
    return { ok: true };
  }

  /** The node leadership is being transferred to, if any. */
  get transferee(): NodeId | null {
    return this.#transferee;
  }

  #maybeSendTimeoutNow(to: NodeId, pr: Progress): void {
    if (pr.match === this.log.lastIndex()) {
      this.#send<TimeoutNow>({ type: 'TimeoutNow', from: this.id, to, term: this.#term });
    } else {
      this.#sendAppend(to, pr, false); // the target is behind: catch it up first
    }
  }

  #endTransfer(): void {
    this.#transferee = null;
    // Rounds acknowledged before the transfer ended cannot start a lease: the target may have been elected.
    this.#leaseFloorRound = this.#round;
  }

  /** Thesis §3.10: the leader asks this node to take over; it campaigns at once, without a PreVote. */
  #handleTimeoutNow(m: TimeoutNow): void {
    if (this.#role === 'leader' || !this.#mayCampaign()) return;
    this.#logLine(`${this.id} was asked by ${m.from} to take over leadership`);
    this.#campaign(true);
  }

  /**
   * The outside saved a snapshot of the state machine at `meta` durably; the log may drop entries up to it, except
   * the last `retainEntries` (so that slightly lagging followers still get entries instead of a snapshot).
   */
  compact(meta: SnapshotMeta, retainEntries: number): void {
    if (meta.index > this.log.applied)
      throw new Error(`raft: snapshot ${meta.index} beyond applied ${this.log.applied}`);
    if (this.#snapshot === null || meta.index > this.#snapshot.index) this.#snapshot = meta;
    const upTo = Math.min(meta.index - retainEntries, this.log.stable);
    if (upTo > this.log.firstIndex() - 1) this.log.compact(upTo);
  }

  /** The latest durable snapshot this node knows of, or null. */
  latestSnapshot(): SnapshotMeta | null {
    return this.#snapshot;
  }

  /**
   * The outside finished streaming a snapshot to `to` (etcd's ReportSnapshot): `delivered` means the follower has
   * stored it and stepped it into its core. Either way the leader goes back to probing: a follower that installed
   * it matches from the snapshot on; one that did not (a crash, a failed transfer) rejects, and gets the snapshot
   * again with a later heartbeat, not at once, so a peer that is down is not flooded.
   */
  reportSnapshot(to: NodeId, delivered: boolean): void {
    const pr = this.#progress.get(to);
    if (this.#role !== 'leader' || pr === undefined || pr.state !== 'snapshot') return;
    pr.becomeProbe(delivered ? pr.pendingSnapshot + 1 : pr.match + 1);
    pr.probeSent = !delivered;
    if (delivered) this.#sendAppend(to, pr, false);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Ready / advance

  hasReady(): boolean {
    return (
      this.#broadcastPending ||
      this.#commitToAnnounce ||
      this.#pendingInstall !== undefined ||
      this.#readRoundOpen ||
      this.#readStates.length > 0 ||
      this.#messages.length > 0 ||
      this.log.written < this.log.lastIndex() ||
      this.log.applied < this.log.committed ||
      !sameHardState(this.hardState(), this.#lastHardState) ||
      this.log.config() !== this.#lastConf
    );
  }

  /** What must be done now. Call `advance` with it once done, before calling `ready` again. */
  ready(): Ready {
    if (this.#readRoundOpen) {
      // One heartbeat round confirms every read that arrived since the last Ready (thesis §6.4: batching).
      this.#readRoundOpen = false;
      this.#broadcastAppend(true);
    } else if (this.#broadcastPending) {
      this.#broadcastAppend(false);
    }
    if (this.#commitToAnnounce) this.#announceCommit();
    const hardState = this.hardState();
    const readStates = this.#readStates;
    this.#readStates = [];
    const messages = this.#messages;
    this.#messages = [];
    const snapshot = this.#pendingInstall;
    this.#pendingInstall = undefined;
    const conf = this.log.config();
    const confChanged = conf !== this.#lastConf;
    this.#lastConf = conf;
    return {
      snapshot,
      hardState: sameHardState(hardState, this.#lastHardState) ? undefined : hardState,
      entries: this.log.unstableEntries(),
      messages,
      committedEntries: this.log.nextCommitted(this.#limits.maxApplyEntries),
      readStates,
      softState: this.softState(),
      config: confChanged ? conf.conf : undefined,
    };
  }

  /**
   * The Ready was handled: its messages sent (or held until its write is durable) and its committed entries
   * applied. With `persisted` false, its entries were handed to storage but are not durable yet: the outside calls
   * `persisted(rd.entries)` once they are, and may meanwhile take the next Ready (pipelined writes: a leader's
   * AppendEntries and commit announcements then need not wait for its own fdatasync).
   */
  advance(rd: Ready, persisted = true): void {
    if (rd.hardState !== undefined) this.#lastHardState = rd.hardState;
    if (rd.entries.length > 0) {
      this.log.writtenTo(rd.entries);
      if (persisted) this.persisted(rd.entries);
    }
    const lastApplied = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastApplied !== undefined) this.log.appliedTo(lastApplied.index);
  }

  /** Entries of an earlier Ready are now in stable storage (see `advance`). */
  persisted(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    this.log.stableTo(entries);
    // Thesis §10.2.1: the leader counts itself toward a majority only for entries in its own stable storage.
    if (this.#role === 'leader') this.#maybeCommit();
  }

  // ---------------------------------------------------------------------------------------------------------
  // Role transitions (STYLE.md 2: each logs one line)

  #becomeFollower(term: number, leader: NodeId | null): void {
    const wasLeader = this.#role === 'leader';
    if (term > this.#term) {
      this.#term = term;
      this.#vote = ''; // One vote per term (§5.2): a new term starts with none cast.
    }
    this.#role = 'follower';
    this.#leader = leader;
    this.#progress.clear();
    this.#votes.clear();
    this.#preCandidate = false;
    this.#broadcastPending = false;
    this.#clearLeaderState();
    this.#resetElectionTimer();
    this.#logLine(
      `${this.id} became follower at term ${term}${leader === null ? '' : `, leader ${leader}`}` +
        (wasLeader ? ' (stepped down)' : ''),
    );
  }

  /**
   * PreVote (thesis §9.6): before disturbing anyone with a higher term, ask whether a majority would vote for us at
   * the next term. The term and vote stay as they are; only a won PreVote leads to a real election.
   */
  #preCampaign(): void {
    this.#role = 'candidate';
    this.#preCandidate = true;
    this.#leader = null;
    this.#votes.clear();
    this.#votes.set(this.id, true);
    this.#resetElectionTimer();
    this.#logLine(`${this.id} became pre-candidate at term ${this.#term}`);
    if (jointTally(this.config, this.#votes) === 'won') {
      this.#campaign(false);
      return;
    }
    this.#requestVotes(this.#term + 1, true, false);
  }

  /** §5.2: increment currentTerm, vote for self, reset the election timer, send RequestVote to all others. */
  #campaign(transfer: boolean): void {
    this.#term++;
    this.#vote = this.id;
    this.#role = 'candidate';
    this.#preCandidate = false;
    this.#leader = null;
    this.#votes.clear();
    this.#votes.set(this.id, true);
    this.#resetElectionTimer();
    this.#logLine(`${this.id} became candidate at term ${this.#term}`);
    if (jointTally(this.config, this.#votes) === 'won') {
      this.#becomeLeader();
      return;
    }
    this.#requestVotes(this.#term, false, transfer);
  }

  #requestVotes(term: number, preVote: boolean, transfer: boolean): void {
    for (const peer of this.#peers()) {
      this.#send<RequestVote>({
        type: 'RequestVote',
        from: this.id,
        to: peer,
        term,
        lastLogIndex: this.log.lastIndex(),
        lastLogTerm: this.log.lastTerm(),
        preVote,
        transfer,
      });
    }
  }

  /**
   * Whether this node may stand for election: it votes in the configuration in force, or that configuration is a
   * C_new, not yet committed as far as this node knows, that removes it from the joint configuration before it,
   * where it still votes (in `outgoing`). The second case matters: the leader that appended C_new, and the removed
   * voters it reached before it failed, can hold the only logs that C_old's majority will vote for, while the
   * others, still in C_old,new, need that majority; if the removed ones did not campaign, no one could ever be
   * elected. Elected, such a node is a leader outside its configuration, as a removed leader is until its C_new
   * commits (thesis §4.2.2): it does not count itself, commits C_new with its no-op, and steps down. Learners and
   * nodes no configuration names stay out (thesis §4.2.1). (The thesis lets removed servers time out and start
   * elections, §4.2.3, and so does its implementation, LogCabin, for any server with a configuration.)
   */
  #mayCampaign(): boolean {
    const { index, conf } = this.log.config();
    if (isVoter(conf, this.id)) return true;
    if (index <= this.log.committed) return false;
    const previous = this.log.configAt(index - 1);
    return isJoint(previous) && previous.outgoing.includes(this.id);
  }

  /** Whether this node heard from a leader within the minimum election timeout (thesis §4.2.3). */
  #inLease(): boolean {
    if (!this.#checkQuorum || this.#leader === null) return false;
    return this.#role === 'leader' || this.#electionElapsed < this.#electionTicksMin;
  }

  #clearLeaderState(): void {
    this.#transferee = null;
    this.#pendingReads = [];
    this.#readsAwaitingCommit = [];
    this.#readRoundOpen = false;
    this.#roundSentAt.clear();
    this.#round = 0;
    this.#leaseFloorRound = 0;
    this.#commitToAnnounce = false;
  }

  #becomeLeader(): void {
    this.#role = 'leader';
    this.#leader = this.id;
    this.#votes.clear();
    this.#preCandidate = false;
    this.#heartbeatElapsed = 0;
    this.#electionElapsed = 0;
    this.#clearLeaderState();
    // Figure 2, Leaders: nextIndex starts just after the leader's last entry, matchIndex at 0.
    this.#progress.clear();
    this.#syncProgress();
    this.#logLine(`${this.id} became leader at term ${this.#term}`);
    // §8 and §5.4.2: a leader commits entries of earlier terms only by committing one of its own term, so it
    // appends a no-op at the start of its term.
    this.log.append({ index: this.log.lastIndex() + 1, term: this.#term, type: EntryType.Noop, data: empty });
    this.#broadcastPending = true;
  }

  #resetElectionTimer(): void {
    this.#electionElapsed = 0;
    this.#electionTimeout = this.#random.int(this.#electionTicksMin, this.#electionTicksMax);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Elections (§5.2, §5.4.1)

  #handleRequestVote(m: RequestVote): void {
    if (m.preVote) {
      // Thesis §9.6: grant a PreVote if we would grant the vote at that term (same rules as below) and we have not
      // heard from a leader recently; change nothing.
      const wouldVote = m.term > this.#term || this.#vote === '' || this.#vote === m.from;
      const granted = wouldVote && !this.#inLease() && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
      this.#send<RequestVoteResponse>({
        type: 'RequestVoteResponse',
        from: this.id,
        to: m.from,
        term: granted ? m.term : this.#term,
        voteGranted: granted,
        preVote: true,
      });
      return;
    }
    // Figure 2, RequestVote receiver step 2: grant if votedFor is null or candidateId, and the candidate's log is
    // at least as up-to-date as the receiver's (§5.4.1).
    const canVote = this.#vote === '' || this.#vote === m.from;
    const granted = canVote && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
    if (granted) {
      this.#vote = m.from;
      // Figure 2, Followers: granting a vote resets the election timer.
      this.#resetElectionTimer();
    }
    this.#send<RequestVoteResponse>({
      type: 'RequestVoteResponse',
      from: this.id,
      to: m.from,
      term: this.#term,
      voteGranted: granted,
      preVote: false,
    });
  }

  #handleVoteResponse(m: RequestVoteResponse): void {
    // A late answer from an election already decided, or to the other kind of round.
    if (this.#role !== 'candidate' || m.preVote !== this.#preCandidate) return;
    this.#votes.set(m.from, m.voteGranted);
    const result = jointTally(this.config, this.#votes);
    if (result === 'won') {
      if (this.#preCandidate) this.#campaign(false);
      else this.#becomeLeader();
    }
    // 'lost': stay candidate; the election timer will start a new election (§5.2, split votes).
  }

  /**
   * A message from an older term. Figure 2 says to reply false to such requests; the reply carries our term so the
   * sender learns it is stale and steps down (§5.1). Stale responses are dropped.
   */
  #stepStale(m: Message): void {
    if (m.type === 'RequestVote') {
      this.#send<RequestVoteResponse>({
        type: 'RequestVoteResponse',
        from: this.id,
        to: m.from,
        term: this.#term,
        voteGranted: false,
        preVote: m.preVote,
      });
    } else if (m.type === 'AppendEntries' || m.type === 'InstallSnapshot') {
      this.#send<AppendEntriesResponse>({
        type: 'AppendEntriesResponse',
        from: this.id,
        to: m.from,
        term: this.#term,
        success: false,
        matchIndex: 0,
        rejectedIndex: m.type === 'AppendEntries' ? m.prevLogIndex : m.snapshot.index,
        conflictTerm: 0,
        conflictIndex: 0,
        context: 0,
      });
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Log replication, follower side (§5.3)

  /** Whatever the leader of the current term sends makes this node its follower (§5.2) and resets the timer. */
  #followLeader(m: AppendEntries | InstallSnapshot): void {
    if (this.#role === 'leader') {
      // Election Safety (§5.2): at most one leader per term. Two leaders in one term is a bug, not an input.
      throw new Error(`raft: ${this.id} is leader of term ${m.term} and got ${m.type} from ${m.from}`);
    }
    if (this.#role === 'candidate' || this.#leader !== m.from) {
      // §5.2: a candidate that hears from the leader of its term returns to follower state.
      this.#becomeFollower(m.term, m.from);
    }
    this.#electionElapsed = 0;
  }

  /** §7, Figure 13: InstallSnapshot receiver (the data is already staged in storage by the runtime). */
  #handleInstallSnapshot(m: InstallSnapshot): void {
    this.#followLeader(m);
    const { index, term } = m.snapshot;
    if (index <= this.log.committed) {
      // Nothing new: we already hold (and may have applied past) everything the snapshot covers.
      this.#replyAppend(m.from, 0, 0, true, this.log.committed, 0, 0);
      return;
    }
    if (this.log.matchTerm(index, term)) {
      // Figure 13 step 6: the log already has the snapshot's last entry; keep the log, it is committed up to there.
      this.log.commitTo(index);
      this.#replyAppend(m.from, 0, 0, true, index, 0, 0);
      return;
    }
    // Figure 13 steps 7-8: discard the log and reset the state machine from the snapshot.
    this.#logLine(`${this.id} installs snapshot at index ${index} term ${term} from ${m.from}`);
    this.log.restore(m.snapshot);
    this.#snapshot = m.snapshot;
    this.#pendingInstall = m.snapshot;
    this.#replyAppend(m.from, 0, 0, true, index, 0, 0);
  }

  #handleAppendEntries(m: AppendEntries): void {
    this.#followLeader(m);

    if (m.prevLogIndex < this.log.committed) {
      // An old or duplicated message: our committed prefix already matches every leader's log (Leader
      // Completeness, §5.4), so answer with that instead of re-checking an older prefix (as etcd/raft does).
      this.#replyAppend(m.from, m.prevLogIndex, m.context, true, this.log.committed, 0, 0);
      return;
    }

    const lastNew = this.log.tryAppend(m.prevLogIndex, m.prevLogTerm, m.entries);
    if (lastNew === null) {
      const hint = this.log.conflictHint(m.prevLogIndex);
      this.#replyAppend(m.from, m.prevLogIndex, m.context, false, 0, hint.conflictTerm, hint.conflictIndex);
      return;
    }
    // Figure 2, AppendEntries receiver step 5: commitIndex = min(leaderCommit, index of last new entry).
    this.log.commitTo(Math.min(m.leaderCommit, lastNew));
    this.#replyAppend(m.from, m.prevLogIndex, m.context, true, lastNew, 0, 0);
  }

  /**
   * The answer to an AppendEntries (or an InstallSnapshot, with rejectedIndex 0). Built as one literal: an object
   * spread followed by more properties costs V8 (Node 20) microseconds and kilobytes of garbage per message.
   */
  #replyAppend(
    to: NodeId,
    rejectedIndex: number,
    context: number,
    success: boolean,
    matchIndex: number,
    conflictTerm: number,
    conflictIndex: number,
  ): void {
    this.#send<AppendEntriesResponse>({
      type: 'AppendEntriesResponse',
      from: this.id,
      to,
      term: this.#term,
      success,
      matchIndex,
      rejectedIndex,
      conflictTerm,
      conflictIndex,
      context,
    });
  }

  // ---------------------------------------------------------------------------------------------------------
  // Log replication, leader side (§5.3, §5.4.2)

  #handleAppendResponse(m: AppendEntriesResponse): void {
    if (this.#role !== 'leader') return;
    const pr = this.#progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.activeAt = this.#ticks;
    if (m.context > pr.ackedRound) {
      pr.ackedRound = m.context;
      this.#confirmReads();
    }
    if (m.success) this.#handleAppendSuccess(m, pr);
    else this.#handleRejection(m, pr);
    if (this.#transferee === m.from && this.#role === 'leader') this.#maybeSendTimeoutNow(m.from, pr);
  }

  #handleAppendSuccess(m: AppendEntriesResponse, pr: Progress): void {
    if (!pr.maybeUpdate(m.matchIndex)) {
      // A duplicate or stale acknowledgement. In probe state it still answers the outstanding probe.
      if (pr.state === 'probe' && m.matchIndex === pr.match) pr.probeSent = false;
      this.#sendAppend(m.from, pr, false);
      return;
    }
    if (pr.state !== 'replicate') pr.becomeReplicate();
    this.#maybeCommit();
    if (this.#role !== 'leader') return; // it committed its own removal and stepped down (thesis §4.2.2)
    this.#sendAppend(m.from, pr, false);
  }

  #handleRejection(m: AppendEntriesResponse, pr: Progress): void {
    // While a snapshot is on its way, rejections answer heartbeats that could not match; the snapshot will.
    if (pr.state === 'snapshot') return;
    if (m.conflictTerm === 0 && m.conflictIndex <= pr.match && m.rejectedIndex >= pr.match) {
      // The follower's log is shorter than what it acknowledged before: it lost its storage (possible only with
      // volatile storage). Start over from what it has.
      this.#logLine(
        `${this.id}: ${m.from} reports last index ${m.conflictIndex - 1} below its match ${pr.match}`,
      );
      pr.match = m.conflictIndex - 1;
      pr.becomeProbe(m.conflictIndex);
      this.#sendAppend(m.from, pr, false);
      return;
    }
    const stale = pr.state === 'replicate' ? m.rejectedIndex <= pr.match : m.rejectedIndex !== pr.next - 1;
    if (stale) return;
    // Fast backtracking (end of §5.3): if the leader has entries of the conflicting term, continue after its last
    // one; otherwise skip the follower's whole conflicting term.
    let next = m.conflictIndex;
    if (m.conflictTerm > 0) {
      const ours = this.log.lastIndexOfTerm(m.conflictTerm, m.rejectedIndex);
      if (ours > 0) next = ours + 1;
    }
    pr.becomeProbe(Math.min(next, m.rejectedIndex));
    this.#sendAppend(m.from, pr, false);
  }

  /** §5.3/§5.4.2: commit the highest index stored on a majority, but only if it is from the current term. */
  /**
   * Thesis §4.3: while joint, an entry commits only with a majority of C_old and a majority of C_new. A leader
   * that is not in C_new still replicates but does not count itself there (thesis §4.2.2).
   */
  #maybeCommit(): void {
    const index = jointMatchIndex(this.config, (id) =>
      id === this.id ? this.log.stable : (this.#progress.get(id)?.match ?? 0),
    );
    if (index > this.log.committed && this.log.term(index) === this.#term) {
      this.log.commitTo(index);
      // The first commit of this term: the reads that waited for it can proceed (thesis §6.4 step 1).
      const waiting = this.#readsAwaitingCommit;
      this.#readsAwaitingCommit = [];
      for (const requestId of waiting) this.#addRead(requestId);
      // Followers learn the new commit index with the next AppendEntries they get (§5.3); those waiting for it
      // are told at once (#announceCommit).
      this.#commitToAnnounce = true;
      this.#advanceConfig();
    }
  }

  /** What a leader does once the configuration in force is committed (thesis §4.3, §4.2.2). */
  #advanceConfig(): void {
    const { index, conf } = this.log.config();
    if (index > this.log.committed) return;
    if (isJoint(conf)) {
      // Thesis §4.3: "Once C_old,new has been committed, ... the leader can create a log entry describing C_new".
      // A leader elected while joint does the same once its no-op (and so C_old,new) has committed.
      this.#appendConfig(leaveJoint(conf));
      this.#logLine(`${this.id} leaves the joint configuration: voters ${conf.voters.join(',')}`);
    } else if (!isVoter(conf, this.id)) {
      // Thesis §4.2.2: a leader removed from the configuration steps down once C_new is committed.
      this.#logLine(`${this.id} is not in the committed configuration; it steps down`);
      this.#becomeFollower(this.#term, null);
    }
  }

  /**
   * A membership change (thesis chapter 4). Changing the voters goes through joint consensus (§4.3): this appends
   * C_old,new, and once that commits the leader appends C_new by itself; the change is complete when C_new
   * commits. A change of learners alone appends the new configuration directly. `context` is stored with the new
   * configuration, opaque to the core.
   */
  proposeConfChange(changes: readonly ConfChange[], context: string): ConfChangeResult {
    if (this.#role !== 'leader') return { ok: false, reason: 'not_leader', leader: this.#leader };
    if (this.#transferee !== null) return { ok: false, reason: 'transferring', to: this.#transferee };
    if (this.log.term(this.log.committed) !== this.#term) {
      // A new leader first commits an entry of its own term (its no-op) before it changes the configuration: the
      // correction to thesis §4.1 that Ongaro posted to raft-dev in 2015 (without it, a change of an earlier
      // leader that was never committed could be overridden unsafely).
      return {
        ok: false,
        reason: 'not_ready',
        message: 'the leader has not committed an entry of its term yet',
      };
    }
    const { index, conf } = this.log.config();
    if (index > this.log.committed || isJoint(conf)) {
      // Thesis §4.1: "a leader does not begin a new configuration change until the previous one is committed";
      // §4.3: a joint change is done only once C_new has committed.
      return {
        ok: false,
        reason: 'pending',
        message: 'the previous configuration change is still in progress',
      };
    }
    const outcome = applyChanges(conf, changes, context);
    if (!outcome.ok) return { ok: false, reason: 'invalid', message: outcome.error };
    const next = outcome.next;
    // A change whose new voters could not form a majority now would stall the cluster until they can: refuse it.
    // "Reachable": this leader, and voters that answered within the last election timeout.
    const reachable = next.voters.filter(
      (id) => id === this.id || this.memberProgress(id)?.recentlyActive === true,
    );
    if (reachable.length * 2 <= next.voters.length) {
      return {
        ok: false,
        reason: 'no_quorum',
        message:
          `the new voters (${next.voters.join(', ')}) would need ${Math.floor(next.voters.length / 2) + 1} ` +
          `reachable members, and only ${reachable.length} (${reachable.join(', ')}) answered recently`,
      };
    }
    if (this.log.lastIndex() - this.log.committed >= this.#limits.maxUncommittedEntries) {
      return { ok: false, reason: 'busy' };
    }
    const entry = this.#appendConfig(next);
    this.#logLine(
      `${this.id} proposes configuration ${describeConf(next)} at ${entry.index}` +
        (isJoint(next) ? ' (joint)' : ''),
    );
    return { ok: true, index: entry.index, term: entry.term, config: next };
  }

  /** Appends a Config entry; it is in force at once (thesis §4.1), so the leader replicates to the new members. */
  #appendConfig(conf: ConfState): Entry {
    const entry: Entry = {
      index: this.log.lastIndex() + 1,
      term: this.#term,
      type: EntryType.Config,
      data: encodeConfState(conf),
    };
    this.log.append(entry);
    this.#syncProgress();
    this.#broadcastPending = true;
    return entry;
  }

  /** Leader only: one Progress per member of the configuration in force but itself; none for anyone else. */
  #syncProgress(): void {
    const wanted = new Set(members(this.config));
    wanted.delete(this.id);
    for (const id of this.#progress.keys()) if (!wanted.has(id)) this.#progress.delete(id);
    for (const id of wanted) {
      if (this.#progress.has(id)) continue;
      // Figure 2, Leaders: nextIndex starts just after the leader's last entry, matchIndex at 0.
      this.#progress.set(id, new Progress(this.log.lastIndex() + 1, this.#limits.maxInflightMessages));
    }
  }

  /**
   * An AppendEntries to every follower that waits for the commit index (see `wantCommit`) and gets none with the
   * new one in this Ready. §5.3 only asks that followers "eventually find out" from future AppendEntries,
   * heartbeats included; the others do, with the next batch of entries or the next heartbeat. Telling every
   * follower at once (as etcd/raft does) costs each of them a message and a wake-up per commit, which on a small
   * machine slows the write path that does not need it (a client writing to the leader).
   */
  #announceCommit(): void {
    this.#commitToAnnounce = false;
    if (this.#role !== 'leader') return;
    const committed = this.log.committed;
    for (const [peer, pr] of this.#progress) {
      if (pr.commitSent < committed && pr.commitWanted > pr.commitSent) this.#sendAppend(peer, pr, true);
    }
  }

  /**
   * Leader: `peer` has clients waiting until its state machine applies `index` (writes it passed on to this
   * leader, linearizable reads it serves with a read index from this leader, thesis §6.4). From now on it learns of
   * each new commit index at once, until one covers `index`. Ignored on a follower or for an unknown peer.
   */
  wantCommit(peer: NodeId, index: number): void {
    // A new leader starts with no one marked: a follower still waiting from the previous term learns the commit
    // index with the next AppendEntries or heartbeat.
    if (this.#role !== 'leader') return;
    const pr = this.#progress.get(peer);
    if (pr === undefined || index <= pr.commitWanted) return;
    pr.commitWanted = index;
    // Already committed but not yet sent to it: tell it in the next Ready.
    if (pr.commitSent < Math.min(index, this.log.committed)) this.#commitToAnnounce = true;
  }

  #broadcastAppend(heartbeat: boolean): void {
    this.#broadcastPending = false;
    for (const [peer, pr] of this.#progress) this.#sendAppend(peer, pr, heartbeat);
  }

  /**
   * Sends the follower what it is missing, one message carrying up to a batch of entries. With `heartbeat`, a
   * message goes out even when there is nothing new or the follower is paused (an empty AppendEntries is the
   * heartbeat of §5.2, and doubles as a probe that detects lost messages).
   */
  #sendAppend(to: NodeId, pr: Progress, heartbeat: boolean): void {
    const lastIndex = this.log.lastIndex();
    const firstIndex = this.log.firstIndex();
    const compacted = pr.next < firstIndex; // the entry before `next` is no longer in the log (§7)
    if (compacted && (!pr.paused() || (heartbeat && pr.state === 'probe'))) {
      this.#sendSnapshot(to, pr);
      if (!heartbeat) return;
    }
    let entries: Entry[] = [];
    if (!compacted && !pr.paused()) {
      entries = this.log.slice(
        pr.next,
        lastIndex + 1,
        this.#limits.maxBatchEntries,
        this.#limits.maxBatchBytes,
      );
    }
    if (entries.length === 0 && !heartbeat) return;
    // A follower waiting for a snapshot still gets heartbeats (so it does not start an election); they carry the
    // snapshot boundary as prevLogIndex, which it cannot match yet, so they change nothing but its timer.
    const prevLogIndex = compacted ? firstIndex - 1 : pr.next - 1;
    const prevLogTerm = this.log.term(prevLogIndex);
    if (prevLogTerm === undefined) throw new Error(`raft: nextIndex ${pr.next} of ${to} is beyond the log`);
    this.#send<AppendEntries>({
      type: 'AppendEntries',
      from: this.id,
      to,
      term: this.#term,
      prevLogIndex,
      prevLogTerm,
      entries,
      leaderCommit: this.log.committed,
      context: this.#round,
    });
    // What the follower can take from it: a follower commits at most up to the last entry the message matches
    // (Figure 2, receiver step 5), and only one whose log matches prevLogIndex (replicate state) accepts it. A lost
    // message is made up for by the next heartbeat, which carries the commit index to every follower (§5.3).
    if (pr.state === 'replicate') {
      pr.commitSent = Math.max(pr.commitSent, Math.min(this.log.committed, prevLogIndex + entries.length));
    }
    const last = entries[entries.length - 1];
    if (last !== undefined) pr.sent(last.index);
    else if (pr.state === 'probe') pr.probeSent = true;
  }

  /** §7: the follower needs entries that were compacted away, so it gets the latest snapshot instead. */
  #sendSnapshot(to: NodeId, pr: Progress): void {
    const snapshot = this.#snapshot;
    if (snapshot === null)
      throw new Error(`raft: the log is compacted to ${this.log.firstIndex() - 1} without a snapshot`);
    pr.becomeSnapshot(snapshot.index);
    this.#logLine(
      `${this.id} sends snapshot at index ${snapshot.index} to ${to} (it needs index ${pr.next})`,
    );
    this.#send<InstallSnapshot>({ type: 'InstallSnapshot', from: this.id, to, term: this.#term, snapshot });
  }

  // ---------------------------------------------------------------------------------------------------------

  /** The voters of the configuration in force (both halves while joint) but this node: who elections ask. */
  #peers(): NodeId[] {
    const c = this.config;
    return [...new Set([...c.voters, ...c.outgoing])].filter((id) => id !== this.id);
  }

  #send<M extends Message>(m: M): void {
    this.#messages.push(m);
  }
}

const empty = new Uint8Array(0);

function describeConf(c: ConfState): string {
  const learners = c.learners.length > 0 ? ` learners ${c.learners.join(',')}` : '';
  const old = isJoint(c) ? ` (old voters ${c.outgoing.join(',')})` : '';
  return `voters ${c.voters.join(',')}${learners}${old}`;
}
