import { describe, expect, it } from 'vitest';
import { RaftLog } from './log.js';
import { EntryType, type Entry } from './types.js';

/** Entries from a list of terms: terms[i] is the term of index i + 1. */
function entries(terms: number[], from = 1): Entry[] {
  return terms.map((term, i) => ({
    index: from + i,
    term,
    type: EntryType.Normal,
    data: new Uint8Array([i]),
  }));
}

describe('RaftLog', () => {
  it('§5.4.1: a log is more up-to-date by a later last term, or the same term and at least the length', () => {
    const log = new RaftLog(null, entries([1, 1, 2]), 0);
    expect(log.isUpToDate(3, 2)).toBe(true);
    expect(log.isUpToDate(9, 2)).toBe(true);
    expect(log.isUpToDate(1, 3)).toBe(true);
    expect(log.isUpToDate(2, 2)).toBe(false);
    expect(log.isUpToDate(9, 1)).toBe(false);
  });

  it('Figure 2 AppendEntries step 2: rejects when prevLogIndex/prevLogTerm do not match', () => {
    const log = new RaftLog(null, entries([1, 1, 2]), 0);
    expect(log.tryAppend(3, 1, [])).toBeNull();
    expect(log.tryAppend(5, 2, [])).toBeNull();
    expect(log.tryAppend(3, 2, [])).toBe(3);
    expect(log.tryAppend(0, 0, [])).toBe(0);
  });

  it('Figure 2 AppendEntries step 3: deletes a conflicting entry and all that follow it', () => {
    const log = new RaftLog(null, entries([1, 1, 2, 2, 2]), 0);
    expect(log.tryAppend(2, 1, entries([3], 3))).toBe(3);
    expect(log.lastIndex()).toBe(3);
    expect(log.term(3)).toBe(3);
    expect(log.stable).toBe(2); // the truncated suffix must be written again
  });

  it('Figure 2 AppendEntries step 4: keeps entries it already has, so a stale message cannot truncate', () => {
    const log = new RaftLog(null, entries([1, 1, 2, 2]), 0);
    expect(log.tryAppend(1, 1, entries([1, 2], 2))).toBe(3);
    expect(log.lastIndex()).toBe(4);
  });

  it('refuses to overwrite a committed entry (Leader Completeness, §5.4)', () => {
    const log = new RaftLog(null, entries([1, 1, 2]), 3);
    expect(() => log.tryAppend(2, 1, entries([3], 3))).toThrow(/committed/);
  });

  it('fast backtracking hint (§5.3): the conflicting term and its first index, or the log length', () => {
    const log = new RaftLog(null, entries([1, 1, 4, 4, 4]), 0);
    expect(log.conflictHint(5)).toEqual({ conflictTerm: 4, conflictIndex: 3 });
    expect(log.conflictHint(2)).toEqual({ conflictTerm: 1, conflictIndex: 1 });
    expect(log.conflictHint(9)).toEqual({ conflictTerm: 0, conflictIndex: 6 });
  });

  it('finds the last index of a term at or below a bound', () => {
    const log = new RaftLog(null, entries([1, 1, 4, 4, 5, 6]), 0);
    expect(log.lastIndexOfTerm(4, 6)).toBe(4);
    expect(log.lastIndexOfTerm(4, 3)).toBe(3);
    expect(log.lastIndexOfTerm(2, 6)).toBe(0);
    expect(log.lastIndexOfTerm(6, 5)).toBe(0);
  });

  it('slices batches bounded by count and bytes, but always at least one entry', () => {
    const big = (index: number): Entry => ({
      index,
      term: 1,
      type: EntryType.Normal,
      data: new Uint8Array(100),
    });
    const log = new RaftLog(null, [big(1), big(2), big(3)], 0);
    expect(log.slice(1, 4, 2, 10_000).length).toBe(2);
    expect(log.slice(1, 4, 10, 250).length).toBe(2);
    expect(log.slice(1, 4, 10, 10).length).toBe(1);
    expect(log.slice(4, 4, 10, 10).length).toBe(0);
  });

  it('counts as stable only the persisted prefix that is still in the log', () => {
    const log = new RaftLog(null, [], 0);
    log.append(entries([1])[0]!);
    log.append(entries([1], 2)[0]!);
    const written = log.unstableEntries();
    expect(written.map((e) => e.index)).toEqual([1, 2]);
    log.tryAppend(1, 1, entries([2], 2)); // a new leader replaces index 2 while it was being written
    log.stableTo(written);
    expect(log.stable).toBe(1);
    expect(log.unstableEntries().map((e) => [e.index, e.term])).toEqual([[2, 2]]);
  });

  it('hands out committed entries in order, bounded, and never beyond the commit index', () => {
    const log = new RaftLog(null, entries([1, 1, 1, 1]), 0);
    log.commitTo(3);
    expect(log.nextCommitted(2).map((e) => e.index)).toEqual([1, 2]);
    log.appliedTo(2);
    expect(log.nextCommitted(10).map((e) => e.index)).toEqual([3]);
    expect(() => log.appliedTo(4)).toThrow(/beyond committed/);
  });
});

