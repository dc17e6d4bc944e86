// Membership changes on a running cluster of real processes (thesis chapter 4), driven by the CLI as an operator
// would: grow 3 -> 5 under write load, replace a member, shrink back to 3, with no acknowledged write lost and no
// write stall longer than an election timeout. Plus every error the membership API answers.

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from './helpers/http.js';
import { ProcessCluster } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

const bin = fileURLToPath(new URL('../bin/rafting', import.meta.url));
// Wider than the default 150-300 ms: the whole suite runs on two cores in parallel, and starting a node process
// takes a core for a moment; what is checked is that no Raft step stalls writes for an election timeout.
const electionTimeoutMaxMs = 600;

interface Members {
  config: { index: number; voters: string[]; learners: string[]; outgoing: string[]; joint: boolean };
  members: { id: string; role: string; reachable: boolean | null }[];
  leader: string | null;
}

/** Runs `bin/rafting members ...` against `url`; resolves with its exit code and output. */
function cli(args: string[], url: string): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, 'members', ...args, '--url', url], (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, out: stdout, err: stderr });
    });
  });
}

async function members(cluster: ProcessCluster, id: string): Promise<Members> {
  return (await request('GET', `${cluster.url(id)}/cluster/members`)).body as Members;
}

/**
 * Clients writing unique keys back to back through random current members, recording every acknowledged write
 * and when each success happened.
 */
class Writers {
  readonly acked = new Map<string, string>();
  readonly successes: number[] = [];
  #stop = false;
  #loops: Promise<void>[] = [];
  #seq = 0;

  constructor(
    private readonly cluster: ProcessCluster,
    private readonly targets: () => string[],
  ) {}

  start(count: number): void {
    this.#loops = Array.from({ length: count }, (_, i) => this.#loop(i));
  }

  async #loop(client: number): Promise<void> {
    while (!this.#stop) {
      const ids = this.targets();
      const id = ids[Math.floor(Math.random() * ids.length)] ?? ids[0]!;
      const key = `w${client}-${++this.#seq}`;
      try {
        const res = await request('PUT', `${this.cluster.url(id)}/kv/${key}`, { value: key }, 3000);
        if (res.status === 200) {
          this.acked.set(key, key);
          this.successes.push(Date.now());
        }
      } catch {
        // unreachable or timed out: not acknowledged, so nothing is promised about it
      }
    }
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await Promise.all(this.#loops);
  }

  /** The longest time without any acknowledged write, between the first and the last success. */
  longestGapMs(): number {
    let gap = 0;
    for (let i = 1; i < this.successes.length; i++) {
      gap = Math.max(gap, (this.successes[i] ?? 0) - (this.successes[i - 1] ?? 0));
    }
    return gap;
  }
}

