// The replicated state machine: a map from key to value, applied in log order. It knows nothing of Raft beyond
// "an ordered stream of committed commands" (ARCHITECTURE.md); apply is deterministic, so every node that
// applies the same log holds the same map (State Machine Safety, §5.4.3).

import { decodeCommand } from './command.js';
import { decodeSnapshot, encodeSnapshot } from './snapshot.js';

export interface StoredValue {
  readonly value: string;
  /** The log index of the entry that last changed the key. */
  readonly index: number;
}

export type ApplyResult =
  | { readonly op: 'set'; readonly key: string; readonly value: string; readonly index: number }
  | { readonly op: 'delete'; readonly key: string; readonly deleted: boolean; readonly index: number }
  | { readonly op: 'get'; readonly key: string; readonly found: StoredValue | null }
  | { readonly op: 'invalid'; readonly error: string };

export class KvStore {
  readonly #data = new Map<string, StoredValue>();
  #lastApplied = 0;

  get lastApplied(): number {
    return this.#lastApplied;
  }

  get size(): number {
    return this.#data.size;
  }

  /** A local read of the applied state. */
  get(key: string): StoredValue | null {
    return this.#data.get(key) ?? null;
  }

  /** Marks `index` applied without a command (no-op entries). */
  skip(index: number): void {
    this.#advance(index);
  }

  apply(index: number, data: Uint8Array): ApplyResult {
    this.#advance(index);
    let command;
    try {
      command = decodeCommand(data);
    } catch (e) {
      // A command that cannot be decoded was proposed by a buggy or newer node. Every replica rejects it the same
      // way, so the replicas stay identical.
      return { op: 'invalid', error: e instanceof Error ? e.message : String(e) };
    }
    switch (command.op) {
      case 'set':
        this.#data.set(command.key, { value: command.value, index });
        return { op: 'set', key: command.key, value: command.value, index };
      case 'delete':
        return { op: 'delete', key: command.key, deleted: this.#data.delete(command.key), index };
      case 'get':
        return { op: 'get', key: command.key, found: this.get(command.key) };
    }
  }

  /**
   * A point-in-time snapshot of the state (§7), in chunks. The chunks are produced lazily, so the caller must consume
   * them before applying anything else; `snapshotChunks` copies nothing up front but holds the live map.
   */
  snapshotChunks(chunkBytes?: number): Iterable<Uint8Array> {
    return encodeSnapshot(this.#lastApplied, this.#data.entries(), chunkBytes);
  }

  /** Replaces the whole state with a snapshot's (streamed). */
  async restore(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<void> {
    const data = new Map<string, StoredValue>();
    const lastApplied = await decodeSnapshot(chunks, (key, value) => data.set(key, value));
    this.#data.clear();
    for (const [key, value] of data) this.#data.set(key, value);
    this.#lastApplied = lastApplied;
  }

  /** Every key in key order, for checks that replicas agree. */
  entries(): [string, StoredValue][] {
    return [...this.#data.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  #advance(index: number): void {
    if (index !== this.#lastApplied + 1) {
      throw new Error(
        `kv: applying index ${index} after ${this.#lastApplied}; entries must be applied in order`,
      );
    }
    this.#lastApplied = index;
  }
}
