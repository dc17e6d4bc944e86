import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { checkHistory, HistoryError, parseJepsenLog } from './index.js';

// The corpus is kept in the repository (test/fixtures/etcd-jepsen, see SOURCE.md there);
// RAFTING_LINEARIZABILITY_CORPUS may point elsewhere: at a linearizability/ directory, or at etcd-jepsen/ itself.
function corpusDir(): string {
  const env = process.env['RAFTING_LINEARIZABILITY_CORPUS'];
  const base =
    env !== undefined && env !== ''
      ? env
      : fileURLToPath(new URL('../../test/fixtures/etcd-jepsen/', import.meta.url));
  return existsSync(join(base, 'EXPECTED.txt')) ? base : join(base, 'etcd-jepsen');
}

const dir = corpusDir();
const present = existsSync(join(dir, 'EXPECTED.txt'));

describe('parseJepsenLog', () => {
  const log = [
    'INFO  jepsen.util - 0\t:invoke\t:read\tnil',
    'INFO  jepsen.util - 1\t:invoke\t:write\t3',
    'INFO  jepsen.util - 0\t:ok\t:read\tnil',
    'INFO  jepsen.util - 1\t:ok\t:write\t3',
    'INFO  jepsen.util - 2   :invoke :cas    [3 4]', // spaces instead of tabs
    'INFO  jepsen.util - 3\t:invoke\t:cas\t[0 1]',
    'INFO  jepsen.util - 2\t:ok\t:cas\t[3 4]',
    'INFO  jepsen.util - 3\t:fail\t:cas\t[0 1]',
    'INFO  jepsen.util - 4\t:invoke\t:write\t2',
    'INFO  jepsen.util - 5\t:invoke\t:read\tnil',
    'INFO  jepsen.util - 4\t:info\t:write\t:timed-out',
    'INFO  jepsen.util - 5\t:fail\t:read\t:timed-out',
    '',
    'INFO  jepsen.util - 0\t:invoke\t:read\tnil',
    'INFO  jepsen.util - 0\t:ok\t:read\t4',
    'INFO  jepsen.util - :nemesis\t:info\t:start\tnil',
    'INFO  jepsen.util - 6\t:invoke\t:cas\t[4 0]',
  ].join('\n');

  it('maps events to operations', () => {
    expect(parseJepsenLog(log, { key: 'r' })).toEqual([
      { id: 0, process: 0, key: 'r', call: 0, return: 2, status: 'ok', kind: 'read', output: null },
      { id: 1, process: 1, key: 'r', call: 1, return: 3, status: 'ok', kind: 'write', input: '3' },
      {
        id: 2,
        process: 2,
        key: 'r',
        call: 4,
        return: 6,
        status: 'ok',
        kind: 'cas',
        input: { from: '3', to: '4' },
        output: true,
      },
      // A :fail cas: the comparison failed, which is an observed outcome.
      {
        id: 3,
        process: 3,
        key: 'r',
        call: 5,
        return: 7,
        status: 'ok',
        kind: 'cas',
        input: { from: '0', to: '1' },
        output: false,
      },
      { id: 4, process: 4, key: 'r', call: 8, return: null, status: 'info', kind: 'write', input: '2' },
      // A read that timed out constrains nothing.
      { id: 5, process: 5, key: 'r', call: 9, return: 11, status: 'fail', kind: 'read' },
      { id: 6, process: 0, key: 'r', call: 12, return: 13, status: 'ok', kind: 'read', output: '4' },
      // Never completed: unknown outcome.
      {
        id: 7,
        process: 6,
        key: 'r',
        call: 14,
        return: null,
        status: 'info',
        kind: 'cas',
        input: { from: '4', to: '0' },
      },
    ]);
    expect(checkHistory(parseJepsenLog(log)).ok).toBe(true);
  });

  it('rejects malformed logs', () => {
    expect(() => parseJepsenLog('hello')).toThrow(HistoryError);
    expect(() => parseJepsenLog('INFO  jepsen.util - 0\t:ok\t:read\tnil')).toThrow(/never invoked/);
    expect(() =>
      parseJepsenLog('INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - 0\t:ok\t:write\t2'),
    ).toThrow(/differ/);
    expect(() =>
      parseJepsenLog(
        'INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:invoke\t:read\tnil',
      ),
    ).toThrow(/outstanding/);
  });
});

describe('the etcd Jepsen corpus', () => {
  if (!present) {
    it('is present', () => {
      throw new Error(
        `The linearizability corpus was not found at ${dir}. It is kept in test/fixtures/etcd-jepsen ` +
          '(or set RAFTING_LINEARIZABILITY_CORPUS to a directory holding it).',
      );
    });
    return;
  }

  const expected = new Map<string, string>();
  for (const line of readFileSync(join(dir, 'EXPECTED.txt'), 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const [file, verdict] = line.trim().split(/\s+/);
    expected.set(file!, verdict!);
  }
  const logs = readdirSync(dir).filter((f) => f.endsWith('.log'));
  const timings: { file: string; ms: number }[] = [];

  it('lists 102 histories: 23 linearizable, 79 not', () => {
    expect(expected.size).toBe(102);
    const verdicts = [...expected.values()];
    expect(verdicts.filter((v) => v === 'linearizable')).toHaveLength(23);
    expect(verdicts.filter((v) => v === 'not-linearizable')).toHaveLength(79);
  });

  it('has only logs that are listed, or empty', () => {
    // etcd_095.log is empty and not in EXPECTED.txt (as published); an empty history is trivially linearizable.
    for (const file of logs.filter((f) => !expected.has(f))) {
      const ops = parseJepsenLog(readFileSync(join(dir, file), 'utf8'));
      expect(ops, `${file} is not in EXPECTED.txt`).toEqual([]);
      expect(checkHistory(ops).ok).toBe(true);
    }
  });

  it.each([...expected.entries()])('%s is %s (within 1 s)', (file, verdict) => {
    const text = readFileSync(join(dir, file), 'utf8');
    const started = performance.now();
    const result = checkHistory(parseJepsenLog(text), { timeoutMs: 10_000 });
    const ms = performance.now() - started;
    timings.push({ file, ms });
    if (result.ok === 'unknown') throw new Error(`${file}: ${result.explanation}`);
    expect(
      result.ok ? 'linearizable' : 'not-linearizable',
      result.ok === false ? result.explanation : '',
    ).toBe(verdict);
    if (result.ok === false) expect(result.explanation).toContain('Key "register"');
    expect(ms, `${file} took ${ms.toFixed(0)} ms`).toBeLessThan(1000);
  });

  afterAll(() => {
    const slowest = timings.sort((x, y) => y.ms - x.ms).slice(0, 3);
    const total = timings.reduce((sum, t) => sum + t.ms, 0);
    console.log(
      `linearizability corpus: ${timings.length} histories in ${total.toFixed(0)} ms; slowest: ` +
        slowest.map((t) => `${t.file} ${t.ms.toFixed(0)} ms`).join(', '),
    );
  });
});
