// FileStorage: Raft's persistent state (Figure 2: currentTerm, votedFor, log[]) in a write-ahead log, and the state
// machine's snapshots (§7) in files beside it.
//
// On disk, under the directory given to FileStorage.open:
//
//   wal/0000000000000001.log   WAL segments, numbered 1, 2, 3, ... with no gaps (compaction deletes from the front)
//   wal/0000000000000002.log   the highest number is the active segment; each start of the process begins a new one
//   snap/<index>-<term>.snap   the current snapshot, both numbers zero-padded to 16 digits
//   snap/tmp-*.tmp             a local snapshot being written (deleted at startup: its write never finished)
//   snap/staged-<i>-<t>.tmp    a snapshot received from the leader, not installed yet (deleted at startup)
//
// WAL records (wal.ts): [u32 length][u32 crc32(type+payload)][u8 type][payload], little-endian; types ENTRY,
// HARD_STATE, TRUNCATE (entries from an index on are void: how save() overwrites a suffix without rewriting files)
// and SNAPSHOT_MARK (the snapshot now current; entries up to its index are superseded). Every segment starts with
// a HARD_STATE and, once there is a snapshot, a SNAPSHOT_MARK, so deleting older segments never loses them.
// Snapshot files (snapfile.ts): a header with index, term and the configuration in force at the index (thesis
// §5.1), the data, a trailer with size and crc32.
//
// The snapshot's meta, configuration included, lives in its file alone: SNAPSHOT_MARK records carry only index and
// term. That is enough, because the mark only says which snapshot is current and which entries it supersedes:
// load() takes the meta it returns from the snapshot file (which it checks against the mark by index and term),
// and a mark is never appended before its file is in place. Keeping the configuration out of the mark also keeps
// it out of every segment header, which repeats the mark.
//
// Durability: save() resolves after its records are written and the segment fdatasynced. Saves that arrive while
// a batch is being synced are written together and share one fdatasync (group commit). A save writes its entries
// before its hard state, so a torn write never keeps a commit index without its entries. Files are created,
// renamed and deleted followed by an fsync of their directory; a new segment is durable, header included, before
// it becomes the active one. A snapshot is written to a temp file, synced, renamed to its final name, the
// directory synced, and only then is its SNAPSHOT_MARK appended to the WAL.
//
// Recovery (load): the snapshot with the highest index in snap/, then every segment in order. A bad record at the
// very end of the last segment (cut short, or a checksum mismatch with nothing valid after it) is a write the
// crash interrupted: it is cut off and logged. Zeros after the last record are space reserved for the segment
// and never written (writer.ts): the end of the segment, not an error. Any other bad record, a missing segment, or a log that does not run
// contiguously from the snapshot is corruption: load() rejects with a StorageCorruptError naming file and offset.
// A snapshot file newer than the WAL's last mark is an install the crash interrupted: recovery finishes it.

import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Entry, HardState } from '../raft/types.js';
import { StorageCorruptError } from './errors.js';
import { datasync, isCode, listDir, newCounters, removeFile, syncDir, type Counters } from './fsutil.js';
import { LogReplay } from './replay.js';
import {
  isLeftover,
  parseSnapshotName,
  readSnapshotChunks,
  readSnapshotInfo,
  snapshotName,
  stagedName,
  tempName,
  writeSnapshotFile,
  type SnapshotFileInfo,
} from './snapfile.js';
import {
  sameSnapshotConfig,
  type SnapshotMeta,
  type SnapshotSource,
  type Storage,
  type StoredState,
} from './storage.js';
import { TermRuns } from './terms.js';
import { findValidRecordAfter, parseSegmentName, readRecord, zeroTailStart } from './wal.js';
import { noteEntries, pending, WalWriter, type PendingRecord, type SegmentInfo } from './writer.js';

/** Where FileStorage reports what recovery repaired (pino's logger fits). */
export interface StorageLogger {
  warn(obj: object, msg: string): void;
}

