// One chaos run: start a cluster behind proxies, run the clients while the nemesis injects faults, heal, and
// check (a) linearizability of the whole history, (b) no acknowledged write lost, (c) recovery (a leader and a
// successful write soon after healing) and (d) that every node ends with the same state. Writes the report
// (history.jsonl, nemesis.jsonl, logs/, verdict.json, chart.svg) into the output directory.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkHistory, HistoryRecorder, type Operation } from '../check/index.js';
import { SeededRandom } from '../raft/random.js';
import { renderChart } from './chart.js';
import { ChaosCluster, defaultTiming, pollUntil, sleep, type NodeStatus } from './cluster.js';
import {
  applyCuts,
  healLinks,
  nemesisKinds,
  partitionCuts,
  runNemesis,
  type NemesisKind,
  type TimelineEvent,
} from './nemesis.js';
import { perform, runWorkload, sendOp, type Completion } from './workload.js';

export type PlantedBug = 'stale-reads';

export interface ChaosOptions {
  readonly nodes: number;
  /** The fault phase, in seconds. */
  readonly timeSeconds: number;
  readonly nemeses: readonly NemesisKind[];
  readonly seed: number;
  readonly clients: number;
  readonly out: string;
  readonly plantedBug?: PlantedBug;
  /** Number of keys the clients use (default 8). */
  readonly keys?: number;
  /** Per-request client timeout (default 2500 ms). */
  readonly requestTimeoutMs?: number;
  /** The linearizability checker's budget (default 60 s). */
  readonly checkTimeoutMs?: number;
  /** Fault and heal window lengths, [min, max) ms. */
  readonly faultMs?: readonly [number, number];
  readonly healMs?: readonly [number, number];
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
}

export interface OpCounts {
  total: number;
  ok: number;
  fail: number;
  info: number;
  byKind: Record<string, { ok: number; fail: number; info: number }>;
}

export interface LostWrite {
  readonly id: number;
  readonly key: string;
  readonly value: string;
  readonly kind: 'write' | 'cas';
}

export interface Verdict {
  readonly passed: boolean;
  readonly seed: number;
  readonly nodes: number;
  readonly nemeses: readonly string[];
  readonly plantedBug: PlantedBug | null;
  readonly linearizable: boolean | 'unknown';
  readonly linearizability: string | null;
  readonly lostWrites: readonly LostWrite[];
  readonly recovered: boolean;
  readonly recoveryMs: number | null;
  readonly convergent: boolean;
  readonly divergence: readonly string[];
  readonly finalReads: { readonly keys: number; readonly read: number };
  readonly ops: OpCounts;
  readonly throughput: { readonly okPerSecond: number; readonly completedPerSecond: number };
  readonly faultPhaseMs: number;
  readonly durationMs: number;
  readonly checkMs: number;
}

export interface ChaosResult {
  readonly verdict: Verdict;
  readonly out: string;
  readonly summary: string;
}

/** Acknowledged writes (and successful CAS) never observed by any read or CAS, and not superseded by any op. */
export function findLostWrites(history: readonly Operation[]): LostWrite[] {
  const lost: LostWrite[] = [];
  const byKey = new Map<string, Operation[]>();
  for (const op of history) {
    const list = byKey.get(op.key) ?? [];
    list.push(op);
    byKey.set(op.key, list);
  }
  for (const [key, ops] of byKey) {
    for (const w of ops) {
      if (w.status !== 'ok') continue;
      let value: string;
      if (w.kind === 'write') value = w.input;
      else if (w.kind === 'cas' && w.output === true) value = w.input.to;
      else continue;
      const observed = ops.some(
        (o) =>
          o.status === 'ok' &&
          ((o.kind === 'read' && o.output === value) ||
            (o.kind === 'cas' && o.output === true && o.input.from === value)),
      );
      if (observed) continue;
      // Superseded: another change to the key that may have taken effect after this one (it did not finish
      // before this one began).
      const superseded = ops.some(
        (o) =>
          o !== w &&
          o.status !== 'fail' &&
          (o.kind === 'write' ||
            o.kind === 'delete' ||
            (o.kind === 'cas' && (o.status === 'info' || o.output === true))) &&
          (o.return === null || o.return === Infinity || o.return > w.call),
      );
      if (!superseded) lost.push({ id: w.id, key, value, kind: w.kind });
    }
  }
  return lost;
}

function countOps(history: readonly Operation[]): OpCounts {
  const counts: OpCounts = { total: 0, ok: 0, fail: 0, info: 0, byKind: {} };
  for (const op of history) {
    counts.total++;
    counts[op.status]++;
    const k = (counts.byKind[op.kind] ??= { ok: 0, fail: 0, info: 0 });
    k[op.status]++;
  }
  return counts;
}

function defaultOut(): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return join('results', `chaos-${stamp}`);
}

