// npm run bench -- [options]: the command line, parsed into bounded options.

import { join } from 'node:path';
import { systems, type SystemName } from './cluster.js';
import { workloadNames, type WorkloadName } from './workloads.js';
import { parseLongOptions, UsageError } from '../util/options.js';

export const usage = `usage: npm run bench -- [options]
  --quick                a smoke run of a few seconds per workload: put-leader and mix at 1 and 64
                         connections, 2 s each, 3 failover trials
  --duration SECONDS     measured time per workload and concurrency (default 10; 1-600)
  --warmup SECONDS       load before each measurement, not counted (default 2, quick 1; 0-60)
  --only rafting|etcd    one system only
  --workloads LIST       comma-separated: ${workloadNames.join(',')} (default all)
  --concurrency LIST     connections, comma-separated (default 1,16,64,256; each 1-1024)
  --repeat N             runs of every workload and concurrency per system, alternating (default 1; 1-20);
                         the table shows the run with the median requests/s
  --failover-trials N    leader kills per system on a 5-node cluster (default 20, quick 3; 0-200)
  --no-throughput        failover only
  --seed N               seed of the failover kill moments (default random)
  --profile              run Rafting's nodes under node --cpu-prof (profiles in <out>/profiles)
  --node-args "ARGS"     extra options for the node processes of Rafting's members, space-separated, each
                         starting with - (e.g. "--max-semi-space-size=32"): for trying runtime settings
  --out DIR              results directory (default results/bench-<timestamp>)`;

export interface BenchOptions {
  readonly quick: boolean;
  readonly durationS: number;
  readonly warmupS: number;
  readonly systems: readonly SystemName[];
  readonly workloads: readonly WorkloadName[];
  readonly concurrency: readonly number[];
  /** Runs of every (workload, concurrency) per system; the table shows the median one. */
  readonly repeat: number;
  readonly failoverTrials: number;
  readonly throughput: boolean;
  readonly seed: number;
  readonly profile: boolean;
  /** Extra options for Rafting's node processes (--node-args). */
  readonly nodeArgs: readonly string[];
  readonly out: string;
  /** Keys written before a read workload. */
  readonly preloadKeys: number;
}

export { UsageError };

const valued = [
  '--duration',
  '--warmup',
  '--only',
  '--workloads',
  '--concurrency',
  '--failover-trials',
  '--repeat',
  '--seed',
  '--node-args',
  '--out',
];
const flags = ['--quick', '--no-throughput', '--profile'];

export function defaultOut(now: Date = new Date()): string {
  return join('results', `bench-${now.toISOString().replace(/[:.]/g, '-')}`);
}

function list(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export function parseOptions(argv: readonly string[], random: () => number = Math.random): BenchOptions {
  const { values, flags: set, int } = parseLongOptions(argv, valued, flags);
  const quick = set.has('--quick');
  const only = values.get('--only');
  if (only !== undefined && !(systems as readonly string[]).includes(only)) {
    throw new UsageError(`--only: rafting or etcd, got ${only}`);
  }
  const chosenWorkloads = list(
    values.get('--workloads') ?? (quick ? 'put-leader,mix' : workloadNames.join(',')),
  );
  for (const w of chosenWorkloads) {
    if (!(workloadNames as readonly string[]).includes(w)) {
      throw new UsageError(`--workloads: unknown ${JSON.stringify(w)}; known: ${workloadNames.join(', ')}`);
    }
  }
  const concurrency = list(values.get('--concurrency') ?? (quick ? '1,64' : '1,16,64,256')).map((c) => {
    const n = Number(c);
    if (!Number.isInteger(n) || n < 1 || n > 1024) {
      throw new UsageError(`--concurrency: expected integers from 1 to 1024, got ${c}`);
    }
    return n;
  });
  const nodeArgs = (values.get('--node-args') ?? '').split(/\s+/).filter((a) => a !== '');
  for (const a of nodeArgs) {
    if (!a.startsWith('-')) throw new UsageError(`--node-args: every entry must start with -, got ${a}`);
  }
  if (chosenWorkloads.length === 0 || concurrency.length === 0) {
    throw new UsageError('--workloads and --concurrency need at least one entry');
  }
  return {
    quick,
    durationS: int('--duration', quick ? 2 : 10, 1, 600),
    warmupS: int('--warmup', quick ? 1 : 2, 0, 60),
    systems: only === undefined ? systems : [only as SystemName],
    workloads: [...new Set(chosenWorkloads)] as WorkloadName[],
    concurrency: [...new Set(concurrency)],
    repeat: int('--repeat', 1, 1, 20),
    failoverTrials: int('--failover-trials', quick ? 3 : 20, 0, 200),
    throughput: !set.has('--no-throughput'),
    seed: int('--seed', Math.floor(random() * 1_000_000), 0, 2 ** 31 - 1),
    profile: set.has('--profile'),
    nodeArgs,
    out: values.get('--out') ?? defaultOut(),
    preloadKeys: quick ? 200 : 1000,
  };
}
