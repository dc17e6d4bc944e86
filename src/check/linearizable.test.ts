import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkHistory,
  formatOperation,
  HistoryError,
  HistoryRecorder,
  type Operation,
  type Value,
} from './index.js';

// Builders. Times are [call, return]; `ret` null means the outcome is unknown.
type NoId<T> = T extends unknown ? Omit<T, 'id'> : never;
type Op = NoId<Operation>;

const read = (process: number, call: number, ret: number, output: Value, key = 'x'): Op => ({
  kind: 'read',
  process,
  key,
  call,
  return: ret,
  status: 'ok',
  output,
});
const write = (process: number, call: number, ret: number, value: string, key = 'x'): Op => ({
  kind: 'write',
  process,
  key,
  call,
  return: ret,
  status: 'ok',
  input: value,
});
const cas = (
  process: number,
  call: number,
  ret: number,
  from: Value,
  to: string,
  ok: boolean,
  key = 'x',
): Op => ({
  kind: 'cas',
  process,
  key,
  call,
  return: ret,
  status: 'ok',
  input: { from, to },
  output: ok,
});
const del = (process: number, call: number, ret: number, key = 'x'): Op => ({
  kind: 'delete',
  process,
  key,
  call,
  return: ret,
  status: 'ok',
});
/** The same operation, with an unknown outcome (no return; output unconstrained). */
const info = (op: Op): Op => {
  const { output: _output, ...rest } = op;
  return { ...rest, status: 'info', return: null } as Op;
};
const failed = (op: Op): Op => ({ ...op, status: 'fail' });

const history = (...ops: Op[]): Operation[] => ops.map((op, id) => ({ ...op, id }) as Operation);
const check = (...ops: Op[]) => checkHistory(history(...ops));

