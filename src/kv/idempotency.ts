// The table of remembered results that makes client retries exactly-once (thesis §6.3). Internal to src/kv.
//
// It is part of the replicated state: every replica changes it only while applying entries, and forgets entries
// by rules that look only at log indices and at the entries themselves — never at time — so all replicas hold the
// same table after the same log. It is bounded three ways (STYLE.md 7), and always forgets the oldest first:
//   - an entry expires once the log is `idempotencyWindowEntries` past the index of the entry that produced it;
//   - at most `maxIdempotencyKeys` entries;
//   - at most `maxIdempotencyBytes`, counting each entry as `rememberedBytes` of it.

import type { WriteResult } from './types.js';

export interface IdempotencyLimits {
  /** Most remembered results; when full, the oldest is forgotten first. */
  readonly maxIdempotencyKeys: number;
  /** A result is forgotten once the log is this many entries past the index of the entry that produced it. */
  readonly idempotencyWindowEntries: number;
  /** Most bytes of remembered results, each counted by `rememberedBytes`; the oldest is forgotten first. */
  readonly maxIdempotencyBytes: number;
}

export interface Remembered {
  readonly idempotencyKey: string;
  /** The result of the first entry that used the key; `result.index` is that entry's index. */
  readonly result: WriteResult;
}

interface Entry extends Remembered {
  readonly bytes: number;
}

/** Fixed cost counted per entry, for its indices, flags and bookkeeping. */
const entryOverheadBytes = 64;

/** What an entry counts against `maxIdempotencyBytes`: its strings in UTF-8 plus a fixed overhead. */
export function rememberedBytes({ idempotencyKey, result }: Remembered): number {
  let bytes = entryOverheadBytes + Buffer.byteLength(idempotencyKey) + Buffer.byteLength(result.key);
  if (result.ok && result.op === 'set') bytes += Buffer.byteLength(result.value);
  if (!result.ok && result.current !== null) bytes += Buffer.byteLength(result.current.value);
  return bytes;
}

export class IdempotencyTable {
  readonly #limits: IdempotencyLimits;
  readonly #byKey = new Map<string, Entry>();
  // Invariant: #queue[#head..] holds exactly the entries of #byKey, by increasing result.index (oldest first), so
  // forgetting the oldest is O(1). Slots before #head are spent and are dropped now and then.
  #queue: (Entry | undefined)[] = [];
  #head = 0;
  // Invariant: #bytes is the sum of `bytes` over the entries, and #bytes <= maxIdempotencyBytes.
  #bytes = 0;

  constructor(limits: IdempotencyLimits) {
    this.#limits = limits;
  }

  get size(): number {
    return this.#byKey.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  has(idempotencyKey: string): boolean {
    return this.#byKey.has(idempotencyKey);
  }

  lookup(idempotencyKey: string): WriteResult | undefined {
    return this.#byKey.get(idempotencyKey)?.result;
  }

  /** Forgets the entries that have expired by the time the entry at `index` applies. */
  expire(index: number): void {
    const window = this.#limits.idempotencyWindowEntries;
    for (let oldest = this.#oldest(); oldest !== undefined; oldest = this.#oldest()) {
      if (oldest.result.index + window > index) break;
      this.#forgetOldest();
    }
  }

  /**
   * Remembers the result of the entry at `result.index`, which must be later than every remembered entry and use a
   * new key, then forgets the oldest entries until the table is within its limits again. An entry larger than
   * `maxIdempotencyBytes` on its own is therefore not kept at all.
   */
  remember(idempotencyKey: string, result: WriteResult): void {
    if (this.#byKey.has(idempotencyKey)) throw new Error(`kv: idempotency key is already remembered`);
    const newest = this.#queue[this.#queue.length - 1];
    if (newest !== undefined && newest.result.index >= result.index) {
      throw new Error(`kv: remembering index ${result.index} after index ${newest.result.index}`);
    }
    const entry: Entry = { idempotencyKey, result, bytes: rememberedBytes({ idempotencyKey, result }) };
    this.#byKey.set(idempotencyKey, entry);
    this.#queue.push(entry);
    this.#bytes += entry.bytes;
    while (
      this.#byKey.size > this.#limits.maxIdempotencyKeys ||
      this.#bytes > this.#limits.maxIdempotencyBytes
    ) {
      this.#forgetOldest();
    }
  }

  /** The entries, oldest first. */
  *entries(): Generator<Remembered> {
    for (let i = this.#head; i < this.#queue.length; i++) {
      const entry = this.#queue[i];
      if (entry !== undefined) yield { idempotencyKey: entry.idempotencyKey, result: entry.result };
    }
  }

  #oldest(): Entry | undefined {
    return this.#queue[this.#head];
  }

  #forgetOldest(): void {
    const oldest = this.#queue[this.#head];
    if (oldest === undefined) throw new Error('kv: forgetting from an empty idempotency table');
    this.#queue[this.#head] = undefined;
    this.#head++;
    this.#byKey.delete(oldest.idempotencyKey);
    this.#bytes -= oldest.bytes;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }
}
