// Appends records to the WAL with group commit: writes that arrive while a batch is being written wait, then go
// out together in one synchronous write. Rolls to a new segment when the active one is full.
//
// The active segment is opened with O_DSYNC, so each write returns only once its data (and the file size) are on
// stable storage, as write + fdatasync would, but in one system call: one trip through libuv's thread pool instead
// of two. On the development VM that took a small save from 0.30 ms to 0.23 ms at the median and from 0.8 to
// 0.4 ms at p99; every node on a write's path pays it once.
//
// A new segment is first extended to its full size (segmentBytes) with ftruncate, as etcd preallocates its WAL
// files: the writes then land inside the file instead of growing it, so an O_DSYNC write no longer has to make a
// new file size durable, which on ext4 is a journal commit per write. On the development VM (ext4 on virtio) that
// took a 300-byte O_DSYNC write from 0.16 ms to 0.11 ms at the median and from 0.25 to 0.22 ms at p99. The part
// not written yet reads as zeros (a hole: it takes no disk space); recovery takes the first all-zero tail for the
// end of the segment (wal.ts, zeroTailStart), and a sealed segment is cut back to the bytes it holds.

import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { HardState } from '../raft/types.js';
import { datasync, removeFile, syncDir, writeAllv, type Counters } from './fsutil.js';
import type { SnapshotMeta } from './storage.js';
import { encodeRecord, segmentName, type WalRecord } from './wal.js';

/** A WAL segment file. */
export interface SegmentInfo {
  readonly seq: number;
  readonly name: string;
  /**
   * The highest index of a live entry in it (written there and not voided by a later TRUNCATE), 0 for none: the
   * segment can go once a snapshot covers that index.
   */
  maxEntryIndex: number;
}

/**
 * Updates `maxEntryIndex` for a record appended to the last of `segments`: an entry raises the last segment's, a
 * truncation lowers every segment's (the entries it voids no longer hold any segment back from compaction).
 */
export function noteEntries(segments: readonly SegmentInfo[], record: WalRecord): void {
  if (record.type === 'entry') {
    const seg = segments.at(-1);
    if (seg !== undefined && record.entry.index > seg.maxEntryIndex) seg.maxEntryIndex = record.entry.index;
  } else if (record.type === 'truncate') {
    for (const seg of segments) seg.maxEntryIndex = Math.min(seg.maxEntryIndex, record.from - 1);
  }
}

/** An encoded record, with what the writer must remember of it. */
export interface PendingRecord {
  readonly bytes: Buffer;
  readonly record: WalRecord;
}

export function pending(record: WalRecord): PendingRecord {
  return { bytes: encodeRecord(record), record };
}

interface PendingWrite {
  readonly records: readonly PendingRecord[];
  readonly bytes: number;
  /** A save() (counted in the stats), rather than a record of a snapshot operation. */
  readonly isSave: boolean;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

export interface WalWriterOptions {
  readonly dir: string;
  /** A segment is closed and a new one started before a record would take it past this size. */
  readonly segmentBytes: number;
  /** A batch takes queued writes up to this many bytes (always at least one write). */
  readonly maxBatchBytes: number;
  readonly counters: Counters;
}

/** The state every new segment starts with, so that deleting older segments loses nothing still needed. */
export interface SegmentHeaderState {
  readonly hardState: HardState;
  readonly mark: SnapshotMeta | null;
}

export class WalWriter {
  readonly #options: WalWriterOptions;
  /** Oldest first; the last one is the active segment. Invariant: seqs are consecutive. */
  readonly #segments: SegmentInfo[];
  #fh: FileHandle | null = null;
  /** Bytes in the active segment, and how many of them are its header records. */
  #size = 0;
  #headerBytes = 0;
  /** The hard state and mark as written so far (what the next segment's header repeats). */
  #hardState: HardState;
  #mark: SnapshotMeta | null;

  /** Batches are written on the calling thread, which waits (see FileStorage.setBlockingWrites). */
  blocking = false;

