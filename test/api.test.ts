// The REST API of one real node (a single-node cluster is its own majority), including every bad-input case.
// Multi-node behaviour (redirects, failover) is in cluster.test.ts with real processes.

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseClusterConfig } from '../src/config/load.js';
import { startNode, type RunningNode } from '../src/node/start.js';
import { writeTestConfig } from './helpers/config.js';
import { request } from './helpers/http.js';
import { waitFor } from './helpers/wait.js';

let running: RunningNode;
let base: string;

beforeAll(async () => {
  const files = await writeTestConfig(1, { max_key_bytes: 64, max_value_bytes: 1000 });
  const config = parseClusterConfig(files.yaml, files.configPath);
  running = await startNode({ config, nodeId: 'node1', logger: pino({ level: 'silent' }) });
  base = running.webUrl;
  await waitFor('node1 to lead', () => running.node.status().role === 'leader');
});

afterAll(async () => {
  await running?.close();
});

function expectError(res: { status: number; body: unknown }, status: number, code: string): void {
  expect(res.status).toBe(status);
  expect(res.body).toMatchObject({ error: { code, message: expect.any(String) } });
}

describe('REST API', () => {
  it('PUT /kv/{key} answers once committed and applied, with the index that changed the key', async () => {
    const put = await request('PUT', `${base}/kv/alpha`, { value: '1' });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({ key: 'alpha', value: '1', index: expect.any(Number) });
    const index = (put.body as { index: number }).index;
    expect(running.node.status().lastApplied).toBeGreaterThanOrEqual(index);

    const get = await request('GET', `${base}/kv/alpha`);
    expect(get.body).toEqual({ key: 'alpha', value: '1', index });
    const stale = await request('GET', `${base}/kv/alpha?consistency=stale`);
    expect(stale.body).toEqual({ key: 'alpha', value: '1', index });
  });

  it('POST /command, the seed project’s call, writes like PUT', async () => {
    const res = await request('POST', `${base}/command`, { key: 'a', value: 'from-seed' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ key: 'a', value: 'from-seed' });
    expect((await request('GET', `${base}/kv/a`)).body).toMatchObject({ value: 'from-seed' });
  });

  it('accepts a JSON body sent without a JSON content type (curl -d)', async () => {
    const res = await fetch(`${base}/kv/plain`, { method: 'PUT', body: '{"value":"x"}' });
    expect(res.status).toBe(200);
  });

  it('keys may hold slashes and any Unicode; values may be empty', async () => {
    const key = 'dir/sub/ключ 🔑';
    const put = await request('PUT', `${base}/kv/${encodeURIComponent(key)}`, { value: '' });
    expect(put.body).toMatchObject({ key, value: '' });
    const slashes = await request('PUT', `${base}/kv/a/b/c`, { value: 'v' });
    expect(slashes.body).toMatchObject({ key: 'a/b/c' });
    expect((await request('GET', `${base}/kv/a/b/c`)).body).toMatchObject({ value: 'v' });
  });

  it('DELETE /kv/{key} reports whether the key existed', async () => {
    await request('PUT', `${base}/kv/gone`, { value: 'x' });
    const first = await request('DELETE', `${base}/kv/gone`);
    expect(first.body).toEqual({ key: 'gone', deleted: true, index: expect.any(Number) });
    const second = await request('DELETE', `${base}/kv/gone`);
    expect(second.body).toMatchObject({ key: 'gone', deleted: false });
    expectError(await request('GET', `${base}/kv/gone`), 404, 'key_not_found');
  });

  it('a later write to a key replaces it and moves its index forward', async () => {
    const a = (await request('PUT', `${base}/kv/k`, { value: '1' })).body as { index: number };
    const b = (await request('PUT', `${base}/kv/k`, { value: '2' })).body as { index: number };
    expect(b.index).toBeGreaterThan(a.index);
    expect((await request('GET', `${base}/kv/k`)).body).toEqual({ key: 'k', value: '2', index: b.index });
  });

  it('concurrent writes all apply, in one order', async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => request('PUT', `${base}/kv/c${i % 10}`, { value: String(i) })),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    const indexes = results.map((r) => (r.body as { index: number }).index);
    expect(new Set(indexes).size).toBe(200);
  });

  it('compare-and-set: 409 carries the current value and index; prevIndex 0 means "must not exist"', async () => {
    const created = await request('PUT', `${base}/kv/cas`, { value: 'a', prevIndex: 0 });
    expect(created.status).toBe(200);
    const index = (created.body as { index: number }).index;
    const refused = await request('PUT', `${base}/kv/cas`, { value: 'b', prevIndex: index + 100 });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({
      error: { code: 'condition_failed', message: expect.any(String) },
      current: { key: 'cas', value: 'a', index },
    });
    expect((await request('PUT', `${base}/kv/cas`, { value: 'b', prevIndex: index })).status).toBe(200);
    expect((await request('DELETE', `${base}/kv/cas?prevIndex=${index}`)).status).toBe(409);
    const gone = await request('DELETE', `${base}/kv/cas`, { prevValue: 'b' });
    expect(gone.body).toMatchObject({ deleted: true });
    expect((await request('PUT', `${base}/kv/cas`, { value: 'x', prevValue: 'b' })).body).toMatchObject({
      current: null,
    });
  });

  it('reads at every consistency level, and says which index they saw', async () => {
    const put = await request('PUT', `${base}/kv/levels`, { value: 'v' });
    const index = (put.body as { index: number }).index;
    for (const level of ['linearizable', 'lease', 'stale']) {
      const res = await request('GET', `${base}/kv/levels?consistency=${level}`);
      expect(res.body, level).toMatchObject({ value: 'v' });
      expect(Number(res.headers.get('x-rafting-applied-index'))).toBeGreaterThanOrEqual(index);
      expect(res.headers.get('x-rafting-served-by')).toBe('node1');
    }
  });

  it('a linearizable read writes nothing to the log (ReadIndex)', async () => {
    const before = running.node.status().lastLogIndex;
    for (let i = 0; i < 5; i++) await request('GET', `${base}/kv/levels`);
    expect(running.node.status().lastLogIndex).toBe(before);
  });

  it('GET /status describes the node', async () => {
    const res = await request('GET', `${base}/status`);
    expect(res.body).toEqual({
      id: 'node1',
      role: 'leader',
      term: expect.any(Number),
      leader: 'node1',
      commitIndex: expect.any(Number),
      lastApplied: expect.any(Number),
      lastLogIndex: expect.any(Number),
      firstLogIndex: 1,
      snapshotIndex: 0,
      config: { index: 0, voters: ['node1'], learners: [], outgoing: [], joint: false },
      peers: [],
    });
  });

  it('GET /metrics: Prometheus text; a node keeping its state in memory has no WAL series', async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toContain('rafting_is_leader{node="node1"} 1\n');
    expect(text).toContain(`rafting_commit_index{node="node1"} ${running.node.status().commitIndex}\n`);
    expect(text).toContain('# TYPE rafting_leader_changes_seen_total counter\n');
    expect(text).not.toContain('rafting_wal_');
  });
});

