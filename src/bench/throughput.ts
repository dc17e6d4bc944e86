// The throughput part: every (workload, connections) cell on both systems, one after the other, each on a
// fresh 3-member cluster (new data directories), so no run inherits the state or the disk of the one before.
// The order of the two systems alternates from cell to cell (rafting, etcd, etcd, rafting, rafting, ...), so a
// slow drift of the shared machine does not favour either.

import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BenchCluster, SystemName } from './cluster.js';
import { EtcdCluster } from './etcd.js';
import { cpuTimes, machineTimes, type MachineTimes } from './procs.js';
import { RaftingCluster } from './rafting.js';
import { formatMs } from './report.js';
import {
  benchValue,
  combine,
  preloadKey,
  runWrk,
  splitConnections,
  type Combined,
  type WrkTarget,
} from './wrk.js';
import { workloads, type WorkloadName } from './workloads.js';

export const clusterSize = 3;
const valueBytes = 100;
/** Concurrent writes while pre-writing the keys of a read workload. */
const preloadConcurrency = 16;

export interface CellTarget {
  readonly member: string;
  readonly connections: number;
  readonly threads: number;
}

export interface CpuUse {
  /** wrk's CPU (all its processes), in % of one core over the measured run. */
  readonly wrkPercent: number;
  /** Each member's CPU, in % of one core. */
  readonly servers: Readonly<Record<string, number>>;
  readonly serversPercent: number;
  /** The part of serversPercent spent in the kernel (system calls, fsync, loopback networking). */
  readonly serversSystemPercent: number;
  /**
   * CPU time the host took from this machine during the run (steal), in % of all its CPUs' time; null where the
   * kernel does not say. A run with much of it measured a slower machine than its neighbours did.
   */
  readonly stealPercent: number | null;
}

export interface CellResult {
  readonly system: SystemName;
  readonly workload: WorkloadName;
  readonly connections: number;
  /** The measurement's place in the run (0, 1, ...), to see the alternation. */
  readonly order: number;
  readonly error: string | null;
  readonly leader: string | null;
  /** True when the leader was not the same after the run as before it. */
  readonly leaderChanged: boolean;
  readonly targets: readonly CellTarget[];
  readonly result: Combined | null;
  readonly cpu: CpuUse | null;
}

export interface ThroughputContext {
  readonly tmp: string;
  readonly out: string;
  readonly etcd: string | null;
  readonly systems: readonly SystemName[];
  readonly wrk: string;
  readonly durationS: number;
  readonly warmupS: number;
  readonly preloadKeys: number;
  readonly profile: boolean;
  readonly nodeArgs: readonly string[];
  readonly log: (line: string) => void;
}

async function createCluster(ctx: ThroughputContext, system: SystemName, dir: string): Promise<BenchCluster> {
  if (system === 'etcd') {
    if (ctx.etcd === null) throw new Error('etcd is not available');
    return EtcdCluster.create(dir, clusterSize, ctx.etcd);
  }
  return RaftingCluster.create(dir, clusterSize, {
    nodeArgs: [
      ...ctx.nodeArgs,
      ...(ctx.profile ? ['--cpu-prof', '--cpu-prof-dir', join(dir, 'profiles')] : []),
    ],
  });
}

/** Writes keys 0..count-1 through `via`; throws if any write fails. */
async function preload(cluster: BenchCluster, via: string, count: number): Promise<void> {
  const value = benchValue(valueBytes);
  let next = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: preloadConcurrency }, async () => {
      while (next < count) {
        const key = preloadKey(next++);
        if (!(await cluster.put(via, key, value, 5000))) failed++;
      }
    }),
  );
  if (failed > 0) throw new Error(`${failed} of ${count} pre-writes failed`);
}

function targetsFor(cluster: BenchCluster, kind: 'leader' | 'all', leader: string, connections: number) {
  if (kind === 'leader') {
    return [{ member: leader, connections, threads: Math.min(2, connections) }];
  }
  // Followers first, so that a connection count below the cluster size loads followers.
  const members = [...cluster.ids.filter((id) => id !== leader), leader];
  // One wrk process per member already gives as many threads as members: one thread each.
  return splitConnections(connections, members.length).map((c, i) => ({
    member: members[i]!,
    connections: c,
    threads: 1,
  }));
}

