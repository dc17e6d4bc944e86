import { describe, expect, it } from 'vitest';
import { encodeCommand, type Command } from './command.js';
import { KvStore, type KvStoreOptions } from './store.js';

/** A store and a cursor over its log: `run` applies the next entry, `noop` skips one. */
function replica(options: KvStoreOptions = {}) {
  const kv = new KvStore(options);
  return {
    kv,
    run: (command: Command) => kv.apply(kv.lastApplied + 1, encodeCommand(command)),
    noop: (n = 1) => {
      for (let i = 0; i < n; i++) kv.skip(kv.lastApplied + 1);
    },
  };
}

describe('KvStore', () => {
  it('remembers for each key the index that last changed it', () => {
    const kv = new KvStore();
    expect(kv.apply(1, encodeCommand({ op: 'set', key: 'a', value: '1' }))).toEqual({
      op: 'set',
      ok: true,
      key: 'a',
      value: '1',
      index: 1,
    });
    kv.skip(2);
    kv.apply(3, encodeCommand({ op: 'set', key: 'a', value: '2' }));
    expect(kv.get('a')).toEqual({ value: '2', index: 3 });
    expect(kv.apply(4, encodeCommand({ op: 'get', key: 'a' }))).toEqual({
      op: 'get',
      key: 'a',
      found: { value: '2', index: 3 },
    });
  });

  it('reports whether a delete removed anything', () => {
    const kv = new KvStore();
    kv.apply(1, encodeCommand({ op: 'set', key: 'a', value: '1' }));
    expect(kv.apply(2, encodeCommand({ op: 'delete', key: 'a' }))).toEqual({
      op: 'delete',
      ok: true,
      key: 'a',
      deleted: true,
      index: 2,
    });
    expect(kv.apply(3, encodeCommand({ op: 'delete', key: 'a' }))).toMatchObject({
      ok: true,
      deleted: false,
      index: 3,
    });
    expect(kv.get('a')).toBeNull();
  });

  it('refuses to apply out of order (entries are applied in log order, Figure 2)', () => {
    const kv = new KvStore();
    expect(() => kv.apply(2, encodeCommand({ op: 'get', key: 'a' }))).toThrow(/after 0/);
    expect(() => kv.skip(2)).toThrow(/after 0/);
  });

  it('rejects an undecodable command identically on every replica instead of crashing', () => {
    const kv = new KvStore();
    expect(kv.apply(1, new Uint8Array([7]))).toMatchObject({ op: 'invalid' });
    expect(kv.lastApplied).toBe(1);
  });

  it('refuses limits that are not positive integers', () => {
    expect(() => new KvStore({ maxIdempotencyKeys: 0 })).toThrow(/maxIdempotencyKeys/);
    expect(() => new KvStore({ idempotencyWindowEntries: 1.5 })).toThrow(/idempotencyWindowEntries/);
    expect(() => new KvStore({ maxIdempotencyBytes: -1 })).toThrow(/maxIdempotencyBytes/);
  });
});