describe('REST API: bad input gets a JSON error with an honest status', () => {
  it('400 for a body that is not JSON', async () => {
    expectError(await request('PUT', `${base}/kv/x`, '{"value":'), 400, 'invalid_json');
  });
  it('400 for a body that is not an object', async () => {
    expectError(await request('PUT', `${base}/kv/x`, '[1,2]'), 400, 'invalid_body');
  });
  it('400 for a missing or non-string value', async () => {
    expectError(await request('PUT', `${base}/kv/x`, {}), 400, 'invalid_value');
    expectError(await request('PUT', `${base}/kv/x`, { value: 5 }), 400, 'invalid_value');
  });
  it('400 for an empty key', async () => {
    expectError(await request('PUT', `${base}/kv/`, { value: '1' }), 400, 'invalid_key');
    expectError(await request('GET', `${base}/kv/`), 400, 'invalid_key');
  });
  it('400 for POST /command without a string key', async () => {
    expectError(await request('POST', `${base}/command`, { value: '1' }), 400, 'invalid_key');
    expectError(await request('POST', `${base}/command`, { key: 1, value: '1' }), 400, 'invalid_key');
  });
  it('400 for an unknown consistency level', async () => {
    const res = await request('GET', `${base}/kv/alpha?consistency=eventual`);
    expectError(res, 400, 'invalid_consistency');
    expect((res.body as { error: { message: string } }).error.message).toContain('eventual');
  });
  it('413 for a key over max_key_bytes (counted in UTF-8 bytes)', async () => {
    expectError(await request('PUT', `${base}/kv/${'k'.repeat(65)}`, { value: '1' }), 413, 'key_too_large');
    expectError(
      await request('PUT', `${base}/kv/${encodeURIComponent('é'.repeat(33))}`, { value: '1' }),
      413,
      'key_too_large',
    );
    expect((await request('PUT', `${base}/kv/${'k'.repeat(64)}`, { value: '1' })).status).toBe(200);
  });
  it('413 for a value over max_value_bytes, and for a body far over any limit', async () => {
    expectError(await request('PUT', `${base}/kv/v`, { value: 'x'.repeat(1001) }), 413, 'value_too_large');
    expect((await request('PUT', `${base}/kv/v`, { value: 'x'.repeat(1000) })).status).toBe(200);
    expectError(await request('PUT', `${base}/kv/v`, { value: 'x'.repeat(100_000) }), 413, 'too_large');
  });
  it('404 for an unknown route or key', async () => {
    expectError(await request('GET', `${base}/nope`), 404, 'not_found');
    expectError(await request('PATCH', `${base}/kv/x`), 404, 'not_found');
    expectError(await request('GET', `${base}/kv/never-written`), 404, 'key_not_found');
  });
  it('400 for a malformed compare-and-set condition', async () => {
    expectError(await request('PUT', `${base}/kv/c`, { value: '1', prevValue: 5 }), 400, 'invalid_condition');
    expectError(
      await request('PUT', `${base}/kv/c`, { value: '1', prevIndex: -1 }),
      400,
      'invalid_condition',
    );
    expectError(
      await request('PUT', `${base}/kv/c`, { value: '1', prevIndex: 1.5 }),
      400,
      'invalid_condition',
    );
    expectError(
      await request('PUT', `${base}/kv/c`, { value: '1', prevIndex: 0, prevValue: 'x' }),
      400,
      'invalid_condition',
    );
    expectError(await request('DELETE', `${base}/kv/c?prevIndex=abc`), 400, 'invalid_condition');
  });
  it('400 for an Idempotency-Key that is too long', async () => {
    const res = await fetch(`${base}/kv/i`, {
      method: 'PUT',
      body: '{"value":"1"}',
      headers: { 'idempotency-key': 'k'.repeat(129) },
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'invalid_idempotency_key' } });
  });
  it('400 for a leadership transfer to a node that is not a member', async () => {
    expectError(await request('POST', `${base}/cluster/leader`, { to: 'node9' }), 400, 'invalid_target');
    expectError(await request('POST', `${base}/cluster/leader`, {}), 400, 'invalid_target');
  });
  it('the cluster-internal read index: 400 for a malformed "for", a number otherwise', async () => {
    expectError(await request('POST', `${base}/internal/read-index?for=no%20spaces`), 400, 'invalid_member');
    const res = await request('POST', `${base}/internal/read-index?for=node2`);
    expect(res.status).toBe(200);
    expect(typeof (res.body as { index: unknown }).index).toBe('number');
  });
  it('the node keeps serving after all of the above', async () => {
    expect((await request('PUT', `${base}/kv/after`, { value: 'ok' })).status).toBe(200);
  });
});