describe('growing, replacing and shrinking a running cluster from the CLI', () => {
  let cluster: ProcessCluster;
  let current: string[] = [];

  beforeAll(async () => {
    cluster = await ProcessCluster.start(
      3,
      {
        request_timeout_ms: 2000,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: electionTimeoutMaxMs,
      },
      { durable: true },
    );
    await cluster.waitForLeader();
    current = ['node1', 'node2', 'node3'];
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('3 -> 5 -> replace a member (the leader) -> 3 under write load: no write lost, no stall', async () => {
    const writers = new Writers(cluster, () => current);
    const phases: [string, number][] = [];
    const mark = (what: string) => phases.push([what, Date.now()]);
    writers.start(4);
    const url = () => cluster.url(current[0]!);
    const run = async (args: string[]) => {
      mark(args.join(' '));
      const result = await cli(args, url());
      expect(result, `rafting members ${args.join(' ')}\n${cluster.dump()}`).toMatchObject({ code: 0 });
      return result.out;
    };
    try {
      // Grow: node4 and node5 join as learners (the --join adds them), catch up, and are promoted.
      for (const id of ['node4', 'node5']) {
        await cluster.join(id, url());
        await waitFor(`${id} to be a learner`, async () =>
          (await members(cluster, 'node1')).config.learners.includes(id),
        );
        const out = await run(['promote', id]);
        expect(out).toMatch(new RegExp(`${id}\\s+voter`));
        current = [...current, id];
      }
      let view = await members(cluster, 'node1');
      expect(view.config).toMatchObject({
        voters: ['node1', 'node2', 'node3', 'node4', 'node5'],
        joint: false,
      });

      // Replace the leader by node6: add as a learner, promote, remove the old one (leadership moves first).
      await cluster.join('node6', url());
      await waitFor('node6 to be a learner', async () =>
        (await members(cluster, 'node1')).config.learners.includes('node6'),
      );
      await run(['promote', 'node6']);
      current = [...current, 'node6'];
      const leader = await cluster.waitForLeader(10_000, current);
      current = current.filter((id) => id !== leader);
      const removed = await run(['remove', leader]);
      expect(removed).not.toMatch(new RegExp(`^${leader}\\s`, 'm'));
      const newLeader = await cluster.waitForLeader(10_000, current);
      expect(newLeader).not.toBe(leader);

      // Shrink to three voters, one member at a time.
      while (current.length > 3) {
        const id = current.find((x) => x !== newLeader)!;
        current = current.filter((x) => x !== id);
        await run(['remove', id]);
      }
      view = await members(cluster, current[0]!);
      expect([...view.config.voters].sort()).toEqual([...current].sort());
      expect(view.config.learners).toEqual([]);
      const list = await run(['list']);
      expect(list).toMatch(/configuration at index \d+: voters/);
    } finally {
      await writers.stop();
    }

    // Every acknowledged write is there, on every remaining member.
    expect(writers.acked.size).toBeGreaterThan(100);
    const final = await cluster.waitForLeader(10_000, current);
    const last = await request('PUT', `${cluster.url(final)}/kv/last`, { value: 'x' });
    const lastIndex = (last.body as { index: number }).index;
    for (const id of current) {
      await waitFor(
        `${id} to apply ${lastIndex}`,
        async () => (await cluster.status(id)).lastApplied >= lastIndex,
      );
      for (const [key, value] of writers.acked) {
        const res = await request('GET', `${cluster.url(id)}/kv/${key}?consistency=stale`);
        expect(res.body, `${key} on ${id}`).toMatchObject({ value });
      }
    }
    // Availability: adding, promoting and removing members (the leader included) never stopped writes for longer
    // than an election timeout.
    const t0 = phases[0]?.[1] ?? 0;
    const gaps = writers.successes.slice(1).map((t, i) => [t - (writers.successes[i] ?? 0), t - t0]);
    const timeline = JSON.stringify({
      phases: phases.map(([what, t]) => [what, t - t0]),
      longestGaps: gaps.sort((x, y) => (y[0] ?? 0) - (x[0] ?? 0)).slice(0, 5),
    });
    expect(writers.longestGapMs(), timeline).toBeLessThan(electionTimeoutMaxMs);
  });
});

describe('the membership API refuses what it cannot do, with the reason', () => {
  let cluster: ProcessCluster;
  let leader: string;

  beforeAll(async () => {
    cluster = await ProcessCluster.start(3, { request_timeout_ms: 1500, learner_catchup_timeout_ms: 500 });
    leader = await cluster.waitForLeader();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const post = (path: string, body?: object) => request('POST', `${cluster.url('node1')}${path}`, body);

  it('GET /cluster/members on any node lists the members, the configuration and the settings', async () => {
    for (const id of cluster.ids) {
      const res = await request('GET', `${cluster.url(id)}/cluster/members`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        leader,
        config: { index: 0, voters: ['node1', 'node2', 'node3'], learners: [], outgoing: [], joint: false },
        settings: { electionTimeoutMinMs: 150, learnerMaxLagEntries: 1000 },
      });
      expect((res.body as Members).members.map((m) => m.id)).toEqual(['node1', 'node2', 'node3']);
    }
    const status = await request('GET', `${cluster.url('node2')}/status`);
    expect(status.body).toMatchObject({ config: { voters: ['node1', 'node2', 'node3'], joint: false } });
  });

  it.each([
    [{ grpcAddress: '127.0.0.1:1', webAddress: '127.0.0.1:2' }, /a member id is/],
    [{ id: 'bad id', grpcAddress: '127.0.0.1:1', webAddress: '127.0.0.1:2' }, /a member id is/],
    [{ id: 'node9', grpcAddress: 'nowhere', webAddress: '127.0.0.1:2' }, /"grpcAddress" must be "host:port"/],
    [{ id: 'node9', grpcAddress: '127.0.0.1:1' }, /"webAddress" must be "host:port"/],
    [{ id: 'node9', grpcAddress: '127.0.0.1:1', webAddress: '127.0.0.1:2', role: 'boss' }, /"role" must be/],
    [
      { id: 'node9', grpcAddress: '127.0.0.1:1', webAddress: '127.0.0.1:2', color: 'red' },
      /unknown field "color"/,
    ],
  ])('POST /cluster/members %j: 400', async (body, message) => {
    const res = await post('/cluster/members', body);
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({
      error: { code: 'invalid_member', message: expect.stringMatching(message) },
    });
  });

  it('adding an existing member, or an address another member uses: 409', async () => {
    const again = await post('/cluster/members', {
      id: 'node2',
      grpcAddress: '127.0.0.1:1',
      webAddress: '127.0.0.1:2',
    });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({
      error: { code: 'invalid_change', message: 'node2 is already a member' },
    });
    const status = await cluster.status('node2');
    expect(status).toBeDefined();
    const sameAddress = await post('/cluster/members', {
      id: 'node9',
      grpcAddress: '127.0.0.1:1',
      webAddress: cluster.files.web['node2']!,
    });
    expect(sameAddress.status).toBe(409);
    expect(sameAddress.body).toMatchObject({ error: { message: 'node2 already uses that address' } });
  });

  it('promoting or removing a stranger: 404; promoting a voter: 409', async () => {
    const promote = await post('/cluster/members/node9/promote');
    expect(promote.status).toBe(404);
    expect(promote.body).toMatchObject({ error: { code: 'member_not_found' } });
    const remove = await request('DELETE', `${cluster.url('node3')}/cluster/members/node9`);
    expect(remove.status).toBe(404);
    const voter = await post('/cluster/members/node2/promote');
    expect(voter.status).toBe(409);
    expect(voter.body).toMatchObject({
      error: { code: 'invalid_change', message: 'node2 is already a voter' },
    });
    const badId = await post('/cluster/members/bad%20id/promote');
    expect(badId.status).toBe(400);
  });

  it('a learner that never answers is not promoted (409 learner_behind), and can be removed', async () => {
    // node7's addresses lead nowhere: it is added as a learner, never catches up, and is not promoted.
    const add = await post('/cluster/members', {
      id: 'node7',
      grpcAddress: '127.0.0.1:9',
      webAddress: '127.0.0.1:9',
    });
    expect(add.status).toBe(201);
    expect((add.body as Members).config.learners).toEqual(['node7']);
    const promote = await post('/cluster/members/node7/promote');
    expect(promote.status).toBe(409);
    expect(promote.body).toMatchObject({
      error: {
        code: 'learner_behind',
        message: expect.stringMatching(/has not answered the leader recently/),
      },
    });
    // Writes go on: the learner counts toward no majority.
    expect((await request('PUT', `${cluster.url('node1')}/kv/k`, { value: 'v' })).status).toBe(200);
    const remove = await request('DELETE', `${cluster.url('node2')}/cluster/members/node7`);
    expect(remove.status).toBe(200);
    expect((remove.body as Members).config.learners).toEqual([]);
  });

  it('a change that would leave no reachable majority is refused (409 no_quorum)', async () => {
    const current = await cluster.waitForLeader();
    const [down, other] = cluster.ids.filter((id) => id !== current);
    await cluster.kill(down!);
    await waitFor(`the leader to see ${down} unreachable`, async () => {
      const view = await members(cluster, current);
      return view.members.find((m) => m.id === down)?.reachable === false;
    });
    // Removing the healthy follower would leave {leader, down}: both needed, one unreachable.
    const res = await request('DELETE', `${cluster.url(current)}/cluster/members/${other}`);
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ error: { code: 'no_quorum' } });
    expect((await members(cluster, current)).config.voters).toHaveLength(3);
  });

  it('the CLI names the problem and exits non-zero', async () => {
    const live = cluster.running()[0]!;
    const missing = await cli(['add', 'node8'], cluster.url(live));
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/--grpc-address HOST:PORT and --web-address HOST:PORT are required/);
    const unknown = await cli(['frobnicate'], cluster.url(live));
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/unknown subcommand "frobnicate"/);
    const stranger = await cli(['remove', 'node9'], cluster.url(live));
    expect(stranger.code).toBe(1);
    expect(stranger.err).toMatch(/node9 is not a member of the cluster/);
  });
});
