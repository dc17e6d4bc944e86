// The replicated log as one node holds it in memory, with the watermarks the Ready contract needs.

import type { Entry } from './types.js';

export interface ConflictHint {
  /** The term the follower holds at the rejected index, or 0 when its log is shorter. */
  readonly conflictTerm: number;
  /** The first index the follower holds of `conflictTerm`, or its last index + 1 when its log is shorter. */
  readonly conflictIndex: number;
}

/**
 * The log: entries 1..lastIndex() and three watermarks.
 *
 * Invariants: applied <= committed <= lastIndex(); stable <= lastIndex(); #entries[i].index === i + 1.
 * (Compaction will add an offset and a snapshot's index and term; nothing outside this class indexes #entries.)
 */
export class RaftLog {
  readonly #entries: Entry[];
  /** Highest index known to be committed (Figure 2: commitIndex). */
  committed: number;
  /** Highest index handed to the state machine (Figure 2: lastApplied). */
  applied = 0;
  /** Highest index known to be in stable storage. */
  stable: number;

  constructor(entries: readonly Entry[], committed: number) {
    entries.forEach((entry, i) => {
      if (entry.index !== i + 1) throw new Error(`log: entry at position ${i} has index ${entry.index}`);
    });
    this.#entries = entries.slice();
    this.stable = this.#entries.length;
    if (committed > this.lastIndex()) {
      throw new Error(`log: commit index ${committed} is beyond the last index ${this.lastIndex()}`);
    }
    this.committed = committed;
  }

  lastIndex(): number {
    return this.#entries.length;
  }

  lastTerm(): number {
    return this.#entries[this.#entries.length - 1]?.term ?? 0;
  }

  /** The term of the entry at `index`; 0 for index 0 (the empty prefix); undefined beyond the log. */
  term(index: number): number | undefined {
    if (index === 0) return 0;
    return this.#entries[index - 1]?.term;
  }

  entry(index: number): Entry | undefined {
    return this.#entries[index - 1];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /**
   * §5.4.1: a log is at least as up-to-date as ours if its last term is higher, or equal with an index at least
   * as large.
   */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Entries [lo, hi) bounded by `maxCount` and `maxBytes` of payload, but always at least one when lo < hi so
   * that a single large entry still makes progress.
   */
  slice(lo: number, hi: number, maxCount: number, maxBytes: number): Entry[] {
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi && out.length < maxCount; i++) {
      const entry = this.#entries[i - 1];
      if (entry === undefined) break;
      bytes += entry.data.length;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(entry);
    }
    return out;
  }

  /** The leader appends its own new entries (Figure 2, Leaders: "append entry to local log"). */
  append(entry: Entry): void {
    if (entry.index !== this.lastIndex() + 1) {
      throw new Error(`log: append of index ${entry.index} after ${this.lastIndex()}`);
    }
    this.#entries.push(entry);
  }

  /**
   * The follower's side of AppendEntries (Figure 2, receiver implementation, steps 2-4).
   * Returns the index of the last entry the request covers when the consistency check passes, else null.
   */
  tryAppend(prevLogIndex: number, prevLogTerm: number, entries: readonly Entry[]): number | null {
    // Step 2: reply false if the log doesn't contain an entry at prevLogIndex whose term matches prevLogTerm.
    if (!this.matchTerm(prevLogIndex, prevLogTerm)) return null;
    for (const entry of entries) {
      const existing = this.term(entry.index);
      if (existing === entry.term) continue; // Already have it (a duplicate or a reordered older message).
      if (existing !== undefined) {
        // Step 3: an existing entry conflicts with a new one: delete it and all that follow it.
        // Never a committed one: that would contradict Leader Completeness (§5.4).
        if (entry.index <= this.committed) {
          throw new Error(`log: conflict at committed index ${entry.index} (committed ${this.committed})`);
        }
        this.truncateFrom(entry.index);
      }
      // Step 4: append any new entries not already in the log.
      this.append(entry);
    }
    return prevLogIndex + entries.length;
  }

  /** Removes entries at and after `index`. */
  private truncateFrom(index: number): void {
    this.#entries.length = index - 1;
    this.stable = Math.min(this.stable, index - 1);
  }

  /** The hint a follower sends with a rejection so the leader can skip a whole term (end of §5.3). */
  conflictHint(rejectedIndex: number): ConflictHint {
    const term = this.term(rejectedIndex);
    if (term === undefined) return { conflictTerm: 0, conflictIndex: this.lastIndex() + 1 };
    let first = rejectedIndex;
    while (first > 1 && this.term(first - 1) === term) first--;
    return { conflictTerm: term, conflictIndex: first };
  }

  /** The last index <= `atOrBelow` holding an entry of `term`, or 0 when there is none. */
  lastIndexOfTerm(term: number, atOrBelow: number): number {
    for (let i = Math.min(atOrBelow, this.lastIndex()); i > 0; i--) {
      const t = this.term(i) ?? 0;
      if (t === term) return i;
      if (t < term) return 0; // Terms only grow along the log.
    }
    return 0;
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    if (index > this.lastIndex())
      throw new Error(`log: commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
  }

  /** Entries not yet handed to storage. */
  unstableEntries(): Entry[] {
    return this.#entries.slice(this.stable);
  }

  /**
   * Storage has persisted `entries` (a Ready's). The log may have changed meanwhile (a new leader may have
   * truncated it), so only the prefix that is still ours counts as stable.
   */
  stableTo(entries: readonly Entry[]): void {
    for (let i = entries.length - 1; i >= 0; i--) {
      const entry = entries[i];
      if (entry !== undefined && this.matchTerm(entry.index, entry.term)) {
        this.stable = Math.max(this.stable, entry.index);
        return;
      }
    }
  }

  /** Committed entries not yet applied, at most `maxCount`. */
  nextCommitted(maxCount: number): Entry[] {
    const hi = Math.min(this.committed, this.applied + maxCount);
    return this.#entries.slice(this.applied, hi);
  }

  appliedTo(index: number): void {
    if (index > this.committed) throw new Error(`log: applied ${index} beyond committed ${this.committed}`);
    this.applied = Math.max(this.applied, index);
  }
}
