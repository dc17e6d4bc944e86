import { describe, expect, it } from 'vitest';
import { distribution, nearestRank, summarizeFailover, type Trial } from './failover.js';
import { parseOptions, UsageError } from './options.js';
import { lastSeconds, origin, selfTimes, selfTimesByOrigin, type CpuProfile } from './profile.js';
import {
  cpuTable,
  formatMs,
  formatRate,
  formatTable,
  pooledTable,
  ratio,
  spreadTable,
  workloadTable,
} from './report.js';
import { medianRuns, type CellResult } from './throughput.js';

describe('formatting', () => {
  it('ratio is rafting / etcd with two decimals, a dash when it cannot be computed', () => {
    expect(ratio(3300, 1100)).toBe('3.00×');
    expect(ratio(1, 3)).toBe('0.33×');
    expect(ratio(5, 0)).toBe('–');
    expect(ratio(null, 5)).toBe('–');
  });

  it('milliseconds keep about three significant digits; rates get separators', () => {
    expect(formatMs(0.853)).toBe('0.85');
    expect(formatMs(12.94)).toBe('12.9');
    expect(formatMs(112.7)).toBe('113');
    expect(formatMs(null)).toBe('–');
    expect(formatRate(7512.6)).toBe('7,513');
  });

  it('formatTable pads the first column left, the others right', () => {
    expect(
      formatTable(
        ['a', 'bb'],
        [
          ['xyz', '1'],
          ['q', '100'],
        ],
      ).split('\n'),
    ).toEqual(['a     bb', '---  ---', 'xyz    1', 'q    100']);
  });
});

/**
 * A successful run of put-leader: 10 s at `okPerSecond`, its latency one wrk process whose grid has p50 1 ms and the
 * given p99 (p99.9 twice, the maximum three times that).
 */
function cell(system: 'rafting' | 'etcd', connections: number, okPerSecond: number, p99: number): CellResult {
  const us = (ms: number) => ms * 1000;
  const grid: [number, number][] = [
    [50, us(1)],
    [99, us(p99)],
    [99.9, us(p99 * 2)],
    [100, us(p99 * 3)],
  ];
  return {
    system,
    workload: 'put-leader',
    connections,
    order: 0,
    error: null,
    leader: 'node1',
    leaderChanged: false,
    targets: [],
    result: {
      processes: 1,
      durationS: 10,
      requests: okPerSecond * 10,
      okPerSecond,
      errors: 0,
      errorDetail: { connect: 0, read: 0, write: 0, status: 0, timeout: 0 },
      latencyMs: { p50: 1, p99, p999: p99 * 2, max: p99 * 3 },
      wrkCpuSeconds: 1,
      samples: [{ requests: okPerSecond * 10, latencyUs: { grid } }],
    },
    cpu: { wrkPercent: 10, servers: {}, serversPercent: 100, serversSystemPercent: 40, stealPercent: 1.5 },
  };
}

/** A run of the cell that failed: no result. */
function failedCell(system: 'rafting' | 'etcd', connections: number): CellResult {
  return { ...cell(system, connections, 0, 0), result: null, error: 'boom' };
}

describe('medianRuns', () => {
  it('keeps, per system and cell, the run with the median requests/s; a failed run counts as the slowest', () => {
    const runs = [
      cell('rafting', 1, 900, 3),
      cell('etcd', 1, 800, 2),
      cell('rafting', 1, 1100, 9),
      failedCell('rafting', 1),
      cell('rafting', 1, 1000, 5),
      cell('etcd', 1, 700, 4),
      cell('rafting', 16, 5000, 7),
    ];
    const chosen = medianRuns(runs);
    const pick = (system: string, c: number) =>
      chosen.filter((r) => r.system === system && r.connections === c).map((r) => r.result?.okPerSecond);
    expect(chosen).toHaveLength(3);
    // rafting c=1: failed, 900, 1000, 1100 -> the lower middle, 900; etcd c=1: 700, 800 -> 700.
    expect(pick('rafting', 1)).toEqual([900]);
    expect(pick('etcd', 1)).toEqual([700]);
    expect(pick('rafting', 16)).toEqual([5000]);
    expect(medianRuns([cell('etcd', 1, 1, 1)])).toHaveLength(1);
  });
});

