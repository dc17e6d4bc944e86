// Failover timing, as in Figure 16 of the Raft paper: a 5-member cluster under a light write load (one client
// writing to the leader, one write at a time), the leader SIGKILLed at a random moment, and two times measured
// from the kill: until a survivor reports itself leader at a higher term (every survivor's status polled every
// few ms), and until the first write sent after the kill succeeds (a new write to every survivor every 20 ms,
// each with a 1 s timeout, so a write stuck on a member without a leader does not hide a later one). Then the
// killed member is restarted and the cluster must be healthy again (every member agrees on the leader, and a
// write through the restarted member succeeds) before the next trial. Trials alternate between the systems.

import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep } from '../chaos/cluster.js';
import { SeededRandom } from '../raft/random.js';
import type { BenchCluster, SystemName } from './cluster.js';
import { EtcdCluster } from './etcd.js';
import { RaftingCluster } from './rafting.js';

export const failoverSize = 5;
/** How long a trial may wait for a new leader, and for a write, before it counts as failed. */
const trialBoundMs = 10_000;
const leaderPollMs = 5;
const probeIntervalMs = 20;
const probeTimeoutMs = 1000;
/** The kill comes this long after the light load began: a random moment in [min, max). */
const killDelayMs = [200, 1000] as const;

export interface Trial {
  readonly system: SystemName;
  readonly trial: number;
  readonly killed: string;
  readonly term: number;
  readonly newLeader: string | null;
  /** ms from the kill until a survivor reported itself leader at a higher term; null: not within the bound. */
  readonly leaderMs: number | null;
  /** ms from the kill until the first successful write sent after it; null: none within the bound. */
  readonly writeMs: number | null;
  readonly writesBeforeKill: number;
  readonly healthyAfter: boolean;
}

export interface Distribution {
  readonly n: number;
  readonly min: number | null;
  readonly median: number | null;
  readonly p90: number | null;
  readonly max: number | null;
}

export interface FailoverSummary {
  readonly system: SystemName;
  readonly trials: number;
  readonly failed: number;
  readonly leader: Distribution;
  readonly write: Distribution;
}

/** Nearest-rank percentile of a sorted list. */
export function nearestRank(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1]!;
}

export function distribution(values: readonly (number | null)[]): Distribution {
  const sorted = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  return {
    n: sorted.length,
    min: sorted[0] ?? null,
    median: nearestRank(sorted, 50),
    p90: nearestRank(sorted, 90),
    max: sorted[sorted.length - 1] ?? null,
  };
}

export function summarizeFailover(system: SystemName, trials: readonly Trial[]): FailoverSummary {
  const mine = trials.filter((t) => t.system === system);
  return {
    system,
    trials: mine.length,
    failed: mine.filter((t) => t.leaderMs === null || t.writeMs === null).length,
    leader: distribution(mine.map((t) => t.leaderMs)),
    write: distribution(mine.map((t) => t.writeMs)),
  };
}

