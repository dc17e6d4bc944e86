// The replicated log as one node holds it in memory, with the watermarks the Ready contract needs.

import { decodeConfState, emptyConfState } from './confstate.js';
import { EntryType, type ConfState, type Entry, type SnapshotMeta } from './types.js';

/** A configuration and the index of the entry that holds it (0: the bootstrap configuration). */
export interface IndexedConf {
  readonly index: number;
  readonly conf: ConfState;
}

export interface ConflictHint {
  /** The term the follower holds at the rejected index, or 0 when its log is shorter. */
  readonly conflictTerm: number;
  /** The first index the follower holds of `conflictTerm`, or its last index + 1 when its log is shorter. */
  readonly conflictIndex: number;
}

/**
 * The log: the entries after the last snapshot, and the watermarks the Ready contract needs.
 *
 * Invariants: offset <= applied <= committed <= lastIndex(); offset <= stable <= written <= lastIndex();
 * #entries[i].index === offset + i + 1. Entries up to `offset` are compacted into a snapshot (§7); only the term of
 * the last of them is kept, for the consistency check of the entry after it.
 *
 * The log also knows the cluster configuration in force: thesis §4.1, "a server always uses the latest
 * configuration in its log, regardless of whether the entry is committed". It is the last Config entry, or, when
 * the log holds none, the configuration of the snapshot (or the bootstrap one). Truncating a Config entry away
 * reverts to the one before it.
 */
export class RaftLog {
  #entries: Entry[];
  /** The configuration in force at #offset (from the snapshot, else the bootstrap configuration). */
  #baseConf: IndexedConf;
  /** The Config entries among #entries, in index order. */
  #confs: IndexedConf[] = [];
  readonly #bootstrap: ConfState;
  /** The index of the last entry covered by the latest snapshot the log was compacted to (0: none). */
  #offset: number;
  /** The term of the entry at #offset. */
  #offsetTerm: number;
  /** Highest index known to be committed (Figure 2: commitIndex). */
  committed: number;
  /** Highest index handed to the state machine (Figure 2: lastApplied). */
  applied: number;
  /** Highest index known to be in stable storage. */
  stable: number;
  /**
   * Highest index handed to storage in a Ready (its write may still be in progress): the next Ready's entries start
   * after it. Equal to `stable` when every write is waited for before the next Ready.
   */
  written: number;

