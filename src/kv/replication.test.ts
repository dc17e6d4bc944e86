// Replicas that apply the same log agree, whether they applied all of it or restored a snapshot part way (§5.4.3,
// §7), and agree with a plain model of the semantics: conditions, exactly-once retries and the table's limits.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCommand, type Command, type Condition } from './command.js';
import { rememberedBytes } from './idempotency.js';
import { KvStore } from './store.js';
import type { ApplyResult, StoredValue, WriteResult } from './types.js';

type LogEntry = { readonly noop: true } | { readonly data: Uint8Array; readonly command: Command | null };

// Few keys, values and idempotency keys, so that conditions hold and retries happen often.
const key = fc.constantFrom('a', 'b', 'c');
const value = fc.constantFrom('', '1', '2', 'ééé');
const condition: fc.Arbitrary<Condition> = fc.oneof(
  fc.record({ prevValue: value }),
  fc.record({ prevIndex: fc.oneof(fc.constant(0), fc.nat({ max: 40 })) }),
);
const options = fc.record({
  condition: fc.option(condition, { nil: undefined, freq: 2 }),
  idempotencyKey: fc.option(fc.constantFrom('r1', 'r2', 'r3', 'r4', 'r5', 'r6'), { nil: undefined, freq: 2 }),
});
function withOptions(o: { condition: Condition | undefined; idempotencyKey: string | undefined }) {
  return {
    ...(o.condition === undefined ? {} : { condition: o.condition }),
    ...(o.idempotencyKey === undefined ? {} : { idempotencyKey: o.idempotencyKey }),
  };
}
const command: fc.Arbitrary<Command> = fc.oneof(
  {
    arbitrary: fc
      .tuple(key, value, options)
      .map(([k, v, o]) => ({ op: 'set' as const, key: k, value: v, ...withOptions(o) })),
    weight: 4,
  },
  {
    arbitrary: fc.tuple(key, options).map(([k, o]) => ({ op: 'delete' as const, key: k, ...withOptions(o) })),
    weight: 2,
  },
  { arbitrary: key.map((k) => ({ op: 'get' as const, key: k })), weight: 1 },
);
const logEntry: fc.Arbitrary<LogEntry> = fc.oneof(
  { arbitrary: command.map((c) => ({ data: encodeCommand(c), command: c })), weight: 10 },
  { arbitrary: fc.constant({ noop: true as const }), weight: 2 },
  { arbitrary: fc.constant({ data: new Uint8Array([0x91, 0, 0, 0, 0]), command: null }), weight: 1 },
);
const log = fc.array(logEntry, { maxLength: 60 });
const limits = fc.record({
  maxIdempotencyKeys: fc.integer({ min: 1, max: 4 }),
  idempotencyWindowEntries: fc.integer({ min: 1, max: 15 }),
  maxIdempotencyBytes: fc.integer({ min: 60, max: 400 }),
});
type Limits = typeof limits extends fc.Arbitrary<infer T> ? T : never;

/** Applies `entries` as log indices from `kv.lastApplied + 1` on; returns the results (null for a no-op). */
function applyAll(kv: KvStore, entries: readonly LogEntry[]): (ApplyResult | null)[] {
  return entries.map((entry) => {
    const index = kv.lastApplied + 1;
    if ('noop' in entry) {
      kv.skip(index);
      return null;
    }
    return kv.apply(index, entry.data);
  });
}

function snapshotBytes(kv: KvStore, chunkBytes?: number): Buffer {
  return Buffer.concat([...kv.snapshotChunks(chunkBytes)]);
}

function* cut(bytes: Buffer, sizes: readonly number[]): Generator<Uint8Array> {
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = sizes[i % sizes.length] ?? 1;
    yield bytes.subarray(at, at + n);
    at += n;
  }
}

/** The semantics written as plainly as possible: a list scanned from the front, no cleverness. */
class Model {
  readonly data = new Map<string, StoredValue>();
  table: { idempotencyKey: string; result: WriteResult }[] = [];