export interface FileStorageOptions {
  /** A WAL segment is closed and a new one started when the next record would take it past this. */
  readonly segmentBytes?: number;
  /** Group commit takes queued saves up to this many bytes into one write + fdatasync. */
  readonly maxBatchBytes?: number;
  /** openSnapshot() reads in chunks of this size; saveSnapshot gathers smaller chunks up to it. */
  readonly snapshotChunkBytes?: number;
  readonly logger?: StorageLogger;
}

export interface FileStorageStats extends Counters {
  /** WAL segment files, the active one included. */
  readonly segments: number;
}

const MiB = 1024 * 1024;
const defaults = { segmentBytes: 64 * MiB, maxBatchBytes: 16 * MiB, snapshotChunkBytes: MiB };

/** The current snapshot file. */
interface CurrentSnapshot {
  readonly path: string;
  readonly info: SnapshotFileInfo;
}

/** What replaying the WAL found, before it is turned into a StoredState and a writer. */
interface Recovered {
  readonly state: StoredState;
  readonly snapshot: CurrentSnapshot | null;
  readonly segments: SegmentInfo[];
  /** Records the new segment must carry after its header to finish an install a crash interrupted. */
  readonly finish: PendingRecord[];
}

export class FileStorage implements Storage {
  readonly dir: string;
  readonly #walDir: string;
  readonly #snapDir: string;
  readonly #options: typeof defaults;
  readonly #logger: StorageLogger | undefined;
  readonly #counters = newCounters();

  /** Set by the first load(); the other methods need it. */
  #writer: WalWriter | null = null;
  /** The terms of the log after the snapshot, including saves still queued: what the next save is checked against. */
  readonly #terms = new TermRuns();
  #snapshot: CurrentSnapshot | null = null;
  /** Serializes the operations that change snap/ or delete segments (each is short; streaming happens outside). */
  #lock: Promise<void> = Promise.resolve();
  /** Staged files being written. */
  readonly #staging = new Set<string>();
  #tempSeq = 0;
  #blockingWrites = false;
  #closing: Promise<void> | null = null;

  private constructor(dir: string, options: FileStorageOptions) {
    this.dir = dir;
    this.#walDir = join(dir, 'wal');
    this.#snapDir = join(dir, 'snap');
    this.#options = {
      segmentBytes: options.segmentBytes ?? defaults.segmentBytes,
      maxBatchBytes: options.maxBatchBytes ?? defaults.maxBatchBytes,
      snapshotChunkBytes: options.snapshotChunkBytes ?? defaults.snapshotChunkBytes,
    };
    for (const [key, value] of Object.entries(this.#options)) {
      if (!Number.isSafeInteger(value) || value <= 0) {
        throw new RangeError(`file storage: ${key} must be a positive integer, got ${value}`);
      }
    }
    this.#logger = options.logger;
  }