describe('RaftLog compaction and snapshots (§7)', () => {
  it('compacts applied entries, keeping the term of the last one for the consistency check', () => {
    const log = new RaftLog(null, entries([1, 1, 2, 2, 3]), 4);
    log.appliedTo(4);
    log.compact(3);
    expect(log.firstIndex()).toBe(4);
    expect(log.term(3)).toBe(2);
    expect(log.term(2)).toBeUndefined();
    expect(log.entry(3)).toBeUndefined();
    expect(log.lastIndex()).toBe(5);
    expect(log.tryAppend(3, 2, [])).toBe(3);
    expect(() => log.compact(5)).toThrow(/beyond applied/);
  });

  it('starts from a snapshot: entries follow it, and it counts as committed and applied', () => {
    const log = new RaftLog({ index: 10, term: 4 }, entries([4, 5], 11), 0);
    expect(log.committed).toBe(10);
    expect(log.applied).toBe(10);
    expect(log.lastIndex()).toBe(12);
    expect(log.isUpToDate(12, 5)).toBe(true);
    expect(() => new RaftLog({ index: 10, term: 4 }, entries([4], 12), 0)).toThrow(/expected 11/);
  });

  it('Figure 13 step 6: installing a snapshot whose last entry the log holds keeps the entries after it', () => {
    const log = new RaftLog(null, entries([1, 1, 2, 2]), 0);
    log.restore({ index: 3, term: 2 });
    expect(log.firstIndex()).toBe(4);
    expect(log.lastIndex()).toBe(4);
    expect(log.committed).toBe(3);
  });

  it('Figure 13 step 7: otherwise the whole log is discarded', () => {
    const log = new RaftLog(null, entries([1, 1, 2, 2]), 0);
    log.restore({ index: 6, term: 3 });
    expect(log.firstIndex()).toBe(7);
    expect(log.lastIndex()).toBe(6);
    expect(log.lastTerm()).toBe(3);
    expect(log.unstableEntries()).toEqual([]);
  });

  it('pipelined writes: entries handed to storage are not handed out again; a truncation pulls both marks back', () => {
    const log = new RaftLog(null, entries([1]), 1);
    const batch = entries([1, 1, 1], 2); // indices 2..4
    expect(log.tryAppend(1, 1, batch)).toBe(4);
    expect(log.unstableEntries().map((e) => e.index)).toEqual([2, 3, 4]);
    log.writtenTo(batch);
    expect(log.unstableEntries()).toEqual([]);
    expect([log.stable, log.written]).toEqual([1, 4]);
    // A new leader's entry conflicts at 3 while the write of 2..4 is in progress.
    expect(log.tryAppend(2, 1, entries([2], 3))).toBe(3);
    expect([log.stable, log.written]).toEqual([1, 2]);
    expect(log.unstableEntries().map((e) => [e.index, e.term])).toEqual([[3, 2]]);
    // The old write completes: only the prefix the log still holds (index 2) counts as stable.
    log.stableTo(batch);
    expect([log.stable, log.written]).toEqual([2, 2]);
  });
});
