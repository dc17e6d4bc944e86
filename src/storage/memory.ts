import { emptyHardState, type Entry, type HardState } from '../raft/types.js';
import type { Storage, StoredState } from './storage.js';

/**
 * Keeps everything in memory: the default, as in the seed project. A process restart loses the log and the vote,
 * which is only safe for a node that is not restarted within an election (see the README's "Durability" note).
 */
export class MemoryStorage implements Storage {
  #hardState: HardState = emptyHardState;
  #entries: Entry[] = [];

  load(): Promise<StoredState> {
    return Promise.resolve(this.snapshot());
  }

  /** A synchronous copy of what is stored; the simulator restarts nodes from it. */
  snapshot(): StoredState {
    return { hardState: this.#hardState, entries: this.#entries.slice() };
  }

  saveSync(hardState: HardState | undefined, entries: readonly Entry[]): void {
    if (hardState !== undefined) this.#hardState = hardState;
    const first = entries[0];
    if (first === undefined) return;
    if (first.index > this.#entries.length + 1) {
      throw new Error(`memory storage: gap, have up to ${this.#entries.length}, got ${first.index}`);
    }
    this.#entries.length = first.index - 1;
    for (const entry of entries) this.#entries.push(entry);
  }

  save(hardState: HardState | undefined, entries: readonly Entry[]): Promise<void> {
    this.saveSync(hardState, entries);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
