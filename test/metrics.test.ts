// GET /metrics on three real nodes with durable storage: what each reports agrees with its /status and moves
// with the work it does.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from './helpers/http.js';
import { ProcessCluster } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await ProcessCluster.start(3, {}, { durable: true });
  await cluster.waitForLeader();
});

afterAll(async () => {
  await cluster?.stop();
});

interface Scrape {
  readonly contentType: string | null;
  /** Every sample, by its name and its labels sorted by name (`rafting_role{node="node1",role="leader"}`). */
  readonly samples: Map<string, number>;
  /** The types the `# TYPE` lines declare. */
  readonly types: Map<string, string>;
}

async function scrape(id: string): Promise<Scrape> {
  const res = await fetch(`${cluster.url(id)}/metrics`, { signal: AbortSignal.timeout(10_000) });
  expect(res.status).toBe(200);
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  const helps = new Set<string>();
  for (const line of (await res.text()).split('\n')) {
    if (line === '') continue;
    const help = /^# HELP (\S+) \S/.exec(line);
    if (help !== null) {
      helps.add(help[1]!);
      continue;
    }
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type !== null) {
      // Every family is declared once, after its help text: Prometheus rejects a family declared twice.
      expect(types.has(type[1]!), `${type[1]!} declared twice`).toBe(false);
      expect(helps.has(type[1]!), `${type[1]!} has no HELP`).toBe(true);
      types.set(type[1]!, type[2]!);
      continue;
    }
    const sample = /^(\S+) (\S+)$/.exec(line);
    if (sample === null) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`);
    const key = canonical(sample[1]!);
    expect(samples.has(key), `duplicate series ${key}`).toBe(false);
    samples.set(key, Number(sample[2]));
  }
  return { contentType: res.headers.get('content-type'), samples, types };
}

/** A series name with its labels in name order: the exposition format leaves their order to the writer. */
function canonical(series: string): string {
  const m = /^([^{]+)\{(.*)\}$/.exec(series);
  if (m === null) return series;
  const labels = m[2]!.split(/,(?=[a-zA-Z_]\w*=")/).sort();
  return `${m[1]!}{${labels.join(',')}}`;
}

/** The value of a node's series; fails the test when the series is missing. */
function value(s: Scrape, id: string, name: string, labels = ''): number {
  const key = canonical(`${name}{node="${id}"${labels === '' ? '' : `,${labels}`}}`);
  const v = s.samples.get(key);
  if (v === undefined) throw new Error(`no series ${key}; have ${[...s.samples.keys()].join(' ')}`);
  return v;
}

describe('GET /metrics', () => {
  it('every node reports its role, term and indexes as /status does, in Prometheus text format', async () => {
    const leader = await cluster.waitForLeader();
    const follower = cluster.ids.find((id) => id !== leader)!;
    const put = await request('PUT', `${cluster.url(follower)}/kv/m`, { value: 'v' });
    expect(put.status).toBe(200);
    const { index } = put.body as { index: number };
    // Every node applies the write, and then nothing else happens in the cluster: status and metrics must agree.
    for (const id of cluster.ids) {
      await waitFor(`${id} to apply ${index}`, async () => (await cluster.status(id)).lastApplied >= index);
    }
    for (const id of cluster.ids) {
      const status = await cluster.status(id);
      const s = await scrape(id);
      // Nothing happened between the two reads (no election, no entry), or the comparisons below would not hold.
      expect(await cluster.status(id)).toEqual(status);
      expect(s.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(value(s, id, 'rafting_is_leader')).toBe(id === leader ? 1 : 0);
      expect(value(s, id, 'rafting_has_leader')).toBe(1);
      expect(value(s, id, 'rafting_role', `role="leader"`)).toBe(id === leader ? 1 : 0);
      expect(value(s, id, 'rafting_role', `role="follower"`)).toBe(id === leader ? 0 : 1);
      expect(value(s, id, 'rafting_role', `role="candidate"`)).toBe(0);
      expect(value(s, id, 'rafting_term')).toBe(status.term);
      expect(value(s, id, 'rafting_commit_index')).toBe(status.commitIndex);
      expect(value(s, id, 'rafting_applied_index')).toBe(status.lastApplied);
      expect(value(s, id, 'rafting_last_log_index')).toBe(status.lastLogIndex);
      expect(value(s, id, 'rafting_first_log_index')).toBe(status.firstLogIndex);
      expect(value(s, id, 'rafting_snapshot_index')).toBe(status.snapshotIndex);
      expect(value(s, id, 'rafting_members', `role="voter"`)).toBe(3);
      expect(value(s, id, 'rafting_members', `role="learner"`)).toBe(0);
      expect(value(s, id, 'rafting_members', `role="outgoing"`)).toBe(0);
      expect(value(s, id, 'rafting_config_joint')).toBe(0);
      expect(value(s, id, 'rafting_pending_requests')).toBe(0);
      expect(value(s, id, 'rafting_leader_changes_seen_total')).toBeGreaterThanOrEqual(1);
      expect(s.types.get('rafting_leader_changes_seen_total')).toBe('counter');
      expect(s.types.get('rafting_commit_index')).toBe('gauge');
      // Every node wrote the entry to its WAL and talked to its peers.
      expect(value(s, id, 'rafting_wal_fsyncs_total')).toBeGreaterThan(0);
      expect(value(s, id, 'rafting_wal_records_total')).toBeGreaterThan(0);
      expect(value(s, id, 'rafting_wal_segments')).toBeGreaterThanOrEqual(1);
      expect(value(s, id, 'rafting_peer_sent_messages_total')).toBeGreaterThan(0);
      expect(value(s, id, 'rafting_peer_received_messages_total')).toBeGreaterThan(0);
      // Messages travel in batches: at least one message each.
      const sentBatches = value(s, id, 'rafting_peer_sent_batches_total');
      expect(sentBatches).toBeGreaterThan(0);
      expect(sentBatches).toBeLessThanOrEqual(value(s, id, 'rafting_peer_sent_messages_total'));
      const receivedBatches = value(s, id, 'rafting_peer_received_batches_total');
      expect(receivedBatches).toBeGreaterThan(0);
      expect(receivedBatches).toBeLessThanOrEqual(value(s, id, 'rafting_peer_received_messages_total'));
      // A stream to each of the two peers and one from each; none refused in a healthy cluster.
      expect(value(s, id, 'rafting_peer_streams_opened_total')).toBeGreaterThanOrEqual(2);
      expect(value(s, id, 'rafting_peer_streams_accepted_total')).toBeGreaterThanOrEqual(2);
      expect(value(s, id, 'rafting_peer_rejected_streams_total')).toBe(0);
      expect(value(s, id, 'rafting_wal_saves_coalesced_total')).toBeLessThanOrEqual(
        value(s, id, 'rafting_wal_saves_total'),
      );
      // The process' own metrics, once per process and without the node label.
      expect(s.samples.get('process_cpu_user_seconds_total')).toBeGreaterThan(0);
      expect(s.samples.has('nodejs_eventloop_lag_seconds')).toBe(true);
    }
  });

  it('the counters move with the work: writes add WAL bytes and batches on every node', async () => {
    const leader = await cluster.waitForLeader();
    const before = new Map<string, Scrape>();
    for (const id of cluster.ids) before.set(id, await scrape(id));
    let last = 0;
    for (let i = 0; i < 5; i++) {
      const put = await request('PUT', `${cluster.url(leader)}/kv/count-${i}`, { value: 'x'.repeat(100) });
      expect(put.status).toBe(200);
      last = (put.body as { index: number }).index;
    }
    for (const id of cluster.ids) {
      await waitFor(`${id} to apply ${last}`, async () => (await cluster.status(id)).lastApplied >= last);
      const after = await scrape(id);
      const was = before.get(id)!;
      const grew = (name: string): number => value(after, id, name) - value(was, id, name);
      // Five entries of over 100 bytes each, written (at least) once.
      expect(grew('rafting_wal_bytes_total')).toBeGreaterThan(500);
      expect(grew('rafting_wal_batches_total')).toBeGreaterThanOrEqual(1);
      expect(grew('rafting_applied_index')).toBeGreaterThanOrEqual(5);
      expect(grew('rafting_peer_sent_messages_total')).toBeGreaterThan(0);
      expect(grew('rafting_peer_sent_batches_total')).toBeGreaterThan(0);
    }
  });

  it('a leadership transfer counts as one leader change on every node, and no counter goes back', async () => {
    const leader = await cluster.waitForLeader();
    const to = cluster.ids.find((id) => id !== leader)!;
    const before = new Map<string, Scrape>();
    for (const id of cluster.ids) before.set(id, await scrape(id));
    const res = await request('POST', `${cluster.url(leader)}/cluster/leader`, { to });
    expect(res.status).toBe(200);
    for (const id of cluster.ids) {
      await waitFor(`${id} to follow ${to}`, async () => (await cluster.status(id)).leader === to);
      const after = await scrape(id);
      const was = before.get(id)!;
      expect(value(after, id, 'rafting_leader_changes_seen_total')).toBe(
        value(was, id, 'rafting_leader_changes_seen_total') + 1,
      );
      expect(value(after, id, 'rafting_is_leader')).toBe(id === to ? 1 : 0);
      expect(value(after, id, 'rafting_term')).toBeGreaterThan(value(was, id, 'rafting_term'));
      for (const [name, type] of after.types) {
        if (type !== 'counter' || !name.startsWith('rafting_')) continue;
        expect(value(after, id, name), name).toBeGreaterThanOrEqual(value(was, id, name));
      }
    }
  });
});