/** One client writing to `target`, one write at a time, until stopped. Resolves with the count acknowledged. */
function lightLoad(cluster: BenchCluster, target: string, trial: number): { stop: () => Promise<number> } {
  let running = true;
  let acked = 0;
  const done = (async () => {
    for (let i = 0; running; i++) {
      if (await cluster.put(target, `f${trial}-${i}`, 'x'.repeat(100), probeTimeoutMs)) acked++;
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return acked;
    },
  };
}

async function untilNewLeader(
  cluster: BenchCluster,
  survivors: readonly string[],
  term: number,
  t0: number,
): Promise<{ ms: number; id: string } | null> {
  while (performance.now() - t0 < trialBoundMs) {
    const views = await Promise.all(survivors.map((id) => cluster.view(id, 200)));
    const leader = views.find((v) => v !== undefined && v.isLeader && v.term > term);
    if (leader !== undefined) return { ms: performance.now() - t0, id: leader.id };
    await sleep(leaderPollMs);
  }
  return null;
}

async function untilFirstWrite(
  cluster: BenchCluster,
  survivors: readonly string[],
  trial: number,
  t0: number,
): Promise<number | null> {
  let first: number | null = null;
  const pending: Promise<void>[] = [];
  for (let i = 0; first === null && performance.now() - t0 < trialBoundMs; i++) {
    for (const id of survivors) {
      pending.push(
        cluster.put(id, `p${trial}-${i}-${id}`, 'x'.repeat(100), probeTimeoutMs).then((ok) => {
          if (ok) first ??= performance.now() - t0;
        }),
      );
    }
    await sleep(probeIntervalMs);
  }
  await Promise.all(pending);
  return first;
}

async function trial(cluster: BenchCluster, n: number, random: SeededRandom): Promise<Trial> {
  const leader = await cluster.waitForLeader();
  const load = lightLoad(cluster, leader.id, n);
  await sleep(killDelayMs[0] + random.float() * (killDelayMs[1] - killDelayMs[0]));
  const t0 = performance.now();
  const killed = cluster.kill(leader.id);
  // The load's client stops with the kill (its write in flight fails); it does not spin on a dead member.
  const loadStopped = load.stop();
  const survivors = cluster.ids.filter((id) => id !== leader.id);
  const [elected, writeMs] = await Promise.all([
    untilNewLeader(cluster, survivors, leader.term, t0),
    untilFirstWrite(cluster, survivors, n, t0),
  ]);
  await killed;
  const writesBeforeKill = await loadStopped;
  cluster.start(leader.id);
  const healthyAfter = await cluster.waitHealthy(leader.id, 30_000);
  return {
    system: cluster.system,
    trial: n,
    killed: leader.id,
    term: leader.term,
    newLeader: elected?.id ?? null,
    leaderMs: elected === null ? null : Math.round(elected.ms),
    writeMs: writeMs === null ? null : Math.round(writeMs),
    writesBeforeKill,
    healthyAfter,
  };
}

export interface FailoverContext {
  readonly tmp: string;
  readonly etcd: string | null;
  readonly systems: readonly SystemName[];
  readonly trials: number;
  readonly seed: number;
  readonly log: (line: string) => void;
}

export interface FailoverRun {
  readonly trials: Trial[];
  /** What went wrong, if anything (the trials up to then are kept). */
  readonly notes: string[];
}

/** Both 5-member clusters up at once (idle but for heartbeats between trials); trials alternate between them. */
export async function runFailover(ctx: FailoverContext): Promise<FailoverRun> {
  const random = new SeededRandom(ctx.seed);
  const clusters: BenchCluster[] = [];
  const results: Trial[] = [];
  const notes: string[] = [];
  try {
    for (const system of ctx.systems) {
      const dir = join(ctx.tmp, `failover-${system}`);
      if (system === 'etcd' && ctx.etcd === null) continue;
      const cluster =
        system === 'etcd'
          ? await EtcdCluster.create(dir, failoverSize, ctx.etcd!)
          : await RaftingCluster.create(dir, failoverSize);
      clusters.push(cluster);
      cluster.startAll();
      await cluster.waitForLeader();
      if (!(await cluster.waitHealthy(cluster.ids[0]!, 30_000)))
        throw new Error(`${system}: not healthy after start`);
    }
    for (let n = 0; n < ctx.trials; n++) {
      const ordered = n % 2 === 0 ? clusters : [...clusters].reverse();
      for (const cluster of ordered) {
        const t = await trial(cluster, n, random);
        results.push(t);
        ctx.log(
          `  failover ${t.system.padEnd(7)} #${n + 1}: killed ${t.killed} (term ${t.term}); ` +
            `new leader ${t.newLeader ?? 'none'} after ${t.leaderMs ?? '-'} ms, first write after ${t.writeMs ?? '-'} ms` +
            (t.healthyAfter ? '' : '; NOT healthy after the restart'),
        );
        if (!t.healthyAfter) throw new Error(`${t.system}: the cluster did not recover after trial ${n + 1}`);
      }
    }
  } catch (e) {
    notes.push(`failover stopped early: ${e instanceof Error ? e.message : String(e)}`);
    ctx.log(`  ${notes[notes.length - 1]!}`);
  } finally {
    await Promise.all(clusters.map((c) => c.stop()));
    // A cluster that failed keeps its directory (the members' logs).
    if (notes.length === 0) for (const c of clusters) await rm(c.dir, { recursive: true, force: true });
  }
  return { trials: results, notes };
}
