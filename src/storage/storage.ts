import type { Entry, HardState } from '../raft/types.js';

/** What a node finds in its storage when it starts. */
export interface StoredState {
  readonly hardState: HardState;
  /** The stored log, contiguous, starting at index 1 (until snapshots exist). */
  readonly entries: readonly Entry[];
}

/**
 * Where the runtime keeps what Raft requires to be persistent (Figure 2: currentTerm, votedFor, log[]).
 *
 * The Ready contract (ARCHITECTURE.md): the runtime calls `save` with a Ready's hard state and entries and waits
 * for it to resolve before it sends the messages that depend on them.
 */
export interface Storage {
  load(): Promise<StoredState>;
  /**
   * Persist `hardState` (when given) and `entries`. The entries are contiguous; any stored entry at or after
   * `entries[0].index` is removed first (a new leader may overwrite a conflicting suffix, §5.3).
   */
  save(hardState: HardState | undefined, entries: readonly Entry[]): Promise<void>;
  close(): Promise<void>;
}
