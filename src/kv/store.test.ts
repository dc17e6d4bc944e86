import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeCommand, encodeCommand, type Command } from './command.js';
import { KvStore } from './store.js';

describe('command encoding', () => {
  it('round-trips every command, including empty and non-ASCII strings', () => {
    const command = fc.oneof(
      fc.record({ op: fc.constant('set' as const), key: fc.string(), value: fc.string() }),
      fc.record({ op: fc.constant('delete' as const), key: fc.string() }),
      fc.record({ op: fc.constant('get' as const), key: fc.string() }),
    );
    fc.assert(
      fc.property(command, (c: Command) => {
        expect(decodeCommand(encodeCommand(c))).toEqual(c);
      }),
    );
  });

  it('rejects truncated and unknown commands', () => {
    expect(() => decodeCommand(new Uint8Array([1, 0]))).toThrow(/too short/);
    expect(() => decodeCommand(new Uint8Array([1, 0, 0, 0, 9, 65]))).toThrow(/overruns/);
    expect(() => decodeCommand(new Uint8Array([9, 0, 0, 0, 0]))).toThrow(/unknown op 9/);
  });
});

describe('KvStore', () => {
  it('remembers for each key the index that last changed it', () => {
    const kv = new KvStore();
    expect(kv.apply(1, encodeCommand({ op: 'set', key: 'a', value: '1' }))).toEqual({
      op: 'set',
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
    expect(kv.apply(2, encodeCommand({ op: 'delete', key: 'a' }))).toMatchObject({ deleted: true, index: 2 });
    expect(kv.apply(3, encodeCommand({ op: 'delete', key: 'a' }))).toMatchObject({
      deleted: false,
      index: 3,
    });
    expect(kv.get('a')).toBeNull();
  });

  it('refuses to apply out of order (entries are applied in log order, Figure 2)', () => {
    const kv = new KvStore();
    expect(() => kv.apply(2, encodeCommand({ op: 'get', key: 'a' }))).toThrow(/after 0/);
  });

  it('rejects an undecodable command identically on every replica instead of crashing', () => {
    const kv = new KvStore();
    expect(kv.apply(1, new Uint8Array([7]))).toMatchObject({ op: 'invalid' });
    expect(kv.lastApplied).toBe(1);
  });

  it('is deterministic: the same log gives the same state', () => {
    const ops = fc.array(
      fc.oneof(
        fc.record({
          op: fc.constant('set' as const),
          key: fc.constantFrom('a', 'b', 'c'),
          value: fc.string(),
        }),
        fc.record({ op: fc.constant('delete' as const), key: fc.constantFrom('a', 'b', 'c') }),
      ),
    );
    fc.assert(
      fc.property(ops, (commands) => {
        const [x, y] = [new KvStore(), new KvStore()];
        commands.forEach((c, i) => {
          x.apply(i + 1, encodeCommand(c));
          y.apply(i + 1, encodeCommand(c));
        });
        expect(x.entries()).toEqual(y.entries());
      }),
    );
  });
});
