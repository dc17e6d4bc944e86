// The leader's view of one follower (Figure 2: nextIndex[] and matchIndex[]), with the flow control that
// etcd/raft calls probe and replicate states.

/**
 * A bounded window of AppendEntries messages sent to one follower and not yet acknowledged. Each slot remembers
 * the last index the message carried; an acknowledgement of index i frees every slot <= i.
 */
export class Inflights {
  // Ring buffer. Invariant: 0 <= #count <= capacity; slots are in increasing order of index.
  readonly #slots: number[];
  #start = 0;
  #count = 0;

  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new Error(`inflights: capacity must be >= 1, got ${capacity}`);
    this.#slots = new Array<number>(capacity).fill(0);
  }

  get count(): number {
    return this.#count;
  }

  full(): boolean {
    return this.#count === this.capacity;
  }

  add(lastIndex: number): void {
    if (this.full()) throw new Error('inflights: add to a full window');
    this.#slots[(this.#start + this.#count) % this.capacity] = lastIndex;
    this.#count++;
  }

  /** Frees every message whose last index is <= index. */
  freeTo(index: number): void {
    while (this.#count > 0 && (this.#slots[this.#start] ?? 0) <= index) {
      this.#start = (this.#start + 1) % this.capacity;
      this.#count--;
    }
  }

  reset(): void {
    this.#start = 0;
    this.#count = 0;
  }
}

/**
 * - `probe`: the leader does not know where the follower's log matches its own. It sends one AppendEntries at a
 *   time and waits for the answer (or the next heartbeat) before sending another (§5.3's backtracking).
 * - `replicate`: the logs are known to match up to `match`; the leader streams entries optimistically, advancing
 *   `next` as it sends, with at most `inflights.capacity` messages unacknowledged (pipelining).
 * - `snapshot`: the follower needs entries the leader has compacted away; a snapshot is on its way (§7) and
 *   nothing else is sent but heartbeats until it is acknowledged or reported failed.
 */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  /** Highest index known to be replicated on the follower (Figure 2: matchIndex). Invariant: match < next. */
  match = 0;
  /** Index of the next entry to send (Figure 2: nextIndex). */
  next: number;
  state: ProgressState = 'probe';
  /** The follower answered something since the leader last checked (CheckQuorum, thesis §6.2). */
  recentActive = false;
  /** The tick at which the follower last answered anything, or -1 (the leader heard nothing from it yet). */
  activeAt = -1;
  /** The latest heartbeat round the follower acknowledged (ReadIndex and leases, thesis §6.4). */
  ackedRound = 0;
  /** In snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** In probe state: a message was sent and its answer has not arrived yet. */
  probeSent = false;
  /** The highest commit index sent to the follower (in any AppendEntries, delivered or not). */
  commitSent = 0;
  /**
   * The follower has clients waiting for the commit index to reach this (writes it passed on, reads it serves):
   * the leader tells it a new commit index at once rather than with the next AppendEntries.
   */
  commitWanted = 0;
  readonly inflights: Inflights;

  constructor(next: number, maxInflight: number) {
    this.next = next;
    this.inflights = new Inflights(maxInflight);
  }

  /** Whether the leader should hold back new AppendEntries with entries for now. */
  paused(): boolean {
    if (this.state === 'snapshot') return true;
    return this.state === 'probe' ? this.probeSent : this.inflights.full();
  }

  becomeSnapshot(index: number): void {
    this.state = 'snapshot';
    this.pendingSnapshot = index;
    this.probeSent = false;
    this.inflights.reset();
    this.#forgetUnconfirmed();
  }

  becomeProbe(next: number): void {
    this.state = 'probe';
    this.pendingSnapshot = 0;
    this.probeSent = false;
    this.next = Math.max(next, this.match + 1);
    this.inflights.reset();
    this.#forgetUnconfirmed();
  }

  /**
   * The follower's log did not match what was sent (or is being replaced by a snapshot): messages sent since its
   * last acknowledgement may have told it nothing, so count as told only the commit index its log surely covers.
   */
  #forgetUnconfirmed(): void {
    this.commitSent = Math.min(this.commitSent, this.match);
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.pendingSnapshot = 0;
    this.probeSent = false;
    this.next = this.match + 1;
    this.inflights.reset();
  }

  /** Records a successful append up to `index`. Returns whether `match` advanced (stale acks do not). */
  maybeUpdate(index: number): boolean {
    if (index <= this.match) return false;
    this.match = index;
    this.next = Math.max(this.next, index + 1);
    this.inflights.freeTo(index);
    return true;
  }

  /** Records that a message carrying entries up to `lastIndex` was sent. */
  sent(lastIndex: number): void {
    if (this.state === 'replicate') {
      if (lastIndex >= this.next) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex);
      }
    } else {
      this.probeSent = true;
    }
  }
}
