// Three real nodes started with bin/rafting on loopback: every REST call, redirects, failover and catch-up.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from './helpers/http.js';
import { ProcessCluster } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await ProcessCluster.start(3, { request_timeout_ms: 1500 });
  await cluster.waitForLeader();
});

afterAll(async () => {
  await cluster?.stop();
});

const followersOf = (leader: string) => cluster.running().filter((id) => id !== leader);

describe('a three-node cluster of real processes', () => {
  it('elects one leader that every node knows', async () => {
    const leader = await cluster.waitForLeader();
    const statuses = await Promise.all(cluster.ids.map((id) => cluster.status(id)));
    expect(statuses.filter((s) => s.role === 'leader').map((s) => s.id)).toEqual([leader]);
    for (const s of statuses) expect(s.leader).toBe(leader);
  });

  it('replicates writes made on the leader; every node serves them with ?consistency=stale', async () => {
    const leader = await cluster.waitForLeader();
    const put = await request('PUT', `${cluster.url(leader)}/kv/color`, { value: 'blue' });
    expect(put.status).toBe(200);
    const { index } = put.body as { index: number };
    for (const id of cluster.ids) {
      const got = await waitFor(`${id} to apply index ${index}`, async () => {
        const res = await request('GET', `${cluster.url(id)}/kv/color?consistency=stale`);
        return res.status === 200 ? res.body : undefined;
      });
      expect(got).toEqual({ key: 'color', value: 'blue', index });
    }
  });

  it('a follower redirects writes and linearizable reads to the leader with 307 and Location', async () => {
    const leader = await cluster.waitForLeader();
    const follower = followersOf(leader)[0]!;
    for (const [method, path, body] of [
      ['PUT', '/kv/x', { value: '1' }],
      ['DELETE', '/kv/x', undefined],
      ['GET', '/kv/x', undefined],
      ['POST', '/command', { key: 'x', value: '1' }],
    ] as const) {
      const res = await request(method, `${cluster.url(follower)}${path}`, body);
      expect(res.status, `${method} ${path}`).toBe(307);
      expect(res.headers.get('location')).toBe(`${cluster.url(leader)}${path}`);
      expect(res.body).toMatchObject({ error: { code: 'not_leader' } });
    }
  });

  it('fetch following the redirect (like curl -L) just works from any node', async () => {
    const leader = await cluster.waitForLeader();
    const follower = followersOf(leader)[0]!;
    const put = await fetch(`${cluster.url(follower)}/kv/via-follower`, {
      method: 'PUT',
      body: JSON.stringify({ value: 'ok' }),
      headers: { 'content-type': 'application/json' },
    });
    expect(put.status).toBe(200);
    const get = await fetch(`${cluster.url(follower)}/kv/via-follower`);
    expect(await get.json()).toMatchObject({ value: 'ok' });
  });

  it('the delete path works end to end', async () => {
    const leader = await cluster.waitForLeader();
    await request('PUT', `${cluster.url(leader)}/kv/temp`, { value: 't' });
    const del = await request('DELETE', `${cluster.url(leader)}/kv/temp`);
    expect(del.body).toMatchObject({ key: 'temp', deleted: true });
    expect((await request('GET', `${cluster.url(leader)}/kv/temp`)).status).toBe(404);
  });

  it('after kill -9 of the leader another node leads and takes writes; the old one rejoins and catches up', async () => {
    const oldLeader = await cluster.waitForLeader();
    const before = await request('PUT', `${cluster.url(oldLeader)}/kv/before`, { value: 'b' });
    expect(before.status).toBe(200);

    await cluster.kill(oldLeader, 'SIGKILL');
    const newLeader = await cluster.waitForLeader(10_000);
    expect(newLeader).not.toBe(oldLeader);
    const after = await request('PUT', `${cluster.url(newLeader)}/kv/after`, { value: 'a' });
    expect(after.status).toBe(200);
    expect((await request('GET', `${cluster.url(newLeader)}/kv/before`)).body).toMatchObject({ value: 'b' });

    // The old leader comes back empty (in-memory storage) and gets the whole log from the new leader.
    cluster.startNode(oldLeader);
    const leaderStatus = await cluster.status(newLeader);
    await waitFor(`${oldLeader} to catch up to index ${leaderStatus.commitIndex}`, async () => {
      const s = await cluster.status(oldLeader);
      return s.lastApplied >= leaderStatus.commitIndex && s.leader === newLeader;
    });
    for (const key of ['before', 'after', 'color']) {
      const res = await request('GET', `${cluster.url(oldLeader)}/kv/${key}?consistency=stale`);
      expect(res.status, key).toBe(200);
    }
  });

  it('without a majority: no leader means 503 with Retry-After; an unreachable majority means 504', async () => {
    const leader = await cluster.waitForLeader();
    const [a, b] = followersOf(leader);
    await cluster.kill(a!, 'SIGKILL');
    await cluster.kill(b!, 'SIGKILL');
    // The leader cannot commit anything now: the outcome is unknown when the request times out.
    const put = await request('PUT', `${cluster.url(leader)}/kv/lonely`, { value: '1' });
    expect(put.status).toBe(504);
    expect(put.body).toMatchObject({ error: { code: 'timeout' } });

    // Restart one follower: it knows no leader until an election (which the lone old leader's stale log may
    // delay), and a node that knows no leader answers 503 with Retry-After.
    await cluster.kill(leader, 'SIGKILL');
    cluster.startNode(a!);
    const res = await waitFor(`${a} to answer`, async () => {
      try {
        return await request('PUT', `${cluster.url(a!)}/kv/nobody`, { value: '1' });
      } catch {
        return undefined;
      }
    });
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ error: { code: 'no_leader' } });
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });
});