describe('cpuTable', () => {
  it("per system: servers, kernel, CPU per request, wrk and the host's steal", () => {
    const lines = cpuTable(
      [cell('rafting', 1, 2000, 2), cell('etcd', 1, 1000, 4)],
      ['rafting', 'etcd'],
    ).split('\n');
    expect(lines[0]).toMatch(/steal: the machine's CPU time its host took/);
    expect(lines[1]!.split(/\s{2,}/)).toContain('steal %');
    // 100% of a core for 2,000 req/s is 500 µs each; for 1,000 req/s, 1,000 µs.
    expect(lines[3]!.split(/\s+/)).toEqual([
      'put-leader',
      '1',
      '100',
      '40',
      '500',
      '10',
      '1.5',
      '100',
      '40',
      '1000',
      '10',
      '1.5',
    ]);
  });
});

describe('workloadTable', () => {
  it('one row per connection count with both systems and the ratios', () => {
    const cells = [cell('rafting', 1, 2200, 2), cell('etcd', 1, 1100, 4), cell('rafting', 16, 3000, 8)];
    const lines = workloadTable(cells, 'put-leader', ['rafting', 'etcd'], [1, 16]).split('\n');
    expect(lines[0]).toMatch(/^put-leader: /);
    expect(lines[1]).toContain('req/s R/E');
    const row1 = lines[3]!.split(/\s+/);
    expect(row1).toEqual([
      '1',
      '2,200',
      '1.00',
      '2.00',
      '4.00',
      '0',
      '1,100',
      '1.00',
      '4.00',
      '8.00',
      '0',
      '2.00×',
      '1.00×',
      '0.50×',
      '0.50×',
    ]);
    // etcd has no result at 16 connections: dashes, and no ratio
    expect(lines[4]).toContain('3,000');
    expect(lines[4]!.trim().endsWith('–')).toBe(true);
  });

  it('without etcd there are no ratio columns', () => {
    const table = workloadTable([cell('rafting', 1, 2200, 2)], 'put-leader', ['rafting'], [1]);
    expect(table).not.toContain('R/E');
  });
});

describe('spreadTable', () => {
  it('lists every run of a cell in order, failed ones included, and leaves out cells without runs', () => {
    const runs = [
      cell('rafting', 1, 1491, 4.85),
      cell('etcd', 1, 1184, 7.07),
      failedCell('etcd', 1),
      cell('rafting', 1, 1469, 4.52),
      cell('rafting', 64, 12875, 19),
    ];
    const lines = spreadTable(runs, ['put-leader', 'mix'], ['rafting', 'etcd'], [1, 16, 64]).split('\n');
    expect(lines[0]).toMatch(/^every run of each cell/);
    expect(lines[1]!.split(/\s{2,}/)).toEqual([
      'workload',
      'conns',
      'rafting req/s of each run',
      'p99 ms of each run',
      'etcd req/s of each run',
      'p99 ms of each run',
    ]);
    // No row for 16 connections (no runs) nor for mix.
    expect(lines).toHaveLength(5);
    expect(lines[3]!.trim().split(/\s{2,}/)).toEqual([
      'put-leader',
      '1',
      '1,491 / 1,469',
      '4.85 / 4.52',
      '1,184 / failed',
      '7.07 / failed',
    ]);
    expect(lines[4]!.trim().split(/\s{2,}/)).toEqual(['put-leader', '64', '12,875', '19.0', '–', '–']);
  });
});

describe('pooledTable', () => {
  it('merges the runs of a cell into one distribution, weighted by their requests, and compares the systems', () => {
    const runs = [
      // rafting c=1: 10,000 requests with p99 4 ms and 10,000 with p99 40 ms. A grid point stands for the requests
      // up to it, so half of all requests are "1-4 ms" or "1-40 ms" and the merged p99 and p99.9 are the slow run's
      // own (40, 80 ms), not the mean of the two runs' (22, 44 ms).
      cell('rafting', 1, 1000, 4),
      cell('etcd', 1, 1000, 10),
      cell('rafting', 1, 1000, 40),
      failedCell('etcd', 1),
      cell('rafting', 64, 10000, 20),
    ];
    const lines = pooledTable(runs, ['put-leader', 'mix'], ['rafting', 'etcd'], [1, 16, 64]).split('\n');
    expect(lines[0]).toMatch(/^latency over all runs of each cell together/);
    expect(lines[1]!.split(/\s{2,}/)).toEqual([
      'workload',
      'conns',
      'rafting runs',
      'p50 ms',
      'p99 ms',
      'p99.9 ms',
      'etcd runs',
      'p50 ms',
      'p99 ms',
      'p99.9 ms',
      'p50 R/E',
      'p99 R/E',
      'p99.9 R/E',
    ]);
    // No rows for 16 connections nor for mix: no runs.
    expect(lines).toHaveLength(5);
    expect(lines[3]!.trim().split(/\s{2,}/)).toEqual([
      'put-leader',
      '1',
      '2',
      '1.00',
      '40.0',
      '80.0',
      '1 + 1 failed',
      '1.00',
      '10.0',
      '20.0',
      '1.00×',
      '4.00×',
      '4.00×',
    ]);
    // A cell with one run gives that run's own percentiles; a system without runs, dashes.
    expect(lines[4]!.trim().split(/\s{2,}/)).toEqual([
      'put-leader',
      '64',
      '1',
      '1.00',
      '20.0',
      '40.0',
      '–',
      '–',
      '–',
      '–',
      '–',
      '–',
      '–',
    ]);
  });

  it('shows a cell whose every run failed as failed', () => {
    const lines = pooledTable([failedCell('etcd', 1)], ['put-leader'], ['etcd'], [1]).split('\n');
    expect(lines[3]!.trim().split(/\s{2,}/)).toEqual(['put-leader', '1', '1 failed', '–', '–', '–']);
  });
});

describe('failover statistics', () => {
  it('nearest-rank percentiles', () => {
    const sorted = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100];
    expect(nearestRank(sorted, 50)).toBe(50);
    expect(nearestRank(sorted, 90)).toBe(90);
    expect(nearestRank([7], 90)).toBe(7);
    expect(nearestRank([], 50)).toBeNull();
  });

  it('a trial that never found a leader counts as failed and stays out of the distribution', () => {
    const trial = (leaderMs: number | null, writeMs: number | null): Trial => ({
      system: 'rafting',
      trial: 0,
      killed: 'node1',
      term: 1,
      newLeader: null,
      leaderMs,
      writeMs,
      writesBeforeKill: 3,
      healthyAfter: true,
    });
    const s = summarizeFailover('rafting', [trial(300, 350), trial(200, 260), trial(null, null)]);
    expect(s.trials).toBe(3);
    expect(s.failed).toBe(1);
    expect(s.leader).toEqual({ n: 2, min: 200, median: 200, p90: 300, max: 300 });
    expect(distribution([]).median).toBeNull();
  });
});

