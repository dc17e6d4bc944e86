// `npm run sim -- --seed 42 --nodes 5 --verbose`: run (or replay) one simulated cluster and watch it.
// `npm run sim -- --seed 42 --membership --verbose`: the same with membership changes among a pool of 7 node ids.

import { parseArgs } from 'node:util';
import { Simulator, defaultFaults, defaultMembershipPool, membershipFaults } from './cluster.js';

function main(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      seed: { type: 'string', default: '1' },
      seeds: { type: 'string', default: '1' },
      nodes: { type: 'string', default: '3' },
      pool: { type: 'string' },
      rounds: { type: 'string', default: '1500' },
      membership: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'usage: npm run sim -- [--seed N] [--seeds COUNT] [--nodes K] [--rounds R] [--membership [--pool P]] ' +
        '[--verbose]\n' +
        'Runs COUNT simulations from seed N with K nodes; --verbose prints every event of the run.\n' +
        `--membership: leaders are also asked for membership changes and leadership transfers, among the node ids\n` +
        `n1..nP (default ${defaultMembershipPool}); the nodes beyond the first K start as joining nodes.\n`,
    );
    return 0;
  }
  const numbers = ['seed', 'seeds', 'nodes', 'rounds', 'pool'] as const;
  for (const name of numbers) {
    const value = values[name];
    if (value !== undefined && !/^\d+$/.test(value)) {
      process.stderr.write(`sim: --${name} must be a whole number, got ${JSON.stringify(value)}\n`);
      return 2;
    }
  }
  if (values.pool !== undefined && !values.membership) {
    process.stderr.write('sim: --pool needs --membership\n');
    return 2;
  }
  const nodes = Number(values.nodes);
  const pool = values.membership ? Math.max(Number(values.pool ?? defaultMembershipPool), nodes) : nodes;
  const first = Number(values.seed);
  for (let seed = first; seed < first + Number(values.seeds); seed++) {
    try {
      const result = new Simulator({
        seed,
        nodes,
        pool,
        faultRounds: Number(values.rounds),
        calmRounds: Number(values.rounds),
        faults: values.membership ? membershipFaults : defaultFaults,
        ...(values.verbose ? { trace: (line: string) => process.stdout.write(`${line}\n`) } : {}),
      }).run();
      process.stdout.write(`seed ${seed}: ok ${JSON.stringify(result)}\n`);
    } catch (e) {
      process.stdout.write(`seed ${seed}: FAILED\n${e instanceof Error ? e.message : String(e)}\n`);
      return 1;
    }
  }
  return 0;
}

process.exitCode = main(process.argv.slice(2));
