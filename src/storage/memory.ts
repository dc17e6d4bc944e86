import { emptyHardState, type Entry, type HardState } from '../raft/types.js';
import {
  sameSnapshotConfig,
  type SnapshotMeta,
  type SnapshotSource,
  type Storage,
  type StoredState,
} from './storage.js';

interface MemorySnapshot {
  /** As given to saveSnapshot / stageSnapshot, configuration included (the same object: it is readonly). */
  readonly meta: SnapshotMeta;
  readonly data: readonly Uint8Array[];
}

/**
 * Keeps everything in memory: the default, as in the seed project. A process restart loses the log and the vote,
 * which is only safe for a node that is not restarted within an election (see the README's "Durability" section).
 * The simulator keeps one instance across a node's crash and restart, as a disk would be kept.
 */
export class MemoryStorage implements Storage {
  #hardState: HardState = emptyHardState;
  #snapshot: MemorySnapshot | null = null;
  /** Received snapshots not installed yet, by "index:term" (a newer one may arrive before an older installs). */
  readonly #staged = new Map<string, MemorySnapshot>();
  /** Entries after the snapshot. Invariant: #entries[i].index === #offset + i + 1. */
  #entries: Entry[] = [];
  #offset = 0;

  load(): Promise<StoredState> {
    return Promise.resolve(this.snapshot());
  }

  /** A synchronous copy of what is stored; the simulator restarts nodes from it. */
  snapshot(): StoredState {
    const snap = this.#snapshot?.meta ?? null;
    const after = snap?.index ?? 0;
    return {
      hardState: this.#hardState,
      snapshot: snap,
      entries: this.#entries.filter((e) => e.index > after),
    };
  }

  saveSync(hardState: HardState | undefined, entries: readonly Entry[]): void {
    if (hardState !== undefined) this.#hardState = hardState;
    const first = entries[0];
    if (first === undefined) return;
    const last = this.#offset + this.#entries.length;
    if (first.index > last + 1) {
      // Only legal right after a snapshot covers the gap.
      const covered = this.#snapshot?.meta.index ?? 0;
      if (first.index !== covered + 1)
        throw new Error(`memory storage: gap, have up to ${last}, got ${first.index}`);
      this.#entries = [];
      this.#offset = covered;
    } else if (first.index <= this.#offset) {
      throw new Error(`memory storage: write at ${first.index} below the compacted prefix ${this.#offset}`);
    }
    this.#entries.length = first.index - 1 - this.#offset;
    for (const entry of entries) this.#entries.push(entry);
  }

  save(hardState: HardState | undefined, entries: readonly Entry[]): Promise<void> {
    this.saveSync(hardState, entries);
    return Promise.resolve();
  }

  async saveSnapshot(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    this.#snapshot = { meta, data: await collect(chunks) };
  }

  openSnapshot(): Promise<SnapshotSource | null> {
    const snap = this.#snapshot;
    if (snap === null) return Promise.resolve(null);
    return Promise.resolve(sourceOf(snap));
  }

  compact(index: number): Promise<void> {
    this.compactSync(index);
    return Promise.resolve();
  }

  compactSync(index: number): void {
    const drop = Math.min(index - this.#offset, this.#entries.length);
    if (drop <= 0) return;
    this.#entries.splice(0, drop);
    this.#offset += drop;
  }

  async stageSnapshot(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>): Promise<void> {
    this.#staged.set(`${meta.index}:${meta.term}`, { meta, data: await collect(chunks) });
  }

  installStagedSnapshot(meta: SnapshotMeta): Promise<void> {
    const staged = this.#staged.get(`${meta.index}:${meta.term}`);
    if (staged === undefined) {
      return Promise.reject(new Error(`memory storage: no staged snapshot at ${meta.index}/${meta.term}`));
    }
    if (!sameSnapshotConfig(staged.meta, meta)) {
      return Promise.reject(
        new Error(
          `memory storage: the staged snapshot ${meta.index}/${meta.term} holds another configuration ` +
            'than the one given',
        ),
      );
    }
    this.installSync(staged);
    return Promise.resolve();
  }

  /** Installs a snapshot at once (the simulator's InstallSnapshot). */
  installSync(snap: MemorySnapshot): void {
    for (const [key, other] of this.#staged)
      if (other.meta.index <= snap.meta.index) this.#staged.delete(key);
    this.#snapshot = snap;
    const { index, term } = snap.meta;
    const at = this.#entries[index - 1 - this.#offset];
    if (at !== undefined && at.term === term) {
      this.compactSync(index); // §7: retain the entries following a matching one
    } else {
      this.#entries = [];
      this.#offset = index;
    }
  }

  /** The current snapshot's bytes joined (tests and the simulator). */
  snapshotData(): MemorySnapshot | null {
    return this.#snapshot;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}

function sourceOf(snap: MemorySnapshot): SnapshotSource {
  return {
    meta: snap.meta,
    size: snap.data.reduce((n, c) => n + c.length, 0),
    chunks: async function* () {
      yield* snap.data;
    },
  };
}
