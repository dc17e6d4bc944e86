// Durable storage with real processes: kill -9 of every node at once loses no acknowledged write; followers that
// fell behind a compacted log, or lost their data directory, catch up through InstallSnapshot.

import { afterEach, describe, expect, it } from 'vitest';
import { request } from './helpers/http.js';
import { ProcessCluster } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

let cluster: ProcessCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/** Writes keys from `clients` concurrent loops until `stop()`; returns every write that was acknowledged. */
function writeLoad(c: ProcessCluster, prefix: string, clients = 8) {
  const acknowledged = new Map<string, string>();
  let running = true;
  const loops = Array.from({ length: clients }, async (_, w) => {
    let leader: string | undefined;
    for (let i = 0; running; i++) {
      const key = `${prefix}-${w}-${i}`;
      const value = `v${i}`;
      try {
        leader ??= await c.waitForLeader(5000);
        const res = await request('PUT', `${c.url(leader)}/kv/${key}`, { value }, 2000);
        if (res.status === 200) acknowledged.set(key, value);
        else leader = undefined;
      } catch {
        // Refused or cut off by the kill: not acknowledged, so it may or may not be there.
        leader = undefined;
      }
    }
  });
  return {
    acknowledged,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

async function expectAllReadable(c: ProcessCluster, writes: ReadonlyMap<string, string>): Promise<void> {
  const leader = await c.waitForLeader();
  // Wait for the new leader to apply everything committed before the crash, then read its applied state.
  await request('PUT', `${c.url(leader)}/kv/barrier`, { value: '' });
  const missing: string[] = [];
  for (const [key, value] of writes) {
    const res = await request('GET', `${c.url(leader)}/kv/${key}?consistency=stale`);
    if (res.status !== 200 || (res.body as { value: string }).value !== value) missing.push(key);
  }
  expect(missing).toEqual([]);
}

describe('durable storage (--data-dir) with real processes', () => {
  it('kill -9 of every node at once under write load loses no acknowledged write, again and again', async () => {
    cluster = await ProcessCluster.start(
      3,
      { snapshot_threshold_entries: 200, snapshot_retain_entries: 50 },
      {
        durable: true,
      },
    );
    const c = cluster;
    await c.waitForLeader();
    const all = new Map<string, string>();
    for (let round = 0; round < 3; round++) {
      const load = writeLoad(c, `r${round}`);
      await waitFor('some writes acknowledged', () => load.acknowledged.size >= 300);
      await Promise.all(c.ids.map((id) => c.kill(id, 'SIGKILL')));
      await load.stop();
      for (const [k, v] of load.acknowledged) all.set(k, v);
      for (const id of c.ids) c.startNode(id);
      await expectAllReadable(c, all);
    }
    expect(all.size).toBeGreaterThanOrEqual(900);
  });

  it('a follower that was down while the leader compacted its log catches up by snapshot', async () => {
    cluster = await ProcessCluster.start(
      3,
      { snapshot_threshold_entries: 50, snapshot_retain_entries: 10 },
      {
        durable: true,
      },
    );
    const c = cluster;
    const leader = await c.waitForLeader();
    const lagging = c.ids.find((id) => id !== leader)!;
    await c.kill(lagging, 'SIGKILL');
    const writes = new Map<string, string>();
    for (let i = 0; i < 300; i++) {
      const res = await request('PUT', `${c.url(leader)}/kv/k${i}`, { value: `v${i}` });
      expect(res.status).toBe(200);
      writes.set(`k${i}`, `v${i}`);
    }
    // The leader's log stays bounded: it snapshotted and dropped all but the retained tail.
    const compacted = await c.status(leader);
    expect(compacted.snapshotIndex).toBeGreaterThanOrEqual(250);
    expect(compacted.lastLogIndex - compacted.firstLogIndex).toBeLessThan(120);
    c.startNode(lagging);
    const target = (await c.status(leader)).commitIndex;
    await waitFor(
      `${lagging} to catch up to ${target}`,
      async () => (await c.status(lagging)).lastApplied >= target,
    );
    expect(c.logs.get(lagging)?.join('')).toContain('installed a snapshot');
    for (const [key, value] of writes) {
      const res = await request('GET', `${c.url(lagging)}/kv/${key}?consistency=stale`);
      expect(res.body, key).toMatchObject({ value });
    }
  });

  it('a node whose data directory was wiped rejoins and gets everything by snapshot', async () => {
    cluster = await ProcessCluster.start(
      3,
      { snapshot_threshold_entries: 50, snapshot_retain_entries: 10 },
      {
        durable: true,
      },
    );
    const c = cluster;
    const leader = await c.waitForLeader();
    for (let i = 0; i < 200; i++) await request('PUT', `${c.url(leader)}/kv/w${i}`, { value: `${i}` });
    const victim = c.ids.find((id) => id !== leader)!;
    await c.kill(victim, 'SIGKILL');
    await c.wipe(victim);
    c.startNode(victim);
    const target = (await c.status(leader)).commitIndex;
    await waitFor(`${victim} to catch up`, async () => (await c.status(victim)).lastApplied >= target);
    const res = await request('GET', `${c.url(victim)}/kv/w199?consistency=stale`);
    expect(res.body).toMatchObject({ value: '199' });
  });
});
