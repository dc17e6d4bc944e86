import { describe, expect, it } from 'vitest';
import { parseMachineStat, parseStatTicks } from './procs.js';
import {
  benchValue,
  combine,
  luaScript,
  mergedPercentile,
  parseWrkOutput,
  percentileGrid,
  preloadKey,
  splitConnections,
  type WrkResult,
} from './wrk.js';

/** A run whose latencies are spread evenly: the grid's p-th percentile is p × `scaleUs`. */
function evenRun(requests: number, scaleUs: number, overrides: Partial<WrkResult> = {}): WrkResult {
  return {
    durationUs: 2_000_000,
    requests,
    bytes: requests * 100,
    errors: { connect: 0, read: 0, write: 0, status: 0, timeout: 0 },
    latencyUs: {
      min: 0,
      max: 100 * scaleUs,
      mean: 50 * scaleUs,
      grid: percentileGrid.map((p) => [p, Math.round(p * scaleUs)] as const),
    },
    cpuSeconds: 0.5,
    ...overrides,
  };
}

describe('parseStatTicks', () => {
  it('adds utime and stime, counting fields from the last parenthesis of the command name', () => {
    // Fields 14 and 15 are 40 and 2; the name "(a) b)" has a space and a parenthesis in it.
    const stat = '4242 (a) b) S 1 2 3 0 -1 4194304 536 0 0 0 40 2 0 0 20 0 3 0 91041 289550336 1342';
    expect(parseStatTicks(stat)).toBe(42);
  });

  it('refuses a line that is not a stat line', () => {
    expect(() => parseStatTicks('hello')).toThrow();
  });
});

describe('parseMachineStat', () => {
  it('sums the first eight fields of the cpu line and takes the eighth as steal', () => {
    const stat = 'cpu  100 5 50 800 20 0 10 15 7 0\ncpu0 50 2 25 400 10 0 5 8 3 0\nintr 1 2 3\n';
    // guest (7) and guest_nice (0) are already counted in user and nice.
    expect(parseMachineStat(stat)).toEqual({ total: 1000, steal: 15 });
  });

  it('undefined for text without a cpu line of numbers', () => {
    expect(parseMachineStat('intr 1 2 3')).toBeUndefined();
    expect(parseMachineStat('cpu  1 2 x 4 5 6 7 8')).toBeUndefined();
    expect(parseMachineStat('cpu  1 2 3')).toBeUndefined();
  });
});

describe('parseWrkOutput', () => {
  const line =
    '@@bench {"durationUs":2021051,"requests":2312,"bytes":866902,' +
    '"errors":{"connect":0,"read":1,"write":0,"status":7,"timeout":2},' +
    '"latencyUs":{"min":3011,"max":50056,"mean":14126.9,"grid":[[50,12907],[99,35871],[99.9,49901],[100,50056]]},' +
    '"stat":"12555 (wrk) R 12507 12340 3428 0 -1 4194304 536 0 0 0 400 300 0 0 20 0 1 0 91041"}';

  it('finds the @@bench line among wrk’s own output and converts its CPU ticks to seconds', () => {
    const result = parseWrkOutput(`Running 2s test @ http://127.0.0.1:1/\n  2 threads\n${line}\n`);
    expect(result.requests).toBe(2312);
    expect(result.errors).toEqual({ connect: 0, read: 1, write: 0, status: 7, timeout: 2 });
    expect(result.latencyUs.grid[1]).toEqual([99, 35871]);
    expect(result.cpuSeconds).toBeCloseTo(7, 5); // 700 ticks at 100 per second
  });

  it('fails loudly when the script printed nothing', () => {
    expect(() => parseWrkOutput('Running 2s test\n')).toThrow(/no @@bench line/);
  });
});