export { defaultOut };

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const log = options.log ?? (() => {});
  const out = options.out;
  await mkdir(out, { recursive: true });
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const rng = new SeededRandom(options.seed);
  const lossRng = new SeededRandom(options.seed ^ 0x5eed);
  const timing = defaultTiming;
  const requestTimeoutMs = options.requestTimeoutMs ?? 2500;
  const keys = Array.from({ length: options.keys ?? 8 }, (_, i) => `k${i}`);
  const planted = options.plantedBug === 'stale-reads';
  const nemeses = planted ? (['partition'] as NemesisKind[]) : options.nemeses;

  const cluster = await ChaosCluster.create(out, options.nodes, timing, () => lossRng.float());
  const timeline: TimelineEvent[] = [];
  const completions: Completion[] = [];
  const targets = new Map<number, string>();
  const recorder = new HistoryRecorder(now);
  try {
    cluster.startAll();
    log(`started ${options.nodes} nodes; config ${cluster.configPath}`);
    const first = await pollUntil(() => cluster.agreedLeader(), 20_000, 100);
    if (first === undefined) throw new Error('the cluster elected no leader within 20 s of starting');
    log(`leader ${first}; fault phase ${options.timeSeconds} s, nemeses ${nemeses.join(', ')}`);

    const faultStart = now();
    const until = faultStart + options.timeSeconds * 1000;
    let isolated: string | undefined;
    const nemesis = planted
      ? (async () => {
          // The planted bug's nemesis: one node cut off for most of the run, so its local state falls behind.
          await sleep(300);
          const { cuts, groups } = partitionCuts('isolate', cluster.ids, rng);
          isolated = groups[0]![0]!;
          applyCuts(cluster, cuts);
          timeline.push({
            time: now(),
            kind: 'partition',
            action: 'start',
            detail: { shape: 'isolate', node: isolated, groups, planted: true },
          });
          await sleep(Math.max(0, until - now() - 300));
          healLinks(cluster);
          timeline.push({ time: now(), kind: 'partition', action: 'stop', detail: { shape: 'isolate' } });
        })()
      : runNemesis({
          cluster,
          rng,
          kinds: nemeses,
          until,
          now,
          timeline,
          ...(options.faultMs === undefined ? {} : { faultMs: options.faultMs }),
          ...(options.healMs === undefined ? {} : { healMs: options.healMs }),
        });
    const workload = runWorkload({
      recorder,
      urls: () => cluster.ids.map((id) => cluster.url(id)),
      keys,
      clients: options.clients,
      seed: options.seed,
      until,
      now,
      timeoutMs: requestTimeoutMs,
      readMode: planted ? 'stale' : 'linearizable',
      completions,
      targets,
      // The planted bug sends half of its (stale) reads to the node that is cut off.
      ...(planted
        ? {
            urlFor: (r: SeededRandom, op: { kind: string }) =>
              op.kind === 'read' && isolated !== undefined && r.chance(0.5)
                ? cluster.url(isolated)
                : undefined,
          }
        : {}),
    });
    await Promise.all([nemesis, workload]);
    const faultEnd = now();

    // Heal everything, then: a leader and a successful write, within a bound.
    cluster.healAll();
    const healAt = now();
    log('healed every fault; waiting for recovery');
    const recoveryBoundMs = Math.max(10_000, timing.electionTimeoutMaxMs * 20);
    const recoveredAt = await pollUntil(
      async () => {
        const leader = await cluster.agreedLeader();
        if (leader === undefined) return undefined;
        const result = await sendOp(
          cluster.url(leader),
          { kind: 'write', key: '__chaos_recovery', value: `r${Math.round(now())}` },
          2000,
        );
        return result.status === 'ok' ? now() : undefined;
      },
      recoveryBoundMs,
      50,
    );
    const recoveryMs = recoveredAt === undefined ? null : Math.round(recoveredAt - healAt);

    // Final linearizable reads of every key, in the history (they must agree with it).
    let finalRead = 0;
    for (const key of keys) {
      for (let attempt = 0; attempt < 5; attempt++) {
        const leader = (await cluster.agreedLeader()) ?? cluster.ids[attempt % cluster.ids.length]!;
        const r = await perform(
          recorder,
          'final',
          cluster.url(leader),
          { kind: 'read', key },
          {
            timeoutMs: requestTimeoutMs,
            now,
            targets,
          },
        );
        if (r.status === 'ok') {
          finalRead++;
          break;
        }
        await sleep(200);
      }
    }

    // Convergence: every node applied as far as the others, then the same value and index for every key.
    const divergence: string[] = [];
    const converged = await pollUntil(
      async () => {
        const all = await Promise.all(cluster.ids.map((id) => cluster.status(id)));
        if (all.some((s) => s === undefined)) return undefined;
        const statuses = all as NodeStatus[];
        const applied = new Set(statuses.map((s) => s.lastApplied));
        const commits = new Set(statuses.map((s) => s.commitIndex));
        return applied.size === 1 && commits.size === 1 ? statuses : undefined;
      },
      15_000,
      100,
    );
    if (converged === undefined) {
      const all = await Promise.all(cluster.ids.map((id) => cluster.status(id)));
      divergence.push(
        'lastApplied did not converge within 15 s: ' +
          all.map((s, i) => `${cluster.ids[i]}=${s === undefined ? 'down' : s.lastApplied}`).join(' '),
      );
    }
    for (const key of [...keys, '__chaos_recovery']) {
      const seen = await Promise.all(
        cluster.ids.map(async (id) => {
          try {
            const res = await fetch(`${cluster.url(id)}/kv/${encodeURIComponent(key)}?consistency=stale`, {
              signal: AbortSignal.timeout(2000),
            });
            const body = (await res.json()) as { value?: string; index?: number };
            return res.status === 404 ? 'absent' : `${JSON.stringify(body.value)}@${body.index}`;
          } catch {
            return 'unreachable';
          }
        }),
      );
      if (new Set(seen).size !== 1) {
        divergence.push(`${key}: ${seen.map((v, i) => `${cluster.ids[i]}=${v}`).join(' ')}`);
      }
    }
    const convergent = divergence.length === 0;
    await cluster.stop();
    const durationMs = now();

    // The checks on the history.
    const history = recorder.history();
    log(`checking ${history.length} operations`);
    const checkStarted = performance.now();
    const result = checkHistory(history, { timeoutMs: options.checkTimeoutMs ?? 60_000 });
    const checkMs = Math.round(performance.now() - checkStarted);
    const lostWrites = findLostWrites(history);
    const ops = countOps(history);
    const faultSeconds = (faultEnd - faultStart) / 1000;
    const completedInPhase = completions.filter((c) => c.status !== 'info');
    const verdict: Verdict = {
      passed: false,
      seed: options.seed,
      nodes: options.nodes,
      nemeses,
      plantedBug: options.plantedBug ?? null,
      linearizable: result.ok,
      linearizability: result.ok === true ? null : result.explanation,
      lostWrites,
      recovered: recoveryMs !== null,
      recoveryMs,
      convergent,
      divergence,
      finalReads: { keys: keys.length, read: finalRead },
      ops,
      throughput: {
        okPerSecond: round(completions.filter((c) => c.status === 'ok').length / faultSeconds),
        completedPerSecond: round(completedInPhase.length / faultSeconds),
      },
      faultPhaseMs: Math.round(faultEnd - faultStart),
      durationMs: Math.round(durationMs),
      checkMs,
    };
    const passed =
      verdict.linearizable === true &&
      lostWrites.length === 0 &&
      verdict.recovered &&
      convergent &&
      finalRead === keys.length;
    const final: Verdict = { ...verdict, passed };

    await writeFile(
      join(out, 'history.jsonl'),
      history.map((op) => JSON.stringify({ ...op, node: targets.get(op.id) ?? null })).join('\n') + '\n',
    );
    await writeFile(join(out, 'nemesis.jsonl'), timeline.map((e) => JSON.stringify(e)).join('\n') + '\n');
    await writeFile(join(out, 'verdict.json'), JSON.stringify(final, null, 2) + '\n');
    await writeFile(
      join(out, 'chart.svg'),
      renderChart(
        completions,
        timeline,
        durationMs,
        `rafting chaos: ${options.nodes} nodes, seed ${options.seed}, ${passed ? 'PASSED' : 'FAILED'}`,
        [
          { time: healAt, label: 'heal all' },
          ...(recoveredAt === undefined ? [] : [{ time: recoveredAt, label: 'recovered' }]),
        ],
      ),
    );
    return { verdict: final, out, summary: summarize(final, out) };
  } finally {
    await cluster.stop();
  }
}

