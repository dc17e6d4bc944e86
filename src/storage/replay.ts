// Rebuilds the log from WAL records, in the order they were written. Pure: file.ts feeds it what it reads.

import { emptyHardState, type Entry, type HardState } from '../raft/types.js';
import { StorageCorruptError } from './errors.js';
import type { SnapshotMeta } from './storage.js';
import type { WalRecord } from './wal.js';

/** Where a record was read from, for error messages. */
export interface RecordPlace {
  readonly file: string;
  readonly offset: number;
}

/**
 * The log as the records written so far describe it.
 *
 * Replay may start at any segment (compaction deletes the oldest ones), so the position of the log is unknown
 * (`last === null`) until the first ENTRY or TRUNCATE says it. Every segment starts with a HARD_STATE and, once
 * there is a snapshot, a SNAPSHOT_MARK, so the hard state and the mark survive the deletion of older segments.
 */
export class LogReplay {
  hardState: HardState = emptyHardState;
  /** The last SNAPSHOT_MARK seen (index and term: a mark carries no configuration). Marks never go back. */
  mark: SnapshotMeta | null = null;
  /** The index of the last entry, or null while unknown. Invariant: last >= mark.index once both are known. */
  last: number | null = null;
  /**
   * The entries after the mark, contiguous and ending at `last` (they may start later than mark.index + 1 when
   * replay started in the middle; `entriesAfter` finds that). A mark drops the entries it covers.
   */
  entries: Entry[] = [];
  /** Where entries[0] came from (for the error when the log turns out to have a hole). */
  #firstPlace: RecordPlace | null = null;

  apply(record: WalRecord, at: RecordPlace): void {
    switch (record.type) {
      case 'hardState':
        this.hardState = record.hardState;
        return;
      case 'entry':
        this.#entry(record.entry, at);
        return;
      case 'truncate':
        this.#truncate(record.from, at);
        return;
      case 'snapshotMark':
        this.#mark(record.meta, at);
        return;
    }
  }

  #entry(entry: Entry, at: RecordPlace): void {
    if (this.last !== null && entry.index !== this.last + 1) {
      throw corrupt(at, `entry ${entry.index} follows entry ${this.last}; the log must be contiguous`);
    }
    if (this.mark !== null && entry.index <= this.mark.index) {
      // Writers append only after the snapshot, and a mark never goes back.
      throw corrupt(at, `entry ${entry.index} written after snapshot mark ${this.mark.index}`);
    }
    this.last = entry.index;
    if (this.entries.length === 0) this.#firstPlace = at;
    this.entries.push(entry);
  }

  #truncate(from: number, at: RecordPlace): void {
    if (this.mark !== null && from <= this.mark.index) {
      throw corrupt(at, `truncation at ${from} reaches into snapshot ${this.mark.index}`);
    }
    if (this.last === null) {
      this.last = from - 1;
      return;
    }
    if (from > this.last + 1) throw corrupt(at, `truncation at ${from} is past the last entry ${this.last}`);
    const first = this.entries[0]?.index ?? this.last + 1;
    this.entries.length = Math.max(0, from - first);
    this.last = from - 1;
  }

  #mark(meta: SnapshotMeta, at: RecordPlace): void {
    if (this.mark !== null && meta.index < this.mark.index) {
      throw corrupt(at, `snapshot mark ${meta.index} goes back from ${this.mark.index}`);
    }
    this.mark = meta;
    if (this.last === null) return;
    if (this.last <= meta.index) {
      // The snapshot covers the whole log (and more): the next entry is the one after it.
      this.last = meta.index;
      this.entries = [];
      return;
    }
    const first = this.entries[0]?.index ?? this.last + 1;
    if (first <= meta.index) this.entries.splice(0, meta.index - first + 1);
  }

  /** The term of the entry at `index` if replay holds it. */
  termAt(index: number): number | undefined {
    const first = this.entries[0]?.index;
    if (first === undefined || index < first) return undefined;
    return this.entries[index - first]?.term;
  }

  /**
   * The entries after `snapshotIndex`, checked to start right after it. `snapshotIndex` must equal the mark's
   * (or be 0 without one): file.ts reconciles the snapshot file with the mark before it calls this.
   */
  entriesAfter(snapshotIndex: number, segmentFile: string): Entry[] {
    const last = this.last ?? snapshotIndex;
    if (last - snapshotIndex !== this.entries.length) {
      const first = this.entries[0]?.index ?? last + 1;
      const place = this.#firstPlace;
      throw new StorageCorruptError(
        place?.file ?? segmentFile,
        place?.offset ?? null,
        `entries ${snapshotIndex + 1}..${first - 1} are missing (snapshot at ${snapshotIndex}, log resumes at ` +
          `${first}); a WAL segment before this one was lost`,
      );
    }
    return this.entries;
  }
}

function corrupt(at: RecordPlace, reason: string): StorageCorruptError {
  return new StorageCorruptError(at.file, at.offset, reason);
}