async function measure(
  ctx: ThroughputContext,
  cluster: BenchCluster,
  workloadName: WorkloadName,
  connections: number,
  order: number,
): Promise<CellResult> {
  const workload = workloads[workloadName];
  const name = `${cluster.system}-${workloadName}-c${connections}`;
  const spec = {
    system: cluster.system,
    readFraction: workload.readFraction,
    stale: workload.stale,
    keys: ctx.preloadKeys,
    valueBytes,
  };
  cluster.startAll();
  const leader = (await cluster.waitForLeader()).id;
  if (workload.preload) await preload(cluster, leader, ctx.preloadKeys);
  const targets = targetsFor(cluster, workload.target, leader, connections);
  const wrkTargets = (tagOffset: number): WrkTarget[] =>
    targets.map((t, i) => ({
      url: cluster.url(t.member),
      connections: t.connections,
      threads: t.threads,
      tag: tagFor(tagOffset + i),
    }));
  if (ctx.warmupS > 0) {
    await runWrk({
      wrk: ctx.wrk,
      spec,
      targets: wrkTargets(100),
      durationS: ctx.warmupS,
      dir: join(ctx.out, 'wrk'),
      name: `${name}-warmup`,
    });
  }
  const pids = new Map(cluster.ids.map((id) => [id, cluster.pid(id)] as const));
  const before = new Map([...pids].map(([id, pid]) => [id, pid === undefined ? undefined : cpuTimes(pid)]));
  const machineBefore = machineTimes();
  const started = performance.now();
  const runs = await runWrk({
    wrk: ctx.wrk,
    spec,
    targets: wrkTargets(0),
    durationS: ctx.durationS,
    dir: join(ctx.out, 'wrk'),
    name,
  });
  const wallS = (performance.now() - started) / 1000;
  const machineAfter = machineTimes();
  const servers: Record<string, number> = {};
  let systemS = 0;
  for (const [id, pid] of pids) {
    const a = before.get(id);
    const b = pid === undefined ? undefined : cpuTimes(pid);
    if (a === undefined || b === undefined) continue;
    servers[id] = percent(b.user + b.system - a.user - a.system, wallS);
    systemS += b.system - a.system;
  }
  const result = combine(runs);
  const after = await cluster.agreedLeader();
  return {
    system: cluster.system,
    workload: workloadName,
    connections,
    order,
    error: null,
    leader,
    leaderChanged: after?.id !== leader,
    targets,
    result,
    cpu: {
      wrkPercent: percent(result.wrkCpuSeconds, wallS),
      servers,
      serversPercent: Math.round(Object.values(servers).reduce((x, y) => x + y, 0)),
      serversSystemPercent: percent(systemS, wallS),
      stealPercent: stealPercent(machineBefore, machineAfter),
    },
  };
}

/** The share of the machine's CPU time the host took between two readings, in % (one decimal). */
function stealPercent(a: MachineTimes | undefined, b: MachineTimes | undefined): number | null {
  if (a === undefined || b === undefined || b.total <= a.total) return null;
  return Math.round(((b.steal - a.steal) / (b.total - a.total)) * 1000) / 10;
}

function percent(seconds: number, wallS: number): number {
  return wallS > 0 ? Math.round((seconds / wallS) * 100) : 0;
}

/** Two letters per wrk process, unique within a cell, so that no two processes write the same key. */
function tagFor(i: number): string {
  return String.fromCharCode(97 + (Math.floor(i / 26) % 26), 97 + (i % 26));
}

/** One cell on one system: a fresh cluster, the measurement, everything stopped and removed after. */
export async function runCell(
  ctx: ThroughputContext,
  system: SystemName,
  workloadName: WorkloadName,
  connections: number,
  order: number,
): Promise<CellResult> {
  const dir = join(ctx.tmp, `${system}-${workloadName}-c${connections}`);
  let cluster: BenchCluster | undefined;
  let failed = false;
  let leader: string | null = null;
  try {
    cluster = await createCluster(ctx, system, dir);
    const result = await measure(ctx, cluster, workloadName, connections, order);
    leader = result.leader;
    return result;
  } catch (e) {
    failed = true;
    const error = e instanceof Error ? e.message : String(e);
    ctx.log(`  ${system} ${workloadName} c=${connections} FAILED: ${error}`);
    return {
      system,
      workload: workloadName,
      connections,
      order,
      error,
      leader: null,
      leaderChanged: false,
      targets: [],
      result: null,
      cpu: null,
    };
  } finally {
    if (cluster !== undefined) {
      const pids = new Map(cluster.ids.map((id) => [cluster!.pid(id), id] as const));
      // SIGTERM lets a profiled node write its profile on the way out.
      await cluster.stop(ctx.profile ? 'SIGTERM' : 'SIGKILL');
      if (ctx.profile && system === 'rafting') {
        await keepProfiles(dir, ctx.out, `${workloadName}-c${connections}`, pids, leader);
      }
    }
    // A failed cell keeps its directory (the members' logs); a good one is removed at once.
    if (!failed) await rm(dir, { recursive: true, force: true });
  }
}

