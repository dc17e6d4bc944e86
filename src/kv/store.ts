// The replicated state machine: a map from key to value, applied in log order. It knows nothing of Raft beyond
// "an ordered stream of committed commands" (ARCHITECTURE.md); apply is deterministic, so every node that
// applies the same log holds the same map (State Machine Safety, §5.4.3).
//
// Two additions make clients' writes safe to retry and to race:
//
//   - Conditions (compare-and-set). A set or delete may carry `{ prevValue }` or `{ prevIndex }`; it applies only if
//     the condition holds when its entry applies, and otherwise answers ConditionFailed with the key's current
//     state. Either way the entry is applied (lastApplied advances): a failed condition is a result, not an error.
//
//   - Exactly-once retries (thesis §6.3). A set or delete may carry an idempotency key. The result of the first
//     entry applied with that key is remembered; a later entry with the same key changes nothing and answers that
//     same result with `replayed: true`, whatever the later command says (a different op, key, value or condition
//     included: the key names the request, and the first answer is the answer). A failed condition is remembered
//     like any other result, so a retried conditional write cannot succeed on its second try.
//     Guarantee: of two entries with the same idempotency key, the second applied fewer than
//     `idempotencyWindowEntries` indices after the first (every entry counts, no-ops included), only the first
//     applies — provided the table did not forget the first for room in between: that takes `maxIdempotencyKeys`
//     newer keys remembered after it, or more than `maxIdempotencyBytes` of newer results. A retry within the
//     window is thus applied at most once. The table is replicated state: it changes only as entries apply, by
//     rules on log indices (never on time), and it is carried in snapshots.
//     Idempotency keys are global, not per client: clients should make them unique (a random UUID per request).
//
// Every replica must run with the same limits (KvStoreOptions): a replica that forgets sooner would apply a retry
// that the others answer from their table, and the replicas would diverge.

import { decodeCommand, type Command, type Condition } from './command.js';
import { IdempotencyTable, type IdempotencyLimits } from './idempotency.js';
import { decodeSnapshot, encodeSnapshot, SnapshotFormatError } from './snapshot.js';
import type { ApplyResult, StoredValue, WriteResult } from './types.js';

export type {
  ApplyResult,
  ConditionFailed,
  DeleteApplied,
  GetApplied,
  InvalidCommand,
  SetApplied,
  StoredValue,
  WriteResult,
} from './types.js';

/**
 * Limits of the idempotency table; an absent or undefined one takes its value from `kvStoreDefaults`. They are part
 * of the replicated state machine: they must be the same on every replica.
 */
export type KvStoreOptions = { readonly [K in keyof IdempotencyLimits]?: IdempotencyLimits[K] | undefined };

export const kvStoreDefaults: IdempotencyLimits = {
  maxIdempotencyKeys: 100_000,
  idempotencyWindowEntries: 1_000_000,
  maxIdempotencyBytes: 64 * 1024 * 1024,
};

export class KvStore {
  readonly #limits: IdempotencyLimits;
  readonly #data = new Map<string, StoredValue>();
  #remembered: IdempotencyTable;
  #lastApplied = 0;
  /** The snapshot being taken, so that restore() can abort it. */
  #view: { aborted: boolean } | null = null;