  constructor(readonly limits: Limits) {}

  step(index: number, entry: LogEntry): ApplyResult | null {
    this.table = this.table.filter((e) => index - e.result.index < this.limits.idempotencyWindowEntries);
    if ('noop' in entry) return null;
    const c = entry.command;
    if (c === null) return { op: 'invalid', error: expect.any(String) as string };
    if (c.op === 'get') return { op: 'get', key: c.key, found: this.data.get(c.key) ?? null };
    const seen = this.table.find((e) => e.idempotencyKey === c.idempotencyKey);
    if (seen !== undefined) return { ...seen.result, replayed: true };
    const result = this.write(index, c);
    if (c.idempotencyKey !== undefined) {
      this.table.push({ idempotencyKey: c.idempotencyKey, result });
      const bytes = () => this.table.reduce((sum, e) => sum + rememberedBytes(e), 0);
      while (
        this.table.length > this.limits.maxIdempotencyKeys ||
        bytes() > this.limits.maxIdempotencyBytes
      ) {
        this.table.shift();
      }
    }
    return result;
  }

  write(index: number, c: Exclude<Command, { op: 'get' }>): WriteResult {
    const current = this.data.get(c.key) ?? null;
    const holds =
      c.condition === undefined ||
      ('prevValue' in c.condition
        ? current?.value === c.condition.prevValue
        : c.condition.prevIndex === (current?.index ?? 0));
    if (!holds) return { op: c.op, ok: false, reason: 'condition_failed', key: c.key, current, index };
    if (c.op === 'set') {
      this.data.set(c.key, { value: c.value, index });
      return { op: 'set', ok: true, key: c.key, value: c.value, index };
    }
    const deleted = this.data.delete(c.key);
    return { op: 'delete', ok: true, key: c.key, deleted, index };
  }
}

describe('replicas of the KV state machine', () => {
  it('agree with the model on every result, and on the final state', () => {
    fc.assert(
      fc.property(limits, log, (l, entries) => {
        const kv = new KvStore(l);
        const model = new Model(l);
        const results = applyAll(kv, entries);
        entries.forEach((entry, i) => expect(results[i]).toEqual(model.step(i + 1, entry)));
        expect(kv.entries()).toEqual([...model.data.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
        expect(kv.rememberedResults).toBe(model.table.length);
      }),
      { numRuns: 500 },
    );
  });

  it('that apply the same log hold identical state, idempotency table included (snapshot bytes equal)', () => {
    fc.assert(
      fc.property(limits, log, (l, entries) => {
        const [x, y] = [new KvStore(l), new KvStore(l)];
        expect(applyAll(x, entries)).toEqual(applyAll(y, entries));
        expect(snapshotBytes(x)).toEqual(snapshotBytes(y));
      }),
      { numRuns: 300 },
    );
  });

  it('agree when one restored a snapshot part way, however its bytes were cut', async () => {
    await fc.assert(
      fc.asyncProperty(
        limits,
        log,
        fc.nat(),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 64 }),
        async (l, entries, at, sizes, chunkBytes) => {
          const split = entries.length === 0 ? 0 : at % (entries.length + 1);
          const leader = new KvStore(l);
          const before = applyAll(leader, entries.slice(0, split));
          expect(before).toHaveLength(split);
          const follower = new KvStore(l);
          await follower.restore(cut(snapshotBytes(leader, chunkBytes), sizes));
          expect(snapshotBytes(follower)).toEqual(snapshotBytes(leader));
          // The rest of the log gives the same answers on both, retries of requests from before the snapshot too.
          const rest = entries.slice(split);
          expect(applyAll(follower, rest)).toEqual(applyAll(leader, rest));
          expect(snapshotBytes(follower)).toEqual(snapshotBytes(leader));
        },
      ),
      { numRuns: 300 },
    );
  });
});
