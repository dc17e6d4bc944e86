import { sameConfState } from '../raft/confstate.js';
import type { Entry, HardState, SnapshotMeta } from '../raft/types.js';

export type { SnapshotMeta } from '../raft/types.js';

/** What a node finds in its storage when it starts. */
export interface StoredState {
  readonly hardState: HardState;
  /** The latest durable snapshot, or null. */
  readonly snapshot: SnapshotMeta | null;
  /**
   * The stored log after the snapshot: contiguous, the first at `snapshot.index + 1` (or 1 without a snapshot).
   * Storage may keep some entries at or below `snapshot.index` (compaction drops whole segments); it returns only
   * the ones after it.
   */
  readonly entries: readonly Entry[];
}

/** A snapshot's bytes, read in bounded chunks (a snapshot can be far larger than one buffer should be). */
export interface SnapshotSource {
  readonly meta: SnapshotMeta;
  /** Total size in bytes. */
  readonly size: number;
  /** Opens a fresh read of the data; each call starts from the beginning. */
  chunks(): AsyncIterable<Uint8Array>;
}

/**
 * Where the runtime keeps what Raft requires to be persistent (Figure 2: currentTerm, votedFor, log[]) and the
 * state machine's snapshots (§7).
 *
 * The Ready contract (ARCHITECTURE.md): the runtime calls `save` with a Ready's hard state and entries and waits for
 * it to resolve before it sends the messages that depend on them. Calls are never concurrent for the same method
 * family (the runtime awaits each), except that `save` may be called while a snapshot is being written or staged.
 */
export interface Storage {
  load(): Promise<StoredState>;
  /**
   * Persist `hardState` (when given) and `entries` durably before resolving. The entries are contiguous; any stored
   * entry at or after `entries[0].index` is removed first (a new leader may overwrite a conflicting suffix, §5.3).
   */
  save(hardState: HardState | undefined, entries: readonly Entry[]): Promise<void>;

  /** Durably replace the current snapshot with one of the local state machine, written from `chunks`. */
  saveSnapshot(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>): Promise<void>;
  /** The current snapshot, or null when there is none. */
  openSnapshot(): Promise<SnapshotSource | null>;
  /** Log entries up to `index` are covered by the current snapshot and may be dropped (§7, log compaction). */
  compact(index: number): Promise<void>;

  /**
   * Receive a snapshot sent by the leader (InstallSnapshot) into a staging area, durably, without touching the
   * current snapshot or the log. Rejects if `chunks` fails (a broken stream or a checksum mismatch).
   */
  stageSnapshot(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>): Promise<void>;
  /**
   * Make the staged snapshot with this meta the current one, atomically. The log then keeps only the entries after
   * `meta.index`, and only if the stored entry at `meta.index` has `meta.term` (§7: "If existing log entry has same
   * index and term as snapshot's last included entry, retain log entries following it"); otherwise it is emptied.
   * The staged snapshot is found by index and term, and keeps the configuration it was staged with; a `meta` that
   * names a configuration must name that one (see sameSnapshotConfig), or the install is refused.
   */
  installStagedSnapshot(meta: SnapshotMeta): Promise<void>;

  /**
   * Whether `save` may write on the calling thread, blocking it for the write (true), or must hand the write to a
   * worker thread (false, the default). Optional: storage without a real disk ignores it.
   */
  setBlockingWrites?(blocking: boolean): void;

  close(): Promise<void>;
}

/**
 * Whether a caller's `given` meta agrees with the configuration of the snapshot `stored` holds at the same index and
 * term: when `given` names a configuration, it must be the stored one; when it names only index and term, any is.
 * Two snapshots at the same index and term cannot rightly differ here: by the Log Matching Property (§5.3) they
 * cover the same log prefix, and so the same latest configuration in it (§7, thesis §5.1).
 */
export function sameSnapshotConfig(stored: SnapshotMeta, given: SnapshotMeta): boolean {
  if (given.config === undefined) return true;
  return stored.config !== undefined && sameConfState(stored.config, given.config);
}