  constructor(options: KvStoreOptions = {}) {
    this.#limits = {
      maxIdempotencyKeys: options.maxIdempotencyKeys ?? kvStoreDefaults.maxIdempotencyKeys,
      idempotencyWindowEntries: options.idempotencyWindowEntries ?? kvStoreDefaults.idempotencyWindowEntries,
      maxIdempotencyBytes: options.maxIdempotencyBytes ?? kvStoreDefaults.maxIdempotencyBytes,
    };
    for (const [name, value] of Object.entries(this.#limits)) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(`kv: ${name} must be a positive integer, not ${value}`);
      }
    }
    this.#remembered = new IdempotencyTable(this.#limits);
  }

  get lastApplied(): number {
    return this.#lastApplied;
  }

  get size(): number {
    return this.#data.size;
  }

  /** How many results the idempotency table remembers. */
  get rememberedResults(): number {
    return this.#remembered.size;
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
    if (command.op === 'get') return { op: 'get', key: command.key, found: this.get(command.key) };
    const { idempotencyKey } = command;
    if (idempotencyKey === undefined) return this.#write(index, command);
    const first = this.#remembered.lookup(idempotencyKey);
    if (first !== undefined) return { ...first, replayed: true };
    const result = this.#write(index, command);
    this.#remembered.remember(idempotencyKey, result);
    return result;
  }

  #write(index: number, command: Exclude<Command, { op: 'get' }>): WriteResult {
    const { op, key } = command;
    const current = this.get(key);
    if (command.condition !== undefined && !holds(command.condition, current)) {
      return { op, ok: false, reason: 'condition_failed', key, current, index };
    }
    if (command.op === 'set') {
      this.#data.set(key, { value: command.value, index });
      return { op: 'set', ok: true, key, value: command.value, index };
    }
    return { op: 'delete', ok: true, key, deleted: this.#data.delete(key), index };
  }

  /**
   * A point-in-time snapshot of the state (§7), in chunks of `chunkBytes` (the last may be shorter). The chunks are
   * produced lazily, so the caller must consume them before applying anything else (the idempotency table is read
   * live).
   */
  snapshotChunks(chunkBytes?: number): Iterable<Uint8Array> {
    const state = {
      lastApplied: this.#lastApplied,
      keys: Array.from(this.#data.keys()),
      values: Array.from(this.#data.values()),
      remembered: this.#remembered.entries(),
    };
    return encodeSnapshot(state, chunkBytes);
  }

  /**
   * Starts a point-in-time snapshot of the state (§7) that is read while the store goes on applying entries. The
   * keys and their values are listed now: two arrays of references, about 1 ms per 100,000 keys. A value is never
   * changed in place (a write stores a new object), so the listed ones stay as they were, and a write while the
   * snapshot is read costs nothing extra. `chunks()` encodes the snapshot lazily, yielding to the event loop
   * between chunks, so taking a snapshot of a large state never stops the node for long. One at a time; a restore
   * aborts it.
   */
  beginSnapshot(chunkBytes?: number): {
    readonly lastApplied: number;
    chunks(): AsyncGenerator<Uint8Array>;
    /** Ends the snapshot (also when its chunks were never read), letting go of what it listed. */
    release(): void;
  } {
    if (this.#view !== null) throw new Error('kv: a snapshot is already being taken');
    const view = { aborted: false };
    // Both in the map's order, so keys[i] goes with values[i].
    let keys: string[] = Array.from(this.#data.keys());
    let values: StoredValue[] = Array.from(this.#data.values());
    const remembered = [...this.#remembered.entries()];
    const lastApplied = this.#lastApplied;
    this.#view = view;
    let released = false;
    const release = () => {
      released = true;
      keys = [];
      values = [];
      if (this.#view === view) this.#view = null;
    };
    return {
      lastApplied,
      release,
      chunks: async function* () {
        if (released) throw new Error('kv: the snapshot was released before it was read');
        try {
          for (const chunk of encodeSnapshot({ lastApplied, keys, values, remembered }, chunkBytes)) {
            if (view.aborted)
              throw new Error('kv: the snapshot was abandoned: a newer snapshot was restored');
            yield chunk;
            await new Promise<void>((resolve) => setImmediate(resolve));
          }
        } finally {
          release();
        }
      },
    };
  }

  /**
   * Replaces the whole state with a snapshot's (streamed); on SnapshotFormatError the state is unchanged. The
   * restored table is held to this store's limits (a no-op when, as required, every replica has the same limits).
   */
  async restore(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<void> {
    const data = new Map<string, StoredValue>();
    const remembered = new IdempotencyTable(this.#limits);
    const lastApplied = await decodeSnapshot(chunks, {
      onEntry: (key, value) => {
        if (data.has(key)) throw new SnapshotFormatError('a key appears twice in the snapshot');
        data.set(key, value);
      },
      onRemembered: ({ idempotencyKey, result }) => {
        if (remembered.has(idempotencyKey)) {
          throw new SnapshotFormatError('an idempotency key appears twice in the snapshot');
        }
        remembered.remember(idempotencyKey, result);
      },
    });
    remembered.expire(lastApplied);
    if (this.#view !== null) {
      this.#view.aborted = true;
      this.#view = null;
    }
    this.#data.clear();
    for (const [key, value] of data) this.#data.set(key, value);
    this.#remembered = remembered;
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
    this.#remembered.expire(index);
  }
}

/** Whether `condition` holds for a key whose state is `current` (null: absent). */
function holds(condition: Condition, current: StoredValue | null): boolean {
  if (condition.prevValue !== undefined) return current !== null && current.value === condition.prevValue;
  if (condition.prevIndex === 0) return current === null;
  return current !== null && current.index === condition.prevIndex;
}