describe('parseOptions', () => {
  it('quick mode: two workloads, two concurrencies, short runs, three failover trials', () => {
    const o = parseOptions(['--quick'], () => 0.5);
    expect(o.workloads).toEqual(['put-leader', 'mix']);
    expect(o.concurrency).toEqual([1, 64]);
    expect(o.durationS).toBe(2);
    expect(o.failoverTrials).toBe(3);
    expect(o.seed).toBe(500_000);
  });

  it('explicit lists and bounds', () => {
    const o = parseOptions([
      '--only',
      'etcd',
      '--workloads=get-stale,put-all',
      '--concurrency',
      '4,4,8',
      '--duration',
      '3',
    ]);
    expect(o.systems).toEqual(['etcd']);
    expect(o.workloads).toEqual(['get-stale', 'put-all']);
    expect(o.concurrency).toEqual([4, 8]);
    expect(o.durationS).toBe(3);
    expect(() => parseOptions(['--duration', '0'])).toThrow(UsageError);
    expect(() => parseOptions(['--workloads', 'put-everything'])).toThrow(/unknown "put-everything"/);
    expect(() => parseOptions(['--only', 'zookeeper'])).toThrow(UsageError);
    expect(() => parseOptions(['--bogus'])).toThrow(/unknown option/);
    expect(parseOptions([]).repeat).toBe(1);
    expect(parseOptions(['--repeat', '3']).repeat).toBe(3);
    expect(() => parseOptions(['--repeat', '0'])).toThrow(UsageError);
  });

  it('--node-args: space-separated node options, each starting with -', () => {
    expect(parseOptions([]).nodeArgs).toEqual([]);
    expect(parseOptions(['--node-args', ' --max-semi-space-size=32  --single-threaded-gc']).nodeArgs).toEqual(
      ['--max-semi-space-size=32', '--single-threaded-gc'],
    );
    expect(() => parseOptions(['--node-args', '--foo bar'])).toThrow(/must start with -, got bar/);
  });
});

