// A follower with a client waiting must hear of a new commit index at once (the leader marks it with wantCommit),
// not with the next heartbeat, which here comes only every two seconds. Three real nodes in this process.

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseClusterConfig } from '../src/config/load.js';
import { startNode, type RunningNode } from '../src/node/start.js';
import { writeTestConfig } from './helpers/config.js';
import { request } from './helpers/http.js';
import { waitFor } from './helpers/wait.js';

const heartbeatMs = 2000;
const nodes: RunningNode[] = [];
let leader: RunningNode;
let follower: RunningNode;

beforeAll(async () => {
  const files = await writeTestConfig(3, {
    heartbeat_interval_ms: heartbeatMs,
    election_timeout_min_ms: 5000,
    election_timeout_max_ms: 6000,
    request_timeout_ms: 10_000,
  });
  const config = parseClusterConfig(files.yaml, files.configPath);
  for (const id of files.ids) {
    nodes.push(await startNode({ config, nodeId: id, logger: pino({ level: 'silent' }) }));
  }
  await waitFor('a leader', () => nodes.some((n) => n.node.status().role === 'leader'), 15_000);
  leader = nodes.find((n) => n.node.status().role === 'leader')!;
  follower = nodes.find((n) => n !== leader)!;
  await waitFor('the follower to know the leader', () => follower.node.status().leader === leader.node.id);
}, 30_000);

afterAll(async () => {
  for (const n of nodes) await n.close();
});

describe('commit notices to followers with clients waiting', () => {
  // Five requests one after another: were the follower to wait for heartbeats, they would take about four
  // heartbeat intervals; told at once, they take milliseconds. The bound is one interval for all five.
  const rounds = 5;

  it('writes through a follower do not wait for heartbeats', async () => {
    const started = performance.now();
    for (let i = 0; i < rounds; i++) {
      const res = await request('PUT', `${follower.webUrl}/kv/through-follower-${i}`, { value: String(i) });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-rafting-served-by')).toBe(follower.node.id);
    }
    expect(performance.now() - started).toBeLessThan(heartbeatMs);
  }, 30_000);

  // The read index's own round of heartbeats (thesis §6.4) carries the commit index too; `?for=` on the read-index
  // call makes sure of it whatever the round did. Either way the follower must not wait for a periodic heartbeat.
  it('linearizable reads on a follower of writes just made on the leader do not wait for heartbeats', async () => {
    const started = performance.now();
    for (let i = 0; i < rounds; i++) {
      expect((await request('PUT', `${leader.webUrl}/kv/via-leader-${i}`, { value: String(i) })).status).toBe(
        200,
      );
      const read = await request('GET', `${follower.webUrl}/kv/via-leader-${i}`);
      expect(read.status).toBe(200);
      expect(read.body).toMatchObject({ value: String(i) });
      expect(read.headers.get('x-rafting-served-by')).toBe(follower.node.id);
    }
    expect(performance.now() - started).toBeLessThan(heartbeatMs);
  }, 30_000);
});
