import { describe, expect, it } from 'vitest';
import {
  Simulator,
  defaultFaults,
  defaultMembershipPool,
  membershipFaults,
  type SimOptions,
  type SimResult,
} from './cluster.js';

// A failing seed is printed in the error with the command that replays it, e.g.
// `npm run sim -- --seed N --nodes K --verbose` (or with `--membership` for the membership runs).
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

describe('membership changes under faults (thesis chapter 4)', () => {
  // Leaders are asked for random changes among the ids n1..n7 (add learners, promote, remove voters and learners,
  // the leader included, replace two voters at once, invalid ones) and for leadership transfers, interleaved with
  // the faults above; the membership checks of cluster.ts run after every event.
  const membership = (seed: number, nodes: number) =>
    run(seed, nodes, { pool: defaultMembershipPool, faults: membershipFaults });

  function tally(results: SimResult[]) {
    const outcomes: Record<string, number> = {};
    let configs = 0;
    let acknowledged = 0;
    let installs = 0;
    let small = 0;
    for (const r of results) {
      for (const [k, v] of Object.entries(r.confChanges)) outcomes[k] = (outcomes[k] ?? 0) + v;
      configs += r.configsCommitted;
      acknowledged += r.acknowledged;
      installs += r.snapshotsInstalled;
      if (r.finalVoters.length < 3) small++;
    }
    return { outcomes, configs, acknowledged, installs, small };
  }

  it(`3 voters among 7 ids, ${seeds} seeds`, () => {
    const results: SimResult[] = [];
    for (let seed = 1; seed <= seeds; seed++) results.push(membership(seed + 300_000, 3));
    const t = tally(results);
    // The runs must change the configuration a lot, meet every kind of refusal, and still commit, or the checks
    // proved little.
    expect(t.configs).toBeGreaterThan(seeds * 20);
    expect(t.outcomes['ok'] ?? 0).toBeGreaterThan(seeds * 15);
    for (const reason of ['pending', 'invalid', 'no_quorum', 'transferring']) {
      expect(t.outcomes[reason] ?? 0).toBeGreaterThan(0);
    }
    expect(t.acknowledged).toBeGreaterThan(seeds * 50);
    expect(t.installs).toBeGreaterThan(seeds);
    // Most runs end with three voters or more; a few go below on purpose.
    expect(t.small).toBeLessThan(seeds / 3);
  });

  it(`5 voters among 7 ids, ${Math.ceil(seeds / 3)} seeds`, () => {
    const results: SimResult[] = [];
    for (let seed = 1; seed <= Math.ceil(seeds / 3); seed++) results.push(membership(seed + 400_000, 5));
    expect(tally(results).configs).toBeGreaterThan(seeds * 5);
  });

  it('a membership seed replays exactly', () => {
    expect(membership(4343, 3)).toEqual(membership(4343, 3));
  });
});