describe('selfTimes', () => {
  it('counts samples per function, largest first, with paths shortened', () => {
    const profile: CpuProfile = {
      startTime: 0,
      endTime: 4000, // µs: 4 samples of 1 ms
      nodes: [
        { id: 1, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } },
        { id: 2, callFrame: { functionName: 'encode', url: 'file:///w/dist/kv/command.js', lineNumber: 9 } },
        {
          id: 3,
          callFrame: { functionName: 'parse', url: 'file:///w/node_modules/fastify/lib/x.js', lineNumber: 0 },
        },
      ],
      samples: [2, 2, 3, 1],
    };
    expect(selfTimes(profile)).toEqual([
      { frame: 'encode dist/kv/command.js:10', samples: 2, percent: 50, ms: 2 },
      { frame: 'parse fastify/lib/x.js:1', samples: 1, percent: 25, ms: 1 },
      { frame: '(idle)', samples: 1, percent: 25, ms: 1 },
    ]);
  });
});

describe('origin', () => {
  it('names the package, our directory, Node itself, native code or V8', () => {
    expect(origin('encode dist/kv/command.js:10')).toBe('dist/kv');
    expect(origin('parse fastify/lib/x.js:1')).toBe('fastify');
    expect(origin('write @grpc/grpc-js/build/src/x.js:5')).toBe('@grpc/grpc-js');
    expect(origin('emit node:events:471')).toBe('node built-ins');
    expect(origin('writev')).toBe('native (no script)');
    expect(origin('(garbage collector)')).toBe('(garbage collector)');
  });

  it('sums self time by origin', () => {
    const t = (frame: string, samples: number) => ({ frame, samples, percent: samples, ms: samples });
    expect(selfTimesByOrigin([t('a dist/kv/x.js:1', 2), t('b dist/kv/y.js:1', 3), t('writev', 4)])).toEqual([
      { frame: 'dist/kv', samples: 5, percent: 55.6, ms: 5 },
      { frame: 'native (no script)', samples: 4, percent: 44.4, ms: 4 },
    ]);
  });
});

describe('lastSeconds', () => {
  it('keeps the samples of the last seconds only', () => {
    const profile: CpuProfile = {
      startTime: 0,
      endTime: 3_000_000,
      nodes: [{ id: 1, callFrame: { functionName: 'f', url: '', lineNumber: 0 } }],
      samples: [1, 1, 1],
      timeDeltas: [500_000, 1_000_000, 1_000_000], // at 0.5 s, 1.5 s and 2.5 s
    };
    const cut = lastSeconds(profile, 2);
    expect(cut.samples).toHaveLength(2);
    expect(cut.startTime).toBe(1_000_000);
    expect(lastSeconds({ ...profile, timeDeltas: undefined as never }, 2).samples).toHaveLength(3);
  });
});
