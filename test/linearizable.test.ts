// Concurrent clients against real processes, every request to a random node, while a node is paused with
// SIGSTOP and resumed; the recorded history must be linearizable (checked with src/check).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkHistory, HistoryRecorder, type OpRequest } from '../src/check/index.js';
import { perform } from '../src/chaos/workload.js';
import { SeededRandom } from '../src/raft/random.js';
import { ProcessCluster } from './helpers/processes.js';

let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await ProcessCluster.start(3, { request_timeout_ms: 1500 });
  await cluster.waitForLeader();
});

afterAll(async () => {
  await cluster?.stop();
});

const keys = ['x', 'y', 'z'];

async function client(
  recorder: HistoryRecorder,
  process: number,
  seed: number,
  until: number,
): Promise<void> {
  const rng = new SeededRandom(seed);
  let written = 0;
  while (performance.now() < until) {
    const url = cluster.url(rng.pick(cluster.ids));
    const key = rng.pick(keys);
    const roll = rng.float();
    const value = `${process}-${written++}`;
    const op: OpRequest =
      roll < 0.45
        ? { kind: 'read', key }
        : roll < 0.75
          ? { kind: 'write', key, value }
          : roll < 0.95
            ? {
                kind: 'cas',
                key,
                from: rng.chance(0.2) ? null : `${rng.int(0, 6)}-${rng.int(0, 4)}`,
                to: value,
              }
            : { kind: 'delete', key };
    await perform(recorder, process, url, op, { timeoutMs: 3000, now: () => performance.now() });
  }
}

describe('linearizability under a paused node', () => {
  it('reads, writes, CAS and deletes against random nodes, with SIGSTOP/SIGCONT of a node, are linearizable', async () => {
    const recorder = new HistoryRecorder();
    const start = performance.now();
    const until = start + 6000;
    const clients = Array.from({ length: 6 }, (_, p) => client(recorder, p, 1000 + p, until));
    // Pause the leader (the harshest choice) for a while, then a follower, resuming each.
    const nemesis = (async () => {
      for (const pick of ['leader', 'follower'] as const) {
        const leader = await cluster.waitForLeader();
        const victim = pick === 'leader' ? leader : cluster.ids.find((id) => id !== leader)!;
        cluster.signal(victim, 'SIGSTOP');
        await new Promise((r) => setTimeout(r, 1200)); // the fault's duration, not a wait for a condition
        cluster.signal(victim, 'SIGCONT');
        await cluster.waitForLeader();
      }
    })();
    await Promise.all([...clients, nemesis]);
    const history = recorder.history();
    const completed = history.filter((op) => op.status === 'ok');
    expect(completed.length).toBeGreaterThan(200);
    expect(completed.some((op) => op.kind === 'cas' && op.output === true)).toBe(true);
    const result = checkHistory(history, { timeoutMs: 20_000 });
    if (result.ok !== true) throw new Error(`not linearizable:\n${result.explanation}`);
  });
});