  constructor(
    snapshot: SnapshotMeta | null,
    entries: readonly Entry[],
    committed: number,
    bootstrap: ConfState = emptyConfState,
  ) {
    this.#offset = snapshot?.index ?? 0;
    this.#offsetTerm = snapshot?.term ?? 0;
    this.#bootstrap = bootstrap;
    this.#baseConf = { index: this.#offset, conf: snapshot?.config ?? bootstrap };
    entries.forEach((entry, i) => {
      if (entry.index !== this.#offset + i + 1) {
        throw new Error(
          `log: entry at position ${i} has index ${entry.index}, expected ${this.#offset + i + 1}`,
        );
      }
    });
    this.#entries = entries.slice();
    for (const entry of entries) this.#noteConf(entry);
    this.stable = this.lastIndex();
    this.written = this.stable;
    // A snapshot holds only committed entries, and the state machine starts from it.
    this.applied = this.#offset;
    if (committed > this.lastIndex()) {
      throw new Error(`log: commit index ${committed} is beyond the last index ${this.lastIndex()}`);
    }
    this.committed = Math.max(committed, this.#offset);
  }

  /** The first index still held as an entry (entries before it are in a snapshot). */
  firstIndex(): number {
    return this.#offset + 1;
  }

  /** The snapshot boundary: the last compacted index and its term. */
  offset(): SnapshotMeta {
    return { index: this.#offset, term: this.#offsetTerm };
  }

  lastIndex(): number {
    return this.#offset + this.#entries.length;
  }

  lastTerm(): number {
    return this.#entries[this.#entries.length - 1]?.term ?? this.#offsetTerm;
  }

  /**
   * The term of the entry at `index`; 0 for index 0 (the empty prefix); the snapshot's term at the offset;
   * undefined beyond the log or inside the compacted prefix.
   */
  term(index: number): number | undefined {
    if (index === this.#offset) return this.#offsetTerm;
    if (index < this.#offset) return undefined;
    return this.#entries[index - this.#offset - 1]?.term;
  }

  entry(index: number): Entry | undefined {
    return index > this.#offset ? this.#entries[index - this.#offset - 1] : undefined;
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
    for (let i = Math.max(lo, this.#offset + 1); i < hi && out.length < maxCount; i++) {
      const entry = this.entry(i);
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
    this.#noteConf(entry);
  }

  /** Thesis §4.1: a Config entry takes effect as soon as it is in the log. */
  #noteConf(entry: Entry): void {
    if (entry.type === EntryType.Config) {
      this.#confs.push({ index: entry.index, conf: decodeConfState(entry.data) });
    }
  }

  /** The configuration in force: the latest in the log, committed or not (thesis §4.1). */
  config(): IndexedConf {
    return this.#confs[this.#confs.length - 1] ?? this.#baseConf;
  }

  /** The configuration in force at `index` (which must not be below the snapshot): what a snapshot there holds. */
  configAt(index: number): ConfState {
    if (index < this.#offset) throw new Error(`log: configuration at ${index} is compacted away`);
    let found = this.#baseConf;
    for (const c of this.#confs) {
      if (c.index > index) break;
      found = c;
    }
    return found.conf;
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
    this.#entries.length = index - this.#offset - 1;
    this.stable = Math.min(this.stable, index - 1);
    this.written = Math.min(this.written, index - 1);
    // Thesis §4.1: a configuration whose entry is removed no longer applies; the one before it does again.
    while ((this.#confs[this.#confs.length - 1]?.index ?? 0) >= index) this.#confs.pop();
  }

  /** The hint a follower sends with a rejection so the leader can skip a whole term (end of §5.3). */
  conflictHint(rejectedIndex: number): ConflictHint {
    const term = this.term(rejectedIndex);
    if (term === undefined) return { conflictTerm: 0, conflictIndex: this.lastIndex() + 1 };
    let first = rejectedIndex;
    while (first > this.#offset + 1 && this.term(first - 1) === term) first--;
    return { conflictTerm: term, conflictIndex: first };
  }

  /** The last index <= `atOrBelow` holding an entry of `term`, or 0 when there is none. */
  lastIndexOfTerm(term: number, atOrBelow: number): number {
    for (let i = Math.min(atOrBelow, this.lastIndex()); i >= this.#offset && i > 0; i--) {
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
    return this.#entries.slice(this.written - this.#offset);
  }

  /** `entries` (a Ready's) were handed to storage; the prefix still ours need not be handed out again. */
  writtenTo(entries: readonly Entry[]): void {
    this.written = Math.max(this.written, this.#matchingPrefix(entries));
  }

  /**
   * Storage has persisted `entries` (a Ready's). The log may have changed meanwhile (a new leader may have
   * truncated it), so only the prefix that is still ours counts as stable.
   */
  stableTo(entries: readonly Entry[]): void {
    this.stable = Math.max(this.stable, this.#matchingPrefix(entries));
    this.written = Math.max(this.written, this.stable);
  }

  /** The last index of `entries` whose entry the log still holds with the same term (0 when none). */
  #matchingPrefix(entries: readonly Entry[]): number {
    for (let i = entries.length - 1; i >= 0; i--) {
      const entry = entries[i];
      if (entry !== undefined && this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /** Committed entries not yet applied, at most `maxCount`. */
  nextCommitted(maxCount: number): Entry[] {
    const hi = Math.min(this.committed, this.applied + maxCount);
    return this.#entries.slice(this.applied - this.#offset, hi - this.#offset);
  }

  /**
   * Drops the entries up to `index`, which a durable snapshot now covers (§7). Only applied entries can be
   * compacted: the snapshot was taken of a state machine that applied them.
   */
  compact(index: number): void {
    if (index <= this.#offset) return;
    if (index > this.applied || index > this.stable) {
      throw new Error(`log: compact to ${index} beyond applied ${this.applied} / stable ${this.stable}`);
    }
    const term = this.term(index);
    if (term === undefined) throw new Error(`log: compact to ${index}: no such entry`);
    this.#baseConf = { index, conf: this.configAt(index) };
    this.#confs = this.#confs.filter((c) => c.index > index);
    this.#entries = this.#entries.slice(index - this.#offset);
    this.#offset = index;
    this.#offsetTerm = term;
  }

  /**
   * Installs a leader's snapshot (§7, Figure 13, receiver steps 6-8): if the log holds the snapshot's last entry,
   * the entries after it are kept; otherwise the whole log is discarded. The state machine is reset from the
   * snapshot, so everything up to its index counts as committed and applied.
   */
  restore(snapshot: SnapshotMeta): void {
    const kept = this.matchTerm(snapshot.index, snapshot.term) && snapshot.index <= this.lastIndex();
    // Thesis §5.1: the snapshot carries the configuration as of its last index. (One written before membership
    // changes existed carries none: then the one this log knows there, or the bootstrap configuration.)
    const conf = snapshot.config ?? (kept ? this.configAt(snapshot.index) : this.#bootstrap);
    this.#baseConf = { index: snapshot.index, conf };
    if (kept) {
      this.#entries = this.#entries.slice(snapshot.index - this.#offset);
      this.#confs = this.#confs.filter((c) => c.index > snapshot.index);
    } else {
      this.#entries = [];
      this.#confs = [];
      this.stable = snapshot.index;
      this.written = snapshot.index;
    }
    this.#offset = snapshot.index;
    this.#offsetTerm = snapshot.term;
    this.stable = Math.max(this.stable, snapshot.index);
    this.written = Math.max(this.written, this.stable);
    this.committed = Math.max(this.committed, snapshot.index);
    this.applied = snapshot.index;
  }

  appliedTo(index: number): void {
    if (index > this.committed) throw new Error(`log: applied ${index} beyond committed ${this.committed}`);
    this.applied = Math.max(this.applied, index);
  }
}