describe('checkHistory', () => {
  it('accepts the empty history', () => {
    expect(checkHistory([])).toEqual({ ok: true });
  });

  describe('sequential histories', () => {
    it('accepts a legal sequence of every kind of operation', () => {
      expect(
        check(
          read(0, 0, 1, null),
          write(0, 2, 3, 'a'),
          read(1, 4, 5, 'a'),
          cas(0, 6, 7, 'a', 'b', true),
          cas(1, 8, 9, 'a', 'c', false),
          read(0, 10, 11, 'b'),
          del(1, 12, 13),
          read(0, 14, 15, null),
          cas(1, 16, 17, null, 'd', true),
          read(0, 18, 19, 'd'),
        ).ok,
      ).toBe(true);
    });

    it('rejects a read of a value never written', () => {
      expect(check(read(0, 0, 1, 'a')).ok).toBe(false);
    });
  });

  describe('concurrent histories', () => {
    it('lets a read concurrent with a write see the old or the new value', () => {
      expect(
        check(write(0, 0, 1, 'a'), write(1, 2, 10, 'b'), read(2, 3, 4, 'a'), read(3, 5, 6, 'b')).ok,
      ).toBe(true);
      expect(
        check(write(0, 0, 1, 'a'), write(1, 2, 10, 'b'), read(2, 3, 4, 'b'), read(3, 11, 12, 'b')).ok,
      ).toBe(true);
    });

    it('orders concurrent writes either way', () => {
      expect(check(write(0, 0, 5, 'a'), write(1, 1, 6, 'b'), read(2, 7, 8, 'a')).ok).toBe(true);
      expect(check(write(0, 0, 5, 'a'), write(1, 1, 6, 'b'), read(2, 7, 8, 'b')).ok).toBe(true);
    });

    it('rejects a new value then an old one (two reads, both concurrent with the write)', () => {
      expect(
        check(write(0, 0, 1, 'a'), write(1, 2, 10, 'b'), read(2, 3, 4, 'b'), read(3, 5, 6, 'a')).ok,
      ).toBe(false);
    });

    it('treats operations that touch at an instant as concurrent', () => {
      expect(check(write(0, 0, 5, 'a'), read(1, 5, 6, null)).ok).toBe(true);
    });
  });

  it('catches a stale read (an old value after a later write completed)', () => {
    const result = check(write(0, 0, 1, 'a'), write(1, 2, 3, 'b'), read(2, 4, 5, 'a'));
    expect(result.ok).toBe(false);
    if (result.ok !== false) return;
    expect(result.key).toBe('x');
    expect(result.violation.blocked.id).toBe(2);
    expect(result.violation.expected).toBe('b');
    expect(result.violation.illegal).toBe(true);
    expect(result.violation.prefix.map((p) => p.op.id)).toEqual([0, 1]);
  });

  it('catches a lost write', () => {
    expect(check(write(0, 0, 1, 'a'), read(1, 2, 3, null)).ok).toBe(false);
    // Two acknowledged writes; later reads disagree about which one won.
    expect(check(write(0, 0, 2, 'a'), write(1, 1, 3, 'b'), read(2, 4, 5, 'b'), read(3, 6, 7, 'a')).ok).toBe(
      false,
    );
  });

  describe('compare-and-set', () => {
    it('accepts a successful cas from the current value', () => {
      expect(check(write(0, 0, 1, 'a'), cas(1, 2, 3, 'a', 'b', true), read(2, 4, 5, 'b')).ok).toBe(true);
    });

    it('rejects a successful cas whose from does not match', () => {
      const result = check(write(0, 0, 1, 'a'), cas(1, 2, 3, 'z', 'b', true));
      expect(result.ok).toBe(false);
      if (result.ok === false) expect(result.explanation).toContain('must have held "z"');
    });

    it('rejects a cas from absent once the key exists', () => {
      expect(check(write(0, 0, 1, 'a'), cas(1, 2, 3, null, 'b', true)).ok).toBe(false);
      expect(check(cas(1, 0, 1, null, 'b', true), read(0, 2, 3, 'b')).ok).toBe(true);
    });

    it('takes a failed cas to mean the value differed', () => {
      expect(check(write(0, 0, 1, 'a'), cas(1, 2, 3, 'z', 'b', false), read(2, 4, 5, 'a')).ok).toBe(true);
      const result = check(write(0, 0, 1, 'a'), cas(1, 2, 3, 'a', 'b', false));
      expect(result.ok).toBe(false);
      if (result.ok === false) expect(result.explanation).toContain('must not have held "a"');
    });

    it('lets a failed cas fall after a concurrent write that changed the value', () => {
      expect(
        check(write(0, 0, 1, 'a'), write(1, 2, 10, 'b'), cas(2, 3, 4, 'a', 'c', false), read(3, 11, 12, 'b'))
          .ok,
      ).toBe(true);
    });

    it('does not let a failed cas change the value', () => {
      expect(check(write(0, 0, 1, 'a'), cas(1, 2, 3, 'z', 'b', false), read(2, 4, 5, 'b')).ok).toBe(false);
    });
  });

  describe('delete', () => {
    it('makes the key absent', () => {
      expect(check(write(0, 0, 1, 'a'), del(1, 2, 3), read(2, 4, 5, null)).ok).toBe(true);
      expect(check(del(1, 0, 1), read(2, 2, 3, null)).ok).toBe(true);
    });

    it('rejects reading the old value after a delete completed', () => {
      expect(check(write(0, 0, 1, 'a'), del(1, 2, 3), read(2, 4, 5, 'a')).ok).toBe(false);
    });

    it('may be ordered either way with a concurrent write', () => {
      expect(check(write(0, 0, 5, 'a'), del(1, 1, 6), read(2, 7, 8, 'a')).ok).toBe(true);
      expect(check(write(0, 0, 5, 'a'), del(1, 1, 6), read(2, 7, 8, null)).ok).toBe(true);
    });
  });

  describe('unknown outcomes', () => {
    it('lets an unknown write take effect long after its call', () => {
      expect(
        check(write(0, 0, 1, 'a'), info(write(1, 2, 0, 'b')), read(2, 3, 4, 'a'), read(3, 50, 51, 'b')).ok,
      ).toBe(true);
    });

    it('lets an unknown write never take effect', () => {
      expect(
        check(write(0, 0, 1, 'a'), info(write(1, 2, 0, 'b')), read(2, 3, 4, 'a'), read(3, 50, 51, 'a')).ok,
      ).toBe(true);
    });

    it('accepts Infinity as an unknown return time', () => {
      const op = { ...write(1, 2, 0, 'b'), return: Infinity, status: 'info' } as Op;
      expect(check(write(0, 0, 1, 'a'), op, read(3, 50, 51, 'b')).ok).toBe(true);
    });

    it('does not let an unknown write take effect before its call', () => {
      const result = check(write(0, 0, 1, 'a'), read(1, 2, 3, 'b'), info(write(2, 5, 0, 'b')));
      expect(result.ok).toBe(false);
      if (result.ok === false) expect(result.violation.blocked.id).toBe(1);
    });

    it('does not let an unknown write take effect twice', () => {
      expect(
        check(info(write(0, 0, 0, 'b')), read(1, 2, 3, 'b'), write(2, 4, 5, 'a'), read(3, 6, 7, 'b')).ok,
      ).toBe(false);
    });

    it('applies an unknown cas only if its comparison holds', () => {
      expect(check(write(0, 0, 1, 'a'), info(cas(1, 2, 0, 'a', 'b', true)), read(2, 3, 4, 'b')).ok).toBe(
        true,
      );
      expect(check(write(0, 0, 1, 'a'), info(cas(1, 2, 0, 'z', 'b', true)), read(2, 3, 4, 'b')).ok).toBe(
        false,
      );
    });

    it('applies an unknown delete late or never', () => {
      expect(check(write(0, 0, 1, 'a'), info(del(1, 2, 0)), read(2, 3, 4, 'a'), read(3, 5, 6, null)).ok).toBe(
        true,
      );
      expect(check(write(0, 0, 1, 'a'), info(del(1, 2, 0)), read(2, 3, 4, 'a'), read(3, 5, 6, 'a')).ok).toBe(
        true,
      );
    });

    it('uses unknown operations in a chain', () => {
      // Only the unknown write of "a" and then the unknown cas "a" -> "b" explain the read.
      expect(
        check(info(write(0, 0, 0, 'a')), info(cas(1, 1, 0, 'a', 'b', true)), read(2, 2, 3, 'b')).ok,
      ).toBe(true);
      expect(check(info(cas(1, 1, 0, 'a', 'b', true)), read(2, 2, 3, 'b')).ok).toBe(false);
    });

    it('uses each of two identical unknown writes', () => {
      const twins = [info(write(0, 0, 0, 'a')), info(write(1, 1, 0, 'a'))];
      const reads = [read(2, 2, 3, 'a'), write(3, 4, 5, 'b'), read(4, 6, 7, 'a')];
      expect(check(...twins, ...reads).ok).toBe(true);
      expect(check(twins[0]!, ...reads).ok).toBe(false);
    });

    it('ignores an unknown read and a failed operation', () => {
      expect(check(info(read(0, 0, 0, 'nonsense'))).ok).toBe(true);
      expect(check(failed(write(0, 0, 1, 'a')), read(1, 2, 3, null)).ok).toBe(true);
      expect(check(failed(write(0, 0, 1, 'a')), read(1, 2, 3, 'a')).ok).toBe(false);
    });
  });

  describe('keys', () => {
    it('checks each key on its own', () => {
      expect(check(write(0, 0, 1, 'a', 'x'), read(1, 2, 3, null, 'y'), read(1, 4, 5, 'a', 'x')).ok).toBe(
        true,
      );
      const result = check(write(0, 0, 1, 'a', 'x'), read(1, 2, 3, 'a', 'y'), read(2, 4, 5, 'a', 'x'));
      expect(result.ok).toBe(false);
      if (result.ok === false) expect(result.key).toBe('y');
    });
  });

  it('explains a violation: the key, the prefix, the operation that cannot be placed, the expected value', () => {
    const ops = history(write(7, 0, 1, 'a', 'k1'), write(8, 2, 3, 'b', 'k1'), read(9, 4, 5, 'a', 'k1'));
    const result = checkHistory(ops);
    expect(result.ok).toBe(false);
    if (result.ok !== false) return;
    const text = result.explanation;
    expect(text).toContain('Key "k1"');
    expect(text).toContain(formatOperation(ops[0]!));
    expect(text).toContain(formatOperation(ops[1]!));
    expect(text).toContain('#2 process 9: read -> "a" [t=4..5]');
    expect(text).toContain('the model expected "b"');
    expect(text.split('\n').length).toBeLessThan(15);
  });

  it('lists the pending operations in an explanation', () => {
    const result = check(write(0, 0, 1, 'a'), cas(1, 2, 20, 'z', 'b', true), read(2, 3, 4, 'c'));
    expect(result.ok).toBe(false);
    if (result.ok !== false) return;
    expect(result.violation.concurrent.map((o) => o.id)).toEqual([1]);
    expect(result.explanation).toContain('#1 process 1: cas "z" -> "b" ok [t=2..20]');
  });

  describe('budget', () => {
    // 24 concurrent writes, then a read of a value none of them wrote: the search visits every subset.
    const hard = history(
      ...Array.from({ length: 24 }, (_, i) => write(i, 0, 100, `v${i}`)),
      read(99, 101, 102, 'never written'),
    );

    it('returns unknown when the step budget runs out', () => {
      const result = checkHistory(hard, { maxSteps: 10_000 });
      expect(result.ok).toBe('unknown');
      if (result.ok === 'unknown') {
        expect(result.key).toBe('x');
        expect(result.steps).toBe(10_000);
        expect(result.explanation).toContain('step budget');
      }
    });

    it('returns unknown when the time budget runs out', () => {
      let t = 0;
      const result = checkHistory(hard, { timeoutMs: 5, now: () => t++ });
      expect(result.ok).toBe('unknown');
      if (result.ok === 'unknown') expect(result.explanation).toContain('time budget');
    });

    it('gives a verdict when the budget suffices', () => {
      const small = history(
        ...Array.from({ length: 6 }, (_, i) => write(i, 0, 100, `v${i}`)),
        read(9, 101, 102, 'z'),
      );
      expect(checkHistory(small, { maxSteps: 1_000_000 }).ok).toBe(false);
    });
  });

  describe('malformed histories', () => {
    it('throws HistoryError', () => {
      const noOutput = { ...read(0, 0, 1, null), output: undefined } as unknown as Op;
      expect(() => check(noOutput)).toThrow(HistoryError);
      expect(() => check(write(0, 5, 1, 'a'))).toThrow(/before its call/);
      expect(() =>
        checkHistory([
          { ...write(0, 0, 1, 'a'), id: 1 } as Operation,
          { ...del(0, 2, 3), id: 1 } as Operation,
        ]),
      ).toThrow(/duplicate/);
    });
  });

  it('handles thousands of operations', () => {
    // 4000 operations on one key, up to ~4 overlapping, executed on a register in order.
    const n = 4000;
    const ops: Op[] = [];
    let value: Value = null;
    for (let i = 0; i < n; i++) {
      const call = i * 10 - (i % 7) * 5;
      const ret = i * 10 + (i % 5) * 6;
      switch (i % 4) {
        case 0:
          value = `v${i}`;
          ops.push(write(i % 8, call, ret, value));
          break;
        case 1:
          ops.push(cas(i % 8, call, ret, value, `c${i}`, true));
          value = `c${i}`;
          break;
        case 2:
          ops.push(cas(i % 8, call, ret, 'nope', 'x', false));
          break;
        default:
          ops.push(read(i % 8, call, ret, value));
      }
    }
    expect(check(...ops).ok).toBe(true);
    const broken = check(...ops, read(9, n * 10 + 100, n * 10 + 101, 'v0'));
    expect(broken.ok).toBe(false);
    if (broken.ok === false) expect(broken.violation.blocked.id).toBe(n);
  });
});