describe('compare-and-set', () => {
  it('prevValue: a set applies when the key holds exactly that value', () => {
    const { kv, run } = replica();
    run({ op: 'set', key: 'a', value: '1' });
    expect(run({ op: 'set', key: 'a', value: '2', condition: { prevValue: '1' } })).toEqual({
      op: 'set',
      ok: true,
      key: 'a',
      value: '2',
      index: 2,
    });
    expect(kv.get('a')).toEqual({ value: '2', index: 2 });
  });

  it('prevValue: a mismatch changes nothing and answers the current value and index', () => {
    const { kv, run } = replica();
    run({ op: 'set', key: 'a', value: '1' });
    expect(run({ op: 'set', key: 'a', value: '2', condition: { prevValue: '0' } })).toEqual({
      op: 'set',
      ok: false,
      reason: 'condition_failed',
      key: 'a',
      current: { value: '1', index: 1 },
      index: 2,
    });
    expect(kv.get('a')).toEqual({ value: '1', index: 1 });
    expect(kv.lastApplied).toBe(2);
  });

  it('prevValue: an absent key never matches, not even the empty string', () => {
    const { kv, run } = replica();
    expect(run({ op: 'set', key: 'a', value: '1', condition: { prevValue: '' } })).toMatchObject({
      ok: false,
      current: null,
    });
    expect(kv.get('a')).toBeNull();
  });

  it('prevIndex: a set applies when the key was last changed at that index', () => {
    const { kv, run, noop } = replica();
    noop(2);
    run({ op: 'set', key: 'a', value: '1' }); // index 3
    expect(run({ op: 'set', key: 'a', value: '2', condition: { prevIndex: 3 } })).toMatchObject({
      ok: true,
      index: 4,
    });
    expect(run({ op: 'set', key: 'a', value: '3', condition: { prevIndex: 3 } })).toEqual({
      op: 'set',
      ok: false,
      reason: 'condition_failed',
      key: 'a',
      current: { value: '2', index: 4 },
      index: 5,
    });
    expect(kv.get('a')).toEqual({ value: '2', index: 4 });
  });

  it('prevIndex 0: create only if absent', () => {
    const { kv, run } = replica();
    expect(run({ op: 'set', key: 'a', value: '1', condition: { prevIndex: 0 } })).toMatchObject({ ok: true });
    expect(run({ op: 'set', key: 'a', value: '2', condition: { prevIndex: 0 } })).toMatchObject({
      ok: false,
      current: { value: '1', index: 1 },
    });
    expect(kv.get('a')).toEqual({ value: '1', index: 1 });
  });

  it('prevIndex on an absent key fails unless it is 0', () => {
    const { run } = replica();
    expect(run({ op: 'set', key: 'a', value: '1', condition: { prevIndex: 1 } })).toMatchObject({
      ok: false,
      current: null,
    });
  });

  it('delete with prevValue: removes only the expected value', () => {
    const { kv, run } = replica();
    run({ op: 'set', key: 'a', value: '1' });
    expect(run({ op: 'delete', key: 'a', condition: { prevValue: '2' } })).toEqual({
      op: 'delete',
      ok: false,
      reason: 'condition_failed',
      key: 'a',
      current: { value: '1', index: 1 },
      index: 2,
    });
    expect(kv.get('a')).toEqual({ value: '1', index: 1 });
    expect(run({ op: 'delete', key: 'a', condition: { prevValue: '1' } })).toEqual({
      op: 'delete',
      ok: true,
      key: 'a',
      deleted: true,
      index: 3,
    });
    expect(kv.get('a')).toBeNull();
  });

  it('delete with prevIndex: removes only the expected version; 0 holds only for an absent key', () => {
    const { kv, run } = replica();
    run({ op: 'set', key: 'a', value: '1' });
    expect(run({ op: 'delete', key: 'a', condition: { prevIndex: 0 } })).toMatchObject({ ok: false });
    expect(run({ op: 'delete', key: 'a', condition: { prevIndex: 2 } })).toMatchObject({ ok: false });
    expect(run({ op: 'delete', key: 'a', condition: { prevIndex: 1 } })).toMatchObject({
      ok: true,
      deleted: true,
    });
    expect(run({ op: 'delete', key: 'a', condition: { prevIndex: 0 } })).toMatchObject({
      ok: true,
      deleted: false,
    });
    expect(kv.size).toBe(0);
  });
});

