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

  it('any node serves every request: a follower passes writes to the leader and answers once it applied them', async () => {
    const leader = await cluster.waitForLeader();
    const follower = followersOf(leader)[0]!;
    const put = await request('PUT', `${cluster.url(follower)}/kv/via-follower`, { value: 'ok' });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ key: 'via-follower', value: 'ok' });
    // The follower answered from its own state machine: it has applied the write.
    expect(put.headers.get('x-rafting-served-by')).toBe(follower);
    const stale = await request('GET', `${cluster.url(follower)}/kv/via-follower?consistency=stale`);
    expect(stale.body).toMatchObject({ value: 'ok', index: (put.body as { index: number }).index });
    expect(put.headers.get('x-rafting-leader')).toBe(leader);
    const del = await request('DELETE', `${cluster.url(follower)}/kv/via-follower`);
    expect(del.body).toMatchObject({ deleted: true });
    const cmd = await request('POST', `${cluster.url(follower)}/command`, { key: 'seed', value: 's' });
    expect(cmd.status).toBe(200);
  });

  it('a follower answers linearizable reads itself, after the leader confirms the read index', async () => {
    const leader = await cluster.waitForLeader();
    const follower = followersOf(leader)[0]!;
    const put = await request('PUT', `${cluster.url(leader)}/kv/fresh`, { value: 'v1' });
    // Right after the write is acknowledged, a linearizable read on any follower must see it.
    const res = await request('GET', `${cluster.url(follower)}/kv/fresh`);
    expect(res.body).toEqual({ key: 'fresh', value: 'v1', index: (put.body as { index: number }).index });
    expect(res.headers.get('x-rafting-served-by')).toBe(follower);
    const lease = await request('GET', `${cluster.url(leader)}/kv/fresh?consistency=lease`);
    expect(lease.body).toMatchObject({ value: 'v1' });
    const stale = await request('GET', `${cluster.url(follower)}/kv/fresh?consistency=stale`);
    expect(Number(stale.headers.get('x-rafting-applied-index'))).toBeGreaterThan(0);
  });

  it('?redirect=true keeps the 307 to the leader for clients that prefer to talk to it', async () => {
    const leader = await cluster.waitForLeader();
    const follower = followersOf(leader)[0]!;
    for (const [method, path, body] of [
      ['PUT', '/kv/x?redirect=true', { value: '1' }],
      ['DELETE', '/kv/x?redirect=true', undefined],
      ['GET', '/kv/x?redirect=true', undefined],
    ] as const) {
      const res = await request(method, `${cluster.url(follower)}${path}`, body);
      expect(res.status, `${method} ${path}`).toBe(307);
      expect(res.headers.get('location')).toBe(`${cluster.url(leader)}${path}`);
    }
  });

  it('compare-and-set: a write applies only while its condition holds, else 409 with the current value', async () => {
    const leader = await cluster.waitForLeader();
    const url = cluster.url(followersOf(leader)[0]!);
    const created = await request('PUT', `${url}/kv/cas`, { value: 'a', prevIndex: 0 });
    expect(created.status).toBe(200);
    const again = await request('PUT', `${url}/kv/cas`, { value: 'b', prevIndex: 0 });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({
      error: { code: 'condition_failed' },
      current: { key: 'cas', value: 'a' },
    });
    expect((await request('PUT', `${url}/kv/cas`, { value: 'b', prevValue: 'a' })).status).toBe(200);
    expect((await request('DELETE', `${url}/kv/cas?prevValue=a`)).status).toBe(409);
    expect((await request('DELETE', `${url}/kv/cas?prevValue=b`)).body).toMatchObject({ deleted: true });
  });

  it('a retried write with the same Idempotency-Key is applied once, and the retry says so', async () => {
    const leader = await cluster.waitForLeader();
    const url = cluster.url(followersOf(leader)[0]!);
    const send = (value: string) =>
      fetch(`${url}/kv/counter`, {
        method: 'PUT',
        body: JSON.stringify({ value }),
        headers: { 'content-type': 'application/json', 'idempotency-key': 'req-42' },
      });
    const first = await send('1');
    const retry = await send('1');
    expect(await retry.json()).toEqual(await first.json());
    expect(retry.headers.get('idempotency-replayed')).toBe('true');
    // A different request under the same key is answered with the first result and changes nothing.
    const other = await send('2');
    expect(other.headers.get('idempotency-replayed')).toBe('true');
    expect((await request('GET', `${url}/kv/counter`)).body).toMatchObject({ value: '1' });
  });

  it('leadership transfer: POST /cluster/leader answers once the target leads', async () => {
    const leader = await cluster.waitForLeader();
    const target = followersOf(leader)[1]!;
    const res = await request('POST', `${cluster.url(followersOf(leader)[0]!)}/cluster/leader`, {
      to: target,
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ leader: target });
    expect(await cluster.waitForLeader()).toBe(target);
    expect((await request('POST', `${cluster.url(target)}/cluster/leader`, { to: 'nobody' })).status).toBe(
      400,
    );
    // Exactly-once survives the leader change: the retry of an earlier request is still answered from the table.
    const retry = await fetch(`${cluster.url(target)}/kv/counter`, {
      method: 'PUT',
      body: JSON.stringify({ value: '3' }),
      headers: { 'content-type': 'application/json', 'idempotency-key': 'req-42' },
    });
    expect(retry.headers.get('idempotency-replayed')).toBe('true');
    expect(await retry.json()).toMatchObject({ value: '1' });
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