function round(x: number): number {
  return Number.isFinite(x) ? Math.round(x * 10) / 10 : 0;
}

function mark(ok: boolean): string {
  return ok ? 'PASS' : 'FAIL';
}

export function summarize(v: Verdict, out: string): string {
  const lines = [
    `chaos run: ${v.nodes} nodes, seed ${v.seed}, nemeses ${v.nemeses.join(',')}` +
      (v.plantedBug === null ? '' : `, planted bug ${v.plantedBug}`),
    `  operations: ${v.ops.total} (${v.ops.ok} ok, ${v.ops.fail} failed, ${v.ops.info} unknown); ` +
      `${v.throughput.okPerSecond} ok/s over a ${(v.faultPhaseMs / 1000).toFixed(1)} s fault phase`,
    `  ${mark(v.linearizable === true)} linearizable: ${String(v.linearizable)} (checked in ${v.checkMs} ms)`,
    `  ${mark(v.lostWrites.length === 0)} lost acknowledged writes: ${v.lostWrites.length}`,
    `  ${mark(v.recovered)} recovery after healing: ${v.recoveryMs === null ? 'none within the bound' : `${v.recoveryMs} ms`}`,
    `  ${mark(v.convergent)} every node has the same state` +
      (v.convergent ? '' : `: ${v.divergence.slice(0, 3).join('; ')}`),
    `  ${mark(v.finalReads.read === v.finalReads.keys)} final reads: ${v.finalReads.read}/${v.finalReads.keys} keys`,
  ];
  if (v.linearizability !== null) {
    lines.push('  ' + v.linearizability.split('\n').slice(0, 12).join('\n  '));
  }
  lines.push(`${v.passed ? 'PASSED' : 'FAILED'}; report in ${out}`);
  return lines.join('\n');
}

export { nemesisKinds };