describe('mergedPercentile', () => {
  it('gives a single run’s own percentiles back', () => {
    const run = evenRun(1000, 100);
    expect(mergedPercentile([run], 50)).toBe(5000);
    expect(mergedPercentile([run], 99)).toBe(9900);
    expect(mergedPercentile([run], 99.9)).toBe(9990);
  });

  it('weighs runs by their request counts', () => {
    // 9,000 fast requests (0–1 ms) and 1,000 slow ones (0–100 ms): the median is fast, the p99 slow.
    const fast = evenRun(9000, 10);
    const slow = evenRun(1000, 1000);
    expect(mergedPercentile([fast, slow], 50)).toBeLessThanOrEqual(1000);
    const p99 = mergedPercentile([fast, slow], 99);
    expect(p99).toBeGreaterThan(80_000);
    expect(p99).toBeLessThanOrEqual(100_000);
  });

  it('is 0 without requests', () => {
    expect(mergedPercentile([evenRun(0, 10)], 50)).toBe(0);
  });
});

describe('combine', () => {
  it('adds up the processes: successful requests per second, errors, CPU', () => {
    const a = evenRun(2000, 100, {
      errors: { connect: 1, read: 0, write: 0, status: 100, timeout: 0 },
    });
    const b = evenRun(1000, 100);
    const c = combine([a, b]);
    expect(c.processes).toBe(2);
    expect(c.requests).toBe(3000);
    // (2000 - 100) / 2 s + 1000 / 2 s; the 100 non-2xx answers are not counted as served
    expect(c.okPerSecond).toBe(1450);
    expect(c.errors).toBe(101);
    expect(c.wrkCpuSeconds).toBe(1);
    expect(c.latencyMs.p50).toBe(5);
    expect(c.latencyMs.max).toBe(10);
    // Each process's distribution is kept, so that repeated runs can be merged later into the same percentiles.
    expect(c.samples.map((x) => x.requests)).toEqual([2000, 1000]);
    expect(mergedPercentile(c.samples, 99)).toBe(mergedPercentile([a, b], 99));
  });
});

describe('splitConnections', () => {
  it('splits as evenly as possible and leaves out members that get none', () => {
    expect(splitConnections(16, 3)).toEqual([6, 5, 5]);
    expect(splitConnections(256, 3)).toEqual([86, 85, 85]);
    expect(splitConnections(1, 3)).toEqual([1]);
    expect(splitConnections(2, 3)).toEqual([1, 1]);
  });
});

describe('luaScript', () => {
  const base = { readFraction: 0, stale: false, keys: 10, valueBytes: 100 } as const;

  it('Rafting writes: PUT /kv/<key> with a JSON value, unique 16-byte keys from tag, thread and counter', () => {
    const s = luaScript({ ...base, system: 'rafting' });
    expect(s).toContain('wrk.format("PUT", "/kv/" .. key, nil, put_body)');
    expect(s).toContain('string.format("w%s%02d%011d", tag, bench_thread % 100, counter)');
    expect('w' + 'aa' + '07' + '00000000042').toHaveLength(16);
  });

  it('etcd stale reads: POST /v3/kv/range with a base64 key and serializable', () => {
    const s = luaScript({ ...base, system: 'etcd', readFraction: 1, stale: true });
    expect(s).toContain('"/v3/kv/range"');
    expect(s).toContain('"serializable":true');
    expect(s).toContain('b64(key)');
  });

  it('a mix overwrites the pre-written keys instead of writing new ones', () => {
    const s = luaScript({ ...base, system: 'rafting', readFraction: 0.9 });
    expect(s).toContain('local read_fraction = 0.9');
    expect(s).not.toContain('"w%s%02d%011d"');
  });

  it('pre-written keys are 16 bytes and values exactly as long as asked', () => {
    expect(preloadKey(7)).toBe('r000000000000007');
    expect(preloadKey(999)).toHaveLength(16);
    expect(benchValue(100)).toHaveLength(100);
    expect(luaScript({ ...base, system: 'rafting' })).toContain(JSON.stringify(benchValue(100)));
  });
});
