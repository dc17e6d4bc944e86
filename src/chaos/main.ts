// npm run chaos -- [--nodes 3|5] [--time SECONDS] [--nemesis kill,pause,partition,delay,drop,crash-all]
//                  [--seed N] [--clients N] [--out DIR] [--planted-bug stale-reads]
// Exit status 0 only if every check passed; 1 if one failed; 2 on bad arguments.

import { nemesisKinds, type NemesisKind } from './nemesis.js';
import { parseLongOptions, UsageError } from '../util/options.js';
import { defaultOut, runChaos, type ChaosOptions } from './run.js';

const usage = `usage: npm run chaos -- [options]
  --nodes 3|5            cluster size (default 3)
  --time SECONDS         length of the fault phase (default 60)
  --nemesis LIST         comma-separated: ${nemesisKinds.join(',')} (default all)
  --seed N               seed of the fault schedule and the workload (default: random)
  --clients N            concurrent clients (default 8)
  --out DIR              report directory (default results/chaos-<timestamp>)
  --planted-bug stale-reads
                         reads with ?consistency=stale, recorded as linearizable, while a node is cut off:
                         the run must report a linearizability violation`;

function parseArgs(argv: readonly string[]): ChaosOptions {
  const { values, int } = parseLongOptions(argv, [
    '--nodes',
    '--time',
    '--nemesis',
    '--seed',
    '--clients',
    '--out',
    '--planted-bug',
  ]);
  const nodes = int('--nodes', 3, 3, 5);
  if (nodes !== 3 && nodes !== 5) throw new UsageError(`--nodes: 3 or 5, got ${nodes}`);
  const nemeses = (values.get('--nemesis') ?? nemesisKinds.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const n of nemeses) {
    if (!(nemesisKinds as readonly string[]).includes(n)) {
      throw new UsageError(`--nemesis: unknown ${JSON.stringify(n)}; known: ${nemesisKinds.join(', ')}`);
    }
  }
  const planted = values.get('--planted-bug');
  if (planted !== undefined && planted !== 'stale-reads') {
    throw new UsageError(`--planted-bug: only stale-reads is known, got ${planted}`);
  }
  return {
    nodes,
    timeSeconds: int('--time', 60, 1, 86_400),
    nemeses: nemeses as NemesisKind[],
    seed: int('--seed', Math.floor(Math.random() * 1_000_000), 0, 2 ** 31 - 1),
    clients: int('--clients', 8, 1, 256),
    out: values.get('--out') ?? defaultOut(),
    ...(planted === undefined ? {} : { plantedBug: 'stale-reads' as const }),
  };
}

async function main(): Promise<number> {
  let options: ChaosOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    if (e.message !== '') process.stderr.write(`chaos: ${e.message}\n`);
    process.stderr.write(usage + '\n');
    return e.message === '' ? 0 : 2;
  }
  // Children are SIGKILLed on exit (see cluster.ts); make Ctrl-C an exit.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`chaos: ${signal}, stopping every node\n`);
      process.exit(130);
    });
  }
  const started = new Date();
  const log = (line: string) =>
    process.stdout.write(`[${((Date.now() - started.getTime()) / 1000).toFixed(1)}s] ${line}\n`);
  log(`seed ${options.seed}; report in ${options.out}`);
  const result = await runChaos({ ...options, log });
  process.stdout.write(result.summary + '\n');
  return result.verdict.passed ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`chaos: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
