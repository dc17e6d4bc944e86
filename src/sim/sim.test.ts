import { describe, expect, it } from 'vitest';
import { Simulator, defaultFaults, type SimOptions } from './cluster.js';

// A failing seed is printed in the error; replay it with `npm run sim -- --seed N --nodes K --verbose`.
const seeds = Number(process.env.SIM_SEEDS ?? 150);

function run(seed: number, nodes: number, overrides: Partial<SimOptions> = {}) {
  return new Simulator({
    seed,
    nodes,
    faultRounds: 1500,
    calmRounds: 1500,
    faults: defaultFaults,
    ...overrides,
  }).run();
}

describe('simulated cluster under faults keeps Figure 3 safety properties and recovers', () => {
  it(`3 nodes, ${seeds} seeds`, () => {
    let acknowledged = 0;
    let reads = 0;
    let installs = 0;
    for (let seed = 1; seed <= seeds; seed++) {
      const result = run(seed, 3);
      acknowledged += result.acknowledged;
      reads += result.readsConfirmed;
      installs += result.snapshotsInstalled;
    }
    // The runs must actually commit client commands, confirm reads and ship snapshots, or the checks proved nothing.
    expect(acknowledged).toBeGreaterThan(seeds * 50);
    expect(reads).toBeGreaterThan(seeds * 20);
    expect(installs).toBeGreaterThan(seeds / 5);
  });

  it(`5 nodes, ${seeds} seeds`, () => {
    let acknowledged = 0;
    for (let seed = 1; seed <= seeds; seed++) acknowledged += run(seed + 100_000, 5).acknowledged;
    expect(acknowledged).toBeGreaterThan(seeds * 50);
  });

  it('a seed replays exactly', () => {
    const a = run(4242, 5);
    const b = run(4242, 5);
    expect(b).toEqual(a);
  });

  it('heavy faults: frequent crashes and partitions', () => {
    const faults = {
      ...defaultFaults,
      crash: 0.02,
      partition: 0.05,
      loss: 0.2,
      duplicate: 0.1,
      maxDelay: 10,
    };
    for (let seed = 1; seed <= Math.ceil(seeds / 3); seed++) run(seed + 200_000, 5, { faults });
  });
});