/** Moves the .cpuprofile files of a cell to <out>/profiles/<workload>-c<N>-<node>[-leader].cpuprofile. */
async function keepProfiles(
  dir: string,
  out: string,
  cell: string,
  pids: Map<number | undefined, string>,
  leader: string | null,
): Promise<void> {
  const from = join(dir, 'profiles');
  const files = await readdir(from).catch(() => [] as string[]);
  await mkdir(join(out, 'profiles'), { recursive: true });
  for (const f of files) {
    const pid = Number(/\.(\d+)\.\d+\.\d+\.cpuprofile$/.exec(f)?.[1]);
    const node = pids.get(pid) ?? `pid${pid}`;
    const role = node === leader ? '-leader' : '';
    await rename(join(from, f), join(out, 'profiles', `${cell}-${node}${role}.cpuprofile`));
  }
}

export async function runThroughput(
  ctx: ThroughputContext,
  workloadList: readonly WorkloadName[],
  concurrency: readonly number[],
  repeat = 1,
): Promise<{ cells: CellResult[]; runs: CellResult[] }> {
  const runs: CellResult[] = [];
  let pair = 0;
  let order = 0;
  for (const workloadName of workloadList) {
    for (const connections of concurrency) {
      for (let r = 0; r < repeat; r++) {
        const ordered = pair++ % 2 === 0 ? ctx.systems : [...ctx.systems].reverse();
        for (const system of ordered) {
          const cell = await runCell(ctx, system, workloadName, connections, order++);
          runs.push(cell);
          if (cell.result !== null) ctx.log(`  ${describeCell(cell)}`);
        }
      }
    }
  }
  return { cells: medianRuns(runs), runs };
}

/**
 * One result per (system, workload, connections): of its repeated runs, the one with the median requests/s (the
 * lower of the two middle ones for an even count), so that one run on a disturbed machine does not decide the
 * table; a failed run counts as the slowest. With one run per cell, the runs themselves.
 */
export function medianRuns(runs: readonly CellResult[]): CellResult[] {
  const groups = new Map<string, CellResult[]>();
  for (const run of runs) {
    const key = `${run.system}|${run.workload}|${run.connections}`;
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [run]);
    else group.push(run);
  }
  return [...groups.values()].map((group) => {
    const sorted = [...group].sort((a, b) => (a.result?.okPerSecond ?? -1) - (b.result?.okPerSecond ?? -1));
    return sorted[Math.floor((sorted.length - 1) / 2)]!;
  });
}

export function describeCell(cell: CellResult): string {
  const r = cell.result;
  if (r === null)
    return `${cell.system} ${cell.workload} c=${cell.connections}: ${cell.error ?? 'no result'}`;
  return (
    `${cell.system.padEnd(7)} ${cell.workload} c=${cell.connections}: ${Math.round(r.okPerSecond)} req/s, ` +
    `p50 ${formatMs(r.latencyMs.p50)} ms, p99 ${formatMs(r.latencyMs.p99)} ms, p99.9 ${formatMs(r.latencyMs.p999)} ms, ` +
    `${r.errors} errors; ` +
    `cpu servers ${cell.cpu?.serversPercent ?? '?'}% (kernel ${cell.cpu?.serversSystemPercent ?? '?'}%), ` +
    `wrk ${cell.cpu?.wrkPercent ?? '?'}%` +
    (cell.cpu?.stealPercent ? `, steal ${cell.cpu.stealPercent}%` : '') +
    (cell.leaderChanged ? ' (LEADER CHANGED during the run)' : '')
  );
}