  #queue: PendingWrite[] = [];
  /** A flush loop is running. Set and cleared synchronously with the queue checks, so no write is stranded. */
  #running = false;
  #loop: Promise<void> = Promise.resolve();
  /** After a failed write or sync the WAL's tail is unknown (fsync errors may drop dirty pages): no more writes. */
  #failed: Error | null = null;
  #closed = false;

  private constructor(options: WalWriterOptions, segments: SegmentInfo[], state: SegmentHeaderState) {
    this.#options = options;
    this.#segments = segments;
    this.#hardState = state.hardState;
    this.#mark = state.mark;
  }

  /**
   * Starts a new segment after `segments` (closed, oldest first) with a header for `state`, followed by `extra`,
   * all durable before it resolves.
   */
  static async create(
    options: WalWriterOptions,
    segments: SegmentInfo[],
    state: SegmentHeaderState,
    extra: readonly PendingRecord[],
  ): Promise<WalWriter> {
    const writer = new WalWriter(options, segments, state);
    await writer.#startSegment((segments.at(-1)?.seq ?? 0) + 1, extra);
    return writer;
  }

  get segments(): readonly SegmentInfo[] {
    return this.#segments;
  }

  /** Queues records; resolves once they are written and fdatasynced. */
  append(records: readonly PendingRecord[], isSave: boolean): Promise<void> {
    if (this.#failed !== null) return Promise.reject(this.#failedError());
    if (this.#closed) return Promise.reject(new Error('file storage: closed'));
    return new Promise<void>((resolve, reject) => {
      const bytes = records.reduce((n, r) => n + r.bytes.length, 0);
      this.#queue.push({ records, bytes, isSave, resolve, reject });
      if (!this.#running) {
        this.#running = true;
        this.#loop = this.#flushLoop();
      }
    });
  }

  /** Resolves when every queued write has been handled. */
  async idle(): Promise<void> {
    while (this.#running) await this.#loop;
  }

  async #flushLoop(): Promise<void> {
    const { counters } = this.#options;
    while (true) {
      const batch = this.#takeBatch();
      if (batch.length === 0) {
        this.#running = false;
        return;
      }
      const saves = batch.filter((w) => w.isSave).length;
      try {
        await this.#writeBatch(batch);
      } catch (err) {
        this.#failed = err instanceof Error ? err : new Error(String(err));
        const failed = batch.concat(this.#queue.splice(0));
        for (const w of failed) w.reject(this.#failedError());
        counters.saves += saves;
        this.#running = false;
        return;
      }
      if (batch.some((w) => w.records.length > 0)) counters.batches++;
      counters.saves += saves;
      counters.savesCoalesced += Math.max(0, saves - 1);
      for (const w of batch) w.resolve();
    }
  }

  #failedError(): Error {
    return new Error('file storage: a WAL write failed earlier; the log is in an unknown state', {
      cause: this.#failed,
    });
  }

  #takeBatch(): PendingWrite[] {
    let bytes = 0;
    let n = 0;
    for (const w of this.#queue) {
      if (n > 0 && bytes + w.bytes > this.#options.maxBatchBytes) break;
      bytes += w.bytes;
      n++;
    }
    return this.#queue.splice(0, n);
  }

  async #writeBatch(batch: readonly PendingWrite[]): Promise<void> {
    const { segmentBytes } = this.#options;
    let iov: Buffer[] = [];
    let iovBytes = 0;
    let dirty = false;
    for (const w of batch) {
      for (const r of w.records) {
        const used = this.#size + iovBytes;
        // Roll only a segment holding more than its header, or a tiny segmentBytes would roll forever.
        if (used > this.#headerBytes && used + r.bytes.length > segmentBytes) {
          await this.#write(iov);
          iov = [];
          iovBytes = 0;
          await this.#roll();
        }
        iov.push(r.bytes);
        iovBytes += r.bytes.length;
        this.#noteWritten(r.record);
        dirty = true;
      }
    }
    await this.#write(iov);
    // The writes were synchronous (O_DSYNC): the batch is durable. Counted as the one sync it replaces.
    if (dirty) this.#options.counters.fsyncs++;
  }

  /** Keeps what a new segment's header and compaction need to know about a record going to the active segment. */
  #noteWritten(record: WalRecord): void {
    if (record.type === 'hardState') this.#hardState = record.hardState;
    else if (record.type === 'snapshotMark') this.#mark = record.meta;
    else noteEntries(this.#segments, record);
  }

  async #write(bufs: readonly Buffer[]): Promise<void> {
    if (bufs.length === 0) return;
    const n = await writeAllv(this.#active(), bufs, this.#size, this.blocking);
    this.#size += n;
    this.#options.counters.records += bufs.length;
    this.#options.counters.bytes += n;
  }

  /** Seals the active segment (durable, closed) and starts the next one. */
  async #roll(): Promise<void> {
    const fh = this.#active();
    await fh.truncate(this.#size); // give back the reserved space it did not use
    await datasync(fh, this.#options.counters);
    await fh.close();
    this.#fh = null;
    await this.#startSegment((this.#segments.at(-1)?.seq ?? 0) + 1, []);
  }

  /**
   * Creates segment `seq` holding its header (the hard state, and the snapshot mark once there is a snapshot) and
   * `extra`, durable, and only then makes it the active segment. Until then the previous segment stays the last
   * one, which compaction never deletes: the hard state is always in some durable segment.
   */
  async #startSegment(seq: number, extra: readonly PendingRecord[]): Promise<void> {
    const { dir, counters } = this.#options;
    const name = segmentName(seq);
    const header: PendingRecord[] = [pending({ type: 'hardState', hardState: this.#hardState })];
    if (this.#mark !== null) header.push(pending({ type: 'snapshotMark', meta: this.#mark }));
    header.push(...extra);
    const fh = await open(join(dir, name), segmentFlags);
    let size: number;
    try {
      // Reserve the whole segment before the first write (see the top of this file); the datasync below makes the
      // size durable with the header.
      await fh.truncate(this.#options.segmentBytes);
      size = await writeAllv(
        fh,
        header.map((r) => r.bytes),
        0,
      );
      await datasync(fh, counters);
      await syncDir(dir, counters);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw err;
    }
    counters.records += header.length;
    counters.bytes += size;
    this.#fh = fh;
    this.#size = size;
    this.#headerBytes = size;
    this.#segments.push({ seq, name, maxEntryIndex: 0 });
    for (const r of extra) this.#noteWritten(r.record);
  }

  #active(): FileHandle {
    if (this.#fh === null) throw new Error('file storage: no active WAL segment');
    return this.#fh;
  }

  /**
   * Deletes the oldest segments while every entry in them is at or below `index`, never the active one. Each
   * deletion is made durable before the next, so a crash never leaves a hole in the sequence. Returns how many.
   */
  async removeCovered(index: number): Promise<number> {
    let removed = 0;
    while (this.#segments.length > 1) {
      const seg = this.#segments[0];
      if (seg === undefined || seg.maxEntryIndex > index) break;
      await removeFile(join(this.#options.dir, seg.name));
      this.#segments.shift();
      await syncDir(this.#options.dir, this.#options.counters);
      removed++;
    }
    return removed;
  }

  /** Waits for queued writes, then closes the active segment. Later appends reject. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.idle();
    const fh = this.#fh;
    this.#fh = null;
    if (fh === null) return;
    try {
      // Tidy, not needed for correctness: recovery reads the reserved zeros as the end of the segment. Not after a
      // failed write, whose effect on the file is unknown.
      if (this.#failed === null) await fh.truncate(this.#size);
    } finally {
      await fh.close();
    }
  }
}

/** Create a new segment (failing if it exists), write only, every write durable when it returns. */
const segmentFlags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC;