describe('HistoryRecorder', () => {
  it('records operations with their times and outcomes', () => {
    let t = 0;
    const rec = new HistoryRecorder(() => t++);
    const w = rec.invoke('c1', { kind: 'write', key: 'k', value: 'a' }); // t=0
    const r = rec.invoke('c2', { kind: 'read', key: 'k' }); // t=1
    rec.ok(w); // t=2
    rec.ok(r, 'a'); // t=3
    const c = rec.invoke('c1', { kind: 'cas', key: 'k', from: 'a', to: 'b' }); // t=4
    const d = rec.invoke('c2', { kind: 'delete', key: 'k' }); // t=5
    rec.info(d);
    rec.ok(c, true); // t=6
    const f = rec.invoke('c3', { kind: 'write', key: 'k', value: 'z' }); // t=7
    rec.fail(f); // t=8
    rec.invoke('c4', { kind: 'read', key: 'k' }); // t=9, never completes
    expect(rec.history()).toEqual([
      { id: 0, process: 'c1', key: 'k', call: 0, return: 2, status: 'ok', kind: 'write', input: 'a' },
      { id: 1, process: 'c2', key: 'k', call: 1, return: 3, status: 'ok', kind: 'read', output: 'a' },
      {
        id: 2,
        process: 'c1',
        key: 'k',
        call: 4,
        return: 6,
        status: 'ok',
        kind: 'cas',
        input: { from: 'a', to: 'b' },
        output: true,
      },
      { id: 3, process: 'c2', key: 'k', call: 5, return: null, status: 'info', kind: 'delete' },
      { id: 4, process: 'c3', key: 'k', call: 7, return: 8, status: 'fail', kind: 'write', input: 'z' },
      { id: 5, process: 'c4', key: 'k', call: 9, return: null, status: 'info', kind: 'read' },
    ]);
    expect(checkHistory(rec.history()).ok).toBe(true);
  });

  it('rejects an output of the wrong type and a second completion', () => {
    const rec = new HistoryRecorder(() => 0);
    const r = rec.invoke(1, { kind: 'read', key: 'k' });
    expect(() => rec.ok(r, true)).toThrow(HistoryError);
    const w = rec.invoke(1, { kind: 'write', key: 'k', value: 'a' });
    rec.ok(w);
    expect(() => rec.ok(w)).toThrow(/not outstanding/);
  });
});