  /** Opens (creating if needed) the storage in `dir`. Nothing is read until load(). */
  static async open(dir: string, options: FileStorageOptions = {}): Promise<FileStorage> {
    const storage = new FileStorage(dir, options);
    const created = await mkdir(dir, { recursive: true });
    const made = [
      await mkdir(storage.#walDir, { recursive: true }),
      await mkdir(storage.#snapDir, { recursive: true }),
    ];
    // Make the new directories' names durable, from the parent of the first one created down to `dir`.
    if (created !== undefined) {
      for (let d = dir; ; d = dirname(d)) {
        await syncDir(dirname(d), storage.#counters);
        if (d === created || dirname(d) === d) break;
      }
    }
    if (made.some((m) => m !== undefined)) await syncDir(dir, storage.#counters);
    return storage;
  }

  /**
   * WAL writes on the calling thread (blocking it until the write is durable) or on the thread pool. Blocking saves
   * two hand-offs between threads per write; the runtime turns it on where nothing else should go ahead of the
   * write anyway (see RaftNode). Snapshot files and segment rolls always go through the thread pool.
   */
  setBlockingWrites(blocking: boolean): void {
    this.#blockingWrites = blocking;
    if (this.#writer !== null) this.#writer.blocking = blocking;
  }

  /** What the storage has done so far: fsyncs (files and directories), WAL records and bytes, group commit. */
  stats(): FileStorageStats {
    return { ...this.#counters, segments: this.#writer?.segments.length ?? 0 };
  }

  /**
   * Recovers the stored state (repairing a torn WAL tail and finishing an interrupted snapshot install) and starts
   * a new WAL segment. Must come first. Later calls re-read the files, once pending writes are done.
   */
  async load(): Promise<StoredState> {
    this.#assertOpen();
    if (this.#writer !== null) {
      await this.#writer.idle();
      return this.#locked(async () => (await this.#recover(false)).state);
    }
    const recovered = await this.#recover(true);
    const { state, snapshot } = recovered;
    this.#snapshot = snapshot;
    this.#terms.reset(state.snapshot?.index ?? 0, state.snapshot?.term ?? 0);
    for (const e of state.entries) this.#terms.append(e.index, e.term);
    this.#writer = await WalWriter.create(
      { dir: this.#walDir, counters: this.#counters, ...this.#options },
      recovered.segments,
      { hardState: state.hardState, mark: state.snapshot },
      recovered.finish,
    );
    this.#writer.blocking = this.#blockingWrites;
    return state;
  }

  async save(hardState: HardState | undefined, entries: readonly Entry[]): Promise<void> {
    const writer = this.#ready();
    // Everything up to append() is synchronous, so the WAL has saves in call order.
    const records: PendingRecord[] = [];
    const first = entries[0];
    if (first !== undefined) {
      this.#checkAppend(entries);
      if (first.index <= this.#terms.last) records.push(pending({ type: 'truncate', from: first.index }));
      for (const entry of entries) records.push(pending({ type: 'entry', entry }));
    }
    // The hard state goes after the entries: a torn write keeps a prefix of the records, and a commit index must
    // never be kept without the entries it covers.
    if (hardState !== undefined) records.push(pending({ type: 'hardState', hardState }));
    if (first !== undefined) {
      if (first.index <= this.#terms.last) this.#terms.truncate(first.index);
      for (const entry of entries) this.#terms.append(entry.index, entry.term);
    }
    return writer.append(records, true);
  }

  #checkAppend(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    if (first.index <= this.#terms.floor) {
      throw new Error(
        `file storage: write at ${first.index}, at or below the snapshot at ${this.#terms.floor}`,
      );
    }
    if (first.index > this.#terms.last + 1) {
      throw new Error(`file storage: gap, have up to ${this.#terms.last}, got ${first.index}`);
    }
    entries.forEach((e, i) => {
      if (e.index !== first.index + i) throw new Error(`file storage: entries not contiguous at ${e.index}`);
    });
  }

  async saveSnapshot(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    this.#ready();
    const temp = join(this.#snapDir, tempName(meta, ++this.#tempSeq));
    const info = await writeSnapshotFile(temp, meta, chunks, this.#snapshotWriteOptions());
    try {
      await this.#locked(() => this.#makeCurrent(temp, info));
    } catch (err) {
      await removeFile(temp);
      throw err;
    }
  }

  async openSnapshot(): Promise<SnapshotSource | null> {
    this.#ready();
    const current = this.#snapshot;
    if (current === null) return null;
    const info = await readSnapshotInfo(current.path).catch((err: unknown) => {
      if (isCode(err, 'ENOENT') && this.#snapshot !== current) return null; // replaced meanwhile
      throw err;
    });
    if (info === null) return this.openSnapshot();
    const { snapshotChunkBytes } = this.#options;
    const replaced = (): Error =>
      new Error(`file storage: snapshot ${current.path} was replaced by a newer one; open the current one`);
    return {
      meta: info.meta,
      size: info.size,
      chunks: () => readSnapshotChunks(current.path, info, snapshotChunkBytes, replaced),
    };
  }

  async compact(index: number): Promise<void> {
    const writer = this.#ready();
    // Never beyond the snapshot: those entries are the only copy.
    const covered = Math.min(index, this.#snapshot?.info.meta.index ?? 0);
    await this.#locked(() => writer.removeCovered(covered));
  }

  async stageSnapshot(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    this.#ready();
    const name = stagedName(meta);
    if (this.#staging.has(name)) {
      throw new Error(`file storage: snapshot ${meta.index}/${meta.term} is being staged`);
    }
    this.#staging.add(name);
    try {
      await writeSnapshotFile(join(this.#snapDir, name), meta, chunks, this.#snapshotWriteOptions());
    } finally {
      this.#staging.delete(name);
    }
  }

  async installStagedSnapshot(meta: SnapshotMeta): Promise<void> {
    this.#ready();
    const name = stagedName(meta);
    const path = join(this.#snapDir, name);
    await this.#locked(async () => {
      if (this.#staging.has(name)) {
        throw new Error(`file storage: snapshot ${meta.index}/${meta.term} is still staging`);
      }
      const info = await readSnapshotInfo(path).catch((err: unknown) => {
        throw isCode(err, 'ENOENT')
          ? new Error(`file storage: no staged snapshot at ${meta.index}/${meta.term}`)
          : err;
      });
      if (info.meta.index !== meta.index || info.meta.term !== meta.term) {
        throw new StorageCorruptError(
          path,
          0,
          `staged file holds snapshot ${info.meta.index}/${info.meta.term}`,
        );
      }
      if (!sameSnapshotConfig(info.meta, meta)) {
        throw new Error(
          `file storage: the staged snapshot ${meta.index}/${meta.term} holds another configuration ` +
            'than the one given',
        );
      }
      await this.#makeCurrent(path, info);
    });
  }

  /**
   * Renames a complete snapshot file to be the current one, deletes the older ones, and appends the SNAPSHOT_MARK
   * that fixes the log (§7): entries after the snapshot stay only if the stored entry at its index has its term.
   */
  async #makeCurrent(from: string, info: SnapshotFileInfo): Promise<void> {
    const writer = this.#ready();
    const { meta } = info;
    const current = this.#snapshot?.info.meta;
    if (
      current !== undefined &&
      (meta.index < current.index || (meta.index === current.index && meta.term !== current.term))
    ) {
      throw new Error(
        `file storage: snapshot ${meta.index}/${meta.term} is older than or conflicts with the current ` +
          `${current.index}/${current.term}`,
      );
    }
    const path = join(this.#snapDir, snapshotName(meta));
    await rename(from, path);
    await syncDir(this.#snapDir, this.#counters);
    this.#snapshot = { path, info };
    await this.#removeOldSnapshotFiles(path);
    // From here to append() is synchronous: the decision and the records see the same log as the saves around them.
    // The mark names the snapshot by index and term; its configuration is in the file (see the top of this file).
    const records = [pending({ type: 'snapshotMark', meta: { index: meta.index, term: meta.term } })];
    if (this.#terms.termAt(meta.index) === meta.term) {
      this.#terms.dropThrough(meta.index);
    } else {
      if (this.#terms.last > meta.index) records.push(pending({ type: 'truncate', from: meta.index + 1 }));
      this.#terms.reset(meta.index, meta.term);
    }
    await writer.append(records, false);
  }

  async #removeOldSnapshotFiles(keep: string): Promise<void> {
    let removed = 0;
    for (const name of await listDir(this.#snapDir)) {
      const path = join(this.#snapDir, name);
      if (path === keep || this.#staging.has(name) || !name.endsWith('.snap')) continue;
      await removeFile(path);
      removed++;
    }
    if (removed > 0) await syncDir(this.#snapDir, this.#counters);
  }

  #snapshotWriteOptions(): { bufferBytes: number; counters: Counters } {
    return { bufferBytes: this.#options.snapshotChunkBytes, counters: this.#counters };
  }

  /** Waits for pending writes and closes the files. Idempotent; every other method rejects afterwards. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#lock;
      await this.#writer?.close();
    })();
    return this.#closing;
  }

  #assertOpen(): void {
    if (this.#closing !== null) throw new Error('file storage: closed');
  }

  #ready(): WalWriter {
    this.#assertOpen();
    if (this.#writer === null) throw new Error('file storage: load() must come first');
    return this.#writer;
  }

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn);
    this.#lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  // ---- recovery ----

  async #recover(repair: boolean): Promise<Recovered> {
    const snapshot = await this.#findSnapshot(repair);
    const segments = await this.#listSegments(snapshot);
    const replay = new LogReplay();
    for (let i = 0; i < segments.length; i++) {
      // The last segment's bad tail: cut off at startup; while running, a write in flight, not read.
      const tail = i < segments.length - 1 ? 'none' : repair ? 'cut' : 'ignore';
      await this.#replaySegment(segments.slice(0, i + 1), replay, tail);
    }
    const finish = this.#reconcile(snapshot?.info.meta ?? null, replay, repair);
    const lastSegment = join(this.#walDir, segments.at(-1)?.name ?? '');
    const entries = replay.entriesAfter(snapshot?.info.meta.index ?? 0, lastSegment);
    const state = { hardState: replay.hardState, snapshot: snapshot?.info.meta ?? null, entries };
    return { state, snapshot, segments, finish };
  }

  /** The newest snapshot in snap/, checked. With `repair`, deletes leftovers of unfinished writes and older files. */
  async #findSnapshot(repair: boolean): Promise<CurrentSnapshot | null> {
    const names = await listDir(this.#snapDir);
    let best: { name: string; meta: SnapshotMeta } | null = null;
    for (const name of names) {
      const meta = parseSnapshotName(name);
      if (meta !== null && (best === null || compareMeta(meta, best.meta) > 0)) {
        best = { name, meta };
      }
    }
    let current: CurrentSnapshot | null = null;
    if (best !== null) {
      const path = join(this.#snapDir, best.name);
      const info = await readSnapshotInfo(path);
      if (info.meta.index !== best.meta.index || info.meta.term !== best.meta.term) {
        throw new StorageCorruptError(path, 0, `file holds snapshot ${info.meta.index}/${info.meta.term}`);
      }
      current = { path, info };
    }
    if (!repair) return current;
    let removed = 0;
    for (const name of names) {
      if (name === best?.name || !(isLeftover(name) || parseSnapshotName(name) !== null)) continue;
      if (isLeftover(name)) {
        this.#logger?.warn({ file: join(this.#snapDir, name) }, 'storage: removing unfinished snapshot');
      }
      await removeFile(join(this.#snapDir, name));
      removed++;
    }
    if (removed > 0) await syncDir(this.#snapDir, this.#counters);
    return current;
  }

  /** The WAL segments in order, checked to have no gaps. */
  async #listSegments(snapshot: CurrentSnapshot | null): Promise<SegmentInfo[]> {
    const segments: SegmentInfo[] = [];
    for (const name of await listDir(this.#walDir)) {
      const seq = parseSegmentName(name);
      if (seq === null) {
        this.#logger?.warn(
          { file: join(this.#walDir, name) },
          'storage: ignoring a file that is not a WAL segment',
        );
        continue;
      }
      const prev = segments.at(-1);
      if (prev !== undefined && seq !== prev.seq + 1) {
        const missing = join(this.#walDir, `${String(prev.seq + 1).padStart(16, '0')}.log`);
        throw new StorageCorruptError(
          missing,
          null,
          `WAL segment missing (have ${prev.name}, next is ${name})`,
        );
      }
      segments.push({ seq, name, maxEntryIndex: 0 });
    }
    if (segments.length === 0 && snapshot !== null) {
      throw new StorageCorruptError(
        this.#walDir,
        null,
        'no WAL segments but a snapshot: the term and vote are lost',
      );
    }
    return segments;
  }

  /**
   * Replays the last of `segments` (those before it are done), noting its live entries. `tail` says what a bad
   * record with nothing valid after it is: corruption ('none'), a torn write to cut off ('cut'), or the write in
   * flight of a running writer ('ignore').
   */
  async #replaySegment(
    segments: readonly SegmentInfo[],
    replay: LogReplay,
    tail: 'none' | 'cut' | 'ignore',
  ): Promise<void> {
    const seg = segments.at(-1);
    if (seg === undefined) return;
    const file = join(this.#walDir, seg.name);
    const buf = await readFile(file);
    // Past the last record written: zeros of the space reserved for the segment (writer.ts), never written.
    const written = zeroTailStart(buf);
    let offset = 0;
    while (offset < buf.length) {
      if (offset >= written) {
        if (tail === 'cut') await this.#cutTail(file, offset, buf.length - offset, null);
        return;
      }
      const r = readRecord(buf, offset);
      if (r.kind === 'ok') {
        replay.apply(r.record, { file, offset });
        noteEntries(segments, r.record);
        offset += r.bytes;
        continue;
      }
      if (r.kind === 'invalid' || tail === 'none') throw new StorageCorruptError(file, offset, r.reason);
      const next = findValidRecordAfter(buf, offset + 1, written);
      if (next >= 0) {
        throw new StorageCorruptError(file, offset, `${r.reason}, and a valid record follows at ${next}`);
      }
      if (tail === 'cut') await this.#cutTail(file, offset, buf.length - offset, r.reason);
      return;
    }
  }

  /**
   * Cuts `file` at `offset`: a torn record (`reason` says why it is bad), or with `reason` null the unused space
   * reserved for the segment a crash left active, which is only tidied away (nothing is lost).
   */
  async #cutTail(file: string, offset: number, dropped: number, reason: string | null): Promise<void> {
    const fh = await open(file, 'r+');
    try {
      await fh.truncate(offset);
      await datasync(fh, this.#counters);
    } finally {
      await fh.close();
    }
    if (reason === null) return;
    this.#logger?.warn(
      { file, offset, bytesDropped: dropped, reason },
      'storage: cut a torn record off the end of the WAL (a write the crash interrupted)',
    );
  }

  /**
   * Checks the snapshot file against the WAL's last mark. The mark is appended after the file is in place, so
   * the file may be newer (a crash in between): then the install is finished here, returning the records to add
   * to the WAL. The mark can never be newer than the file.
   */
  #reconcile(snap: SnapshotMeta | null, replay: LogReplay, repair: boolean): PendingRecord[] {
    const mark = replay.mark;
    if (
      mark !== null &&
      (snap === null || mark.index > snap.index || (mark.index === snap.index && mark.term !== snap.term))
    ) {
      const have = snap === null ? 'none' : `${snap.index}/${snap.term}`;
      throw new StorageCorruptError(
        this.#snapDir,
        null,
        `the WAL names snapshot ${mark.index}/${mark.term}, snap/ has ${have}`,
      );
    }
    if (snap === null || (mark !== null && mark.index === snap.index)) return [];
    if (!repair) throw new Error(`file storage: snapshot ${snap.index}/${snap.term} has no mark in the WAL`);
    const place = { file: this.#snapDir, offset: 0 };
    const records = [pending({ type: 'snapshotMark', meta: snap })];
    const matches = replay.termAt(snap.index) === snap.term;
    replay.apply({ type: 'snapshotMark', meta: snap }, place);
    if (!matches && replay.last !== null && replay.last > snap.index) {
      records.push(pending({ type: 'truncate', from: snap.index + 1 }));
      replay.apply({ type: 'truncate', from: snap.index + 1 }, place);
    }
    this.#logger?.warn(
      { snapshot: snap, logKept: matches },
      'storage: finishing a snapshot install a crash interrupted',
    );
    // The new segment's header carries the mark; only the truncation is extra.
    return records.slice(1);
  }
}

function compareMeta(a: SnapshotMeta, b: SnapshotMeta): number {
  return a.index !== b.index ? a.index - b.index : a.term - b.term;
}