describe('exactly-once retries (thesis §6.3)', () => {
  it('a retry answers the first result, marked replayed, and applies nothing again', () => {
    const { kv, run } = replica();
    const first = run({ op: 'set', key: 'a', value: '1', idempotencyKey: 'req-1' });
    expect(first).toEqual({ op: 'set', ok: true, key: 'a', value: '1', index: 1 });
    run({ op: 'set', key: 'a', value: '2' }); // another client writes in between
    expect(run({ op: 'set', key: 'a', value: '1', idempotencyKey: 'req-1' })).toEqual({
      ...first,
      replayed: true,
    });
    expect(kv.get('a')).toEqual({ value: '2', index: 2 });
    expect(kv.lastApplied).toBe(3);
    expect(kv.rememberedResults).toBe(1);
  });

  it('a retry of a delete does not delete the key written since', () => {
    const { kv, run } = replica();
    run({ op: 'set', key: 'a', value: '1' });
    run({ op: 'delete', key: 'a', idempotencyKey: 'd' });
    run({ op: 'set', key: 'a', value: '2' });
    expect(run({ op: 'delete', key: 'a', idempotencyKey: 'd' })).toEqual({
      op: 'delete',
      ok: true,
      key: 'a',
      deleted: true,
      index: 2,
      replayed: true,
    });
    expect(kv.get('a')).toEqual({ value: '2', index: 3 });
  });

  it('remembers a failed condition: the retry fails the same way even though the condition now holds', () => {
    const { kv, run } = replica();
    const failed = run({ op: 'set', key: 'a', value: '1', condition: { prevIndex: 5 }, idempotencyKey: 'c' });
    expect(failed).toMatchObject({ ok: false, current: null, index: 1 });
    run({ op: 'set', key: 'b', value: 'x' });
    run({ op: 'set', key: 'b', value: 'y' });
    run({ op: 'set', key: 'a', value: '0' }); // index 4
    run({ op: 'set', key: 'a', value: '0' }); // index 5: prevIndex 5 would hold now
    expect(
      run({ op: 'set', key: 'a', value: '1', condition: { prevIndex: 5 }, idempotencyKey: 'c' }),
    ).toEqual({
      ...failed,
      replayed: true,
    });
    expect(kv.get('a')).toEqual({ value: '0', index: 5 });
  });

  it('answers the first result even when the retry says something else: the key names the request', () => {
    const { kv, run } = replica();
    run({ op: 'set', key: 'a', value: '1', idempotencyKey: 'k' });
    expect(run({ op: 'delete', key: 'b', idempotencyKey: 'k' })).toEqual({
      op: 'set',
      ok: true,
      key: 'a',
      value: '1',
      index: 1,
      replayed: true,
    });
    run({ op: 'set', key: 'b', value: '2' });
    expect(run({ op: 'delete', key: 'b', idempotencyKey: 'k' })).toMatchObject({ op: 'set', replayed: true });
    expect(kv.get('b')).toEqual({ value: '2', index: 3 });
  });

  it('keys are compared exactly: another key is another request', () => {
    const { kv, run } = replica();
    run({ op: 'set', key: 'a', value: '1', idempotencyKey: 'k' });
    expect(run({ op: 'set', key: 'a', value: '2', idempotencyKey: 'K' })).toEqual({
      op: 'set',
      ok: true,
      key: 'a',
      value: '2',
      index: 2,
    });
    expect(kv.rememberedResults).toBe(2);
  });

  it('a retry past the window applies again, and is remembered anew (no-ops count: expiry is by index)', () => {
    const { kv, run, noop } = replica({ idempotencyWindowEntries: 3 });
    run({ op: 'set', key: 'a', value: '1', idempotencyKey: 'k' }); // index 1: remembered through index 3
    noop();
    expect(run({ op: 'set', key: 'a', value: '9', idempotencyKey: 'k' })).toMatchObject({
      index: 1,
      replayed: true,
    });
    expect(kv.rememberedResults).toBe(1);
    noop(); // index 4 = 1 + 3: expired
    expect(kv.rememberedResults).toBe(0);
    expect(run({ op: 'set', key: 'a', value: '9', idempotencyKey: 'k' })).toEqual({
      op: 'set',
      ok: true,
      key: 'a',
      value: '9',
      index: 5,
    });
    expect(run({ op: 'set', key: 'a', value: '1', idempotencyKey: 'k' })).toMatchObject({
      index: 5,
      replayed: true,
    });
  });

  it('when full, forgets the oldest first', () => {
    const { kv, run } = replica({ maxIdempotencyKeys: 2 });
    run({ op: 'set', key: 'a', value: '1', idempotencyKey: 'k1' });
    run({ op: 'set', key: 'b', value: '1', idempotencyKey: 'k2' });
    run({ op: 'set', key: 'c', value: '1', idempotencyKey: 'k3' }); // forgets k1
    expect(kv.rememberedResults).toBe(2);
    expect(run({ op: 'set', key: 'b', value: '2', idempotencyKey: 'k2' })).toMatchObject({ replayed: true });
    expect(run({ op: 'set', key: 'c', value: '2', idempotencyKey: 'k3' })).toMatchObject({ replayed: true });
    // k1 applies again (index 6), which forgets k2 (index 2), the oldest.
    expect(run({ op: 'set', key: 'a', value: '2', idempotencyKey: 'k1' })).toMatchObject({
      ok: true,
      index: 6,
    });
    expect(run({ op: 'set', key: 'b', value: '3', idempotencyKey: 'k2' })).toMatchObject({
      ok: true,
      index: 7,
    });
    expect(kv.get('a')).toEqual({ value: '2', index: 6 });
  });

  it('holds the remembered results within maxIdempotencyBytes, forgetting the oldest first', () => {
    // Each entry counts 64 + 2 (idempotency key) + 1 (key) + 100 (value) = 167 bytes.
    const { kv, run } = replica({ maxIdempotencyBytes: 3 * 167 });
    for (const k of ['k1', 'k2', 'k3'])
      run({ op: 'set', key: 'a', value: 'v'.repeat(100), idempotencyKey: k });
    expect(kv.rememberedResults).toBe(3);
    run({ op: 'set', key: 'a', value: 'v'.repeat(101), idempotencyKey: 'k4' });
    expect(kv.rememberedResults).toBe(2); // k1 and k2 forgotten to make room
    expect(run({ op: 'set', key: 'a', value: '', idempotencyKey: 'k3' })).toMatchObject({ replayed: true });
    expect(run({ op: 'set', key: 'a', value: '', idempotencyKey: 'k2' })).toMatchObject({
      ok: true,
      index: 6,
    });
  });

  it('does not remember a result larger than the whole byte budget', () => {
    const { kv, run } = replica({ maxIdempotencyBytes: 100 });
    run({ op: 'set', key: 'a', value: 'small', idempotencyKey: 'k1' });
    run({ op: 'set', key: 'a', value: 'v'.repeat(100), idempotencyKey: 'k2' });
    expect(kv.rememberedResults).toBe(0);
    expect(kv.get('a')?.value).toBe('v'.repeat(100)); // the write itself applied
  });

  it('reads and undecodable entries are never remembered', () => {
    const { kv } = replica();
    kv.apply(1, encodeCommand({ op: 'get', key: 'a' }));
    kv.apply(2, Buffer.from([0x11, 0, 0, 0, 0, 0]));
    expect(kv.rememberedResults).toBe(0);
  });
});