describe('property: histories of a real sequential register are linearizable', () => {
  type Outcome = 'ok' | 'fail' | 'info-applied' | 'info-lost';
  const values = ['0', '1', '2'];
  const genOp = fc.record({
    kind: fc.constantFrom('read', 'write', 'cas', 'delete'),
    key: fc.constantFrom('a', 'b'),
    value: fc.constantFrom(...values),
    from: fc.constantFrom<Value>(null, ...values),
    outcome: fc.constantFrom<Outcome>(
      'ok',
      'ok',
      'ok',
      'ok',
      'ok',
      'ok',
      'fail',
      'info-applied',
      'info-lost',
    ),
    before: fc.nat({ max: 35 }),
    after: fc.nat({ max: 35 }),
  });
  type GenOp = typeof genOp extends fc.Arbitrary<infer T> ? T : never;

  /**
   * Runs the operations in order on a map of registers, operation i taking effect at time 10 * i, and gives each
   * an interval around that instant (so intervals overlap, but always contain the real instant).
   */
  function execute(gen: readonly GenOp[], sequential: boolean): Operation[] {
    const state = new Map<string, string>();
    return gen.map((g, id): Operation => {
      const at = 10 * id + 40;
      const applied = g.outcome === 'ok' || g.outcome === 'info-applied';
      const unknown = g.outcome === 'info-applied' || g.outcome === 'info-lost';
      const call = sequential ? at : at - g.before;
      const common = {
        id,
        process: id,
        key: g.key,
        call,
        return: unknown ? null : sequential ? at : at + g.after,
        status: unknown ? ('info' as const) : g.outcome === 'fail' ? ('fail' as const) : ('ok' as const),
      };
      const current = state.get(g.key) ?? null;
      switch (g.kind) {
        case 'read':
          return { ...common, kind: 'read', output: current };
        case 'write':
          if (applied) state.set(g.key, g.value);
          return { ...common, kind: 'write', input: g.value };
        case 'delete':
          if (applied) state.delete(g.key);
          return { ...common, kind: 'delete' };
        default: {
          const matches = current === g.from;
          if (applied && matches) state.set(g.key, g.value);
          // A cas that ran and whose comparison failed is an observed outcome, not a 'fail'.
          return { ...common, kind: 'cas', input: { from: g.from, to: g.value }, output: matches };
        }
      }
    });
  }

  it('accepts them', () => {
    fc.assert(
      fc.property(fc.array(genOp, { maxLength: 60 }), (gen) => {
        const result = checkHistory(execute(gen, false));
        if (result.ok !== true) throw new Error(result.explanation);
      }),
      { numRuns: 300 },
    );
  });

  it('rejects a sequential history with one read changed', () => {
    fc.assert(
      fc.property(
        fc
          .array(genOp, { minLength: 1, maxLength: 40 })
          .map((g) =>
            g.map((op) => ({ ...op, outcome: op.outcome.startsWith('info') ? ('ok' as const) : op.outcome })),
          ),
        fc.nat(),
        fc.constantFrom<Value>(null, ...values),
        (gen, pick, wrong) => {
          const ops = execute(gen, true);
          const reads = ops.filter((o) => o.kind === 'read' && o.status === 'ok' && o.output !== wrong);
          fc.pre(reads.length > 0);
          const target = reads[pick % reads.length]!;
          const mutated = ops.map((o) => (o === target ? { ...o, output: wrong } : o)) as Operation[];
          const result = checkHistory(mutated);
          expect(result.ok).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('property: agrees with a brute-force search on small random histories', () => {
  /** Tries every order that respects real time; an operation of unknown outcome may also never take effect. */
  function bruteForce(ops: readonly Operation[]): boolean {
    const live = ops.filter((o) => o.status !== 'fail' && !(o.status === 'info' && o.kind === 'read'));
    const end = (o: Operation): number => (o.status === 'info' || o.return === null ? Infinity : o.return);
    const keys = new Set(live.map((o) => o.key));
    const search = (rest: readonly Operation[], state: Value): boolean => {
      if (rest.every((o) => o.status === 'info')) return true;
      return rest.some((x, i) => {
        if (rest.some((y) => end(y) < x.call)) return false; // y returned before x was called: y goes first
        let next: Value;
        switch (x.kind) {
          case 'read':
            if (x.output !== state) return false;
            next = state;
            break;
          case 'write':
            next = x.input;
            break;
          case 'delete':
            next = null;
            break;
          case 'cas':
            if (x.status === 'info') next = state === x.input.from ? x.input.to : state;
            else if (x.output === true) {
              if (state !== x.input.from) return false;
              next = x.input.to;
            } else {
              if (state === x.input.from) return false;
              next = state;
            }
        }
        return search([...rest.slice(0, i), ...rest.slice(i + 1)], next);
      });
    };
    return [...keys].every((k) =>
      search(
        live.filter((o) => o.key === k),
        null,
      ),
    );
  }

  const value = fc.constantFrom('a', 'b');
  const genOp = fc.record({
    kind: fc.constantFrom('read', 'write', 'cas', 'delete'),
    key: fc.constantFrom('x', 'x', 'y'),
    value,
    output: fc.constantFrom<Value>(null, 'a', 'b'),
    from: fc.constantFrom<Value>(null, 'a', 'b'),
    ok: fc.boolean(),
    status: fc.constantFrom('ok', 'ok', 'ok', 'info', 'info', 'fail'),
    call: fc.nat({ max: 20 }),
    length: fc.nat({ max: 8 }),
  });

  it('gives the same verdict', () => {
    let violations = 0;
    fc.assert(
      fc.property(fc.array(genOp, { maxLength: 8 }), (gen) => {
        const ops = gen.map((g, id): Operation => {
          const status = g.status as 'ok' | 'info' | 'fail';
          const common = {
            id,
            process: id,
            key: g.key,
            call: g.call,
            return: status === 'info' ? null : g.call + g.length,
            status,
          };
          switch (g.kind) {
            case 'read':
              return { ...common, kind: 'read', output: g.output };
            case 'write':
              return { ...common, kind: 'write', input: g.value };
            case 'delete':
              return { ...common, kind: 'delete' };
            default:
              return { ...common, kind: 'cas', input: { from: g.from, to: g.value }, output: g.ok };
          }
        });
        const expected = bruteForce(ops);
        if (!expected) violations++;
        const result = checkHistory(ops);
        expect(result.ok, JSON.stringify(ops)).toBe(expected);
      }),
      { numRuns: 2000 },
    );
    expect(violations).toBeGreaterThan(100); // the generator makes both kinds of history
  });
});
