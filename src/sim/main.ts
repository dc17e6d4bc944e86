// `npm run sim -- --seed 42 --nodes 5 --verbose`: run (or replay) one simulated cluster and watch it.

import { parseArgs } from 'node:util';
import { Simulator, defaultFaults } from './cluster.js';

function main(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      seed: { type: 'string', default: '1' },
      seeds: { type: 'string', default: '1' },
      nodes: { type: 'string', default: '3' },
      rounds: { type: 'string', default: '1500' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'usage: npm run sim -- [--seed N] [--seeds COUNT] [--nodes K] [--rounds R] [--verbose]\n' +
        'Runs COUNT simulations from seed N with K nodes; --verbose prints every event of the run.\n',
    );
    return 0;
  }
  const numbers = ['seed', 'seeds', 'nodes', 'rounds'] as const;
  for (const name of numbers) {
    if (!/^\d+$/.test(values[name])) {
      process.stderr.write(`sim: --${name} must be a whole number, got ${JSON.stringify(values[name])}\n`);
      return 2;
    }
  }
  const first = Number(values.seed);
  for (let seed = first; seed < first + Number(values.seeds); seed++) {
    try {
      const result = new Simulator({
        seed,
        nodes: Number(values.nodes),
        faultRounds: Number(values.rounds),
        calmRounds: Number(values.rounds),
        faults: defaultFaults,
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
