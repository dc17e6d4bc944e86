// The console report: one table per workload (requests/s, p50, p99, p99.9, errors, for each system and the
// ratio rafting/etcd), the CPU each side used, and the failover distributions.

import type { SystemName } from './cluster.js';
import type { FailoverSummary } from './failover.js';
import type { CellResult } from './throughput.js';
import { mergedPercentile } from './wrk.js';
import { workloads, type WorkloadName } from './workloads.js';

/** A plain-text table: the first column left-aligned, the others right-aligned, columns separated by two spaces. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** `a / b` as "1.23×"; "–" when either is missing or b is zero. */
export function ratio(a: number | null | undefined, b: number | null | undefined): string {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return '–';
  return `${(a / b).toFixed(2)}×`;
}

/** Requests per second with thousands separators, no decimals. */
export function formatRate(x: number | null | undefined): string {
  if (x === null || x === undefined) return '–';
  return Math.round(x).toLocaleString('en-US');
}

/** Milliseconds with about three significant digits: 0.853, 12.9, 113. */
export function formatMs(x: number | null | undefined): string {
  if (x === null || x === undefined) return '–';
  if (x < 10) return x.toFixed(2);
  if (x < 100) return x.toFixed(1);
  return Math.round(x).toString();
}

function cell(
  results: readonly CellResult[],
  system: SystemName,
  workload: WorkloadName,
  connections: number,
): CellResult | undefined {
  return results.find((r) => r.system === system && r.workload === workload && r.connections === connections);
}

/** The table of one workload: one row per connection count. */
export function workloadTable(
  results: readonly CellResult[],
  workload: WorkloadName,
  systems: readonly SystemName[],
  concurrency: readonly number[],
): string {
  const header = ['conns'];
  for (const s of systems) header.push(`${s} req/s`, 'p50 ms', 'p99 ms', 'p99.9 ms', 'errors');
  const both = systems.includes('rafting') && systems.includes('etcd');
  if (both) header.push('req/s R/E', 'p50 R/E', 'p99 R/E', 'p99.9 R/E');
  const rows = concurrency.map((c) => {
    const row = [String(c)];
    for (const s of systems) {
      const r = cell(results, s, workload, c);
      const res = r?.result ?? null;
      if (res === null) {
        row.push(r?.error === null || r === undefined ? '–' : 'failed', '–', '–', '–', '–');
        continue;
      }
      row.push(
        formatRate(res.okPerSecond) + (r?.leaderChanged === true ? '*' : ''),
        formatMs(res.latencyMs.p50),
        formatMs(res.latencyMs.p99),
        formatMs(res.latencyMs.p999),
        String(res.errors),
      );
    }
    if (both) {
      const a = cell(results, 'rafting', workload, c)?.result ?? null;
      const b = cell(results, 'etcd', workload, c)?.result ?? null;
      row.push(
        ratio(a?.okPerSecond, b?.okPerSecond),
        ratio(a?.latencyMs.p50, b?.latencyMs.p50),
        ratio(a?.latencyMs.p99, b?.latencyMs.p99),
        ratio(a?.latencyMs.p999, b?.latencyMs.p999),
      );
    }
    return row;
  });
  return `${workload}: ${workloads[workload].description}\n${formatTable(header, rows)}`;
}

/**
 * Each (workload, connections) cell that has runs, in table order, with its runs per system (in the order they ran;
 * a system without runs of the cell gets an empty list).
 */
function* cellsWithRuns(
  runs: readonly CellResult[],
  workloads: readonly WorkloadName[],
  systems: readonly SystemName[],
  concurrency: readonly number[],
): Generator<{ workload: WorkloadName; connections: number; bySystem: Map<SystemName, CellResult[]> }> {
  for (const workload of workloads) {
    for (const connections of concurrency) {
      const bySystem = new Map(
        systems.map((s) => [
          s,
          runs.filter((r) => r.system === s && r.workload === workload && r.connections === connections),
        ]),
      );
      if ([...bySystem.values()].some((mine) => mine.length > 0)) yield { workload, connections, bySystem };
    }
  }
}

/**
 * With repeated runs: every run's requests/s and p99 per cell, in the order they ran, so that a reader sees how far
 * the median run's p99 is from the others (on a shared VM the tail moves more between runs than throughput does).
 * Failed runs show as "failed".
 */
export function spreadTable(
  runs: readonly CellResult[],
  workloads: readonly WorkloadName[],
  systems: readonly SystemName[],
  concurrency: readonly number[],
): string {
  const header = ['workload', 'conns'];
  for (const s of systems) header.push(`${s} req/s of each run`, 'p99 ms of each run');
  const rows: string[][] = [];
  for (const { workload, connections, bySystem } of cellsWithRuns(runs, workloads, systems, concurrency)) {
    const row = [workload, String(connections)];
    for (const mine of bySystem.values()) {
      const each = (f: (r: NonNullable<CellResult['result']>) => string): string =>
        mine.length === 0 ? '–' : mine.map((r) => (r.result === null ? 'failed' : f(r.result))).join(' / ');
      row.push(
        each((r) => formatRate(r.okPerSecond)),
        each((r) => formatMs(r.latencyMs.p99)),
      );
    }
    rows.push(row);
  }
  return `every run of each cell (requests/s and p99 in the order they ran; the tables above show the median one)\n${formatTable(header, rows)}`;
}

/**
 * With repeated runs: each cell's latency over every request of all its runs together (their distributions merged,
 * weighted by request counts). One run's p99 rests on its slowest 1%, and on a shared 2-core machine those are a
 * few stalls of the whole machine, so it moves a lot from run to run; the merged p99 rests on three times as many.
 * Failed runs are left out, and counted.
 */
export function pooledTable(
  runs: readonly CellResult[],
  workloads: readonly WorkloadName[],
  systems: readonly SystemName[],
  concurrency: readonly number[],
): string {
  const header = ['workload', 'conns'];
  for (const s of systems) header.push(`${s} runs`, 'p50 ms', 'p99 ms', 'p99.9 ms');
  const both = systems.includes('rafting') && systems.includes('etcd');
  if (both) header.push('p50 R/E', 'p99 R/E', 'p99.9 R/E');
  const rows: string[][] = [];
  for (const { workload, connections, bySystem } of cellsWithRuns(runs, workloads, systems, concurrency)) {
    const row = [workload, String(connections)];
    const merged = new Map<SystemName, { p50: number; p99: number; p999: number }>();
    for (const [s, mine] of bySystem) {
      const samples = mine.flatMap((r) => r.result?.samples ?? []);
      const ok = mine.filter((r) => r.result !== null).length;
      const failed = mine.length - ok;
      if (samples.length === 0) {
        row.push(mine.length === 0 ? '–' : `${failed} failed`, '–', '–', '–');
        continue;
      }
      const at = (p: number) => mergedPercentile(samples, p) / 1000;
      const m = { p50: at(50), p99: at(99), p999: at(99.9) };
      merged.set(s, m);
      row.push(
        failed > 0 ? `${ok} + ${failed} failed` : String(ok),
        formatMs(m.p50),
        formatMs(m.p99),
        formatMs(m.p999),
      );
    }
    if (both) {
      const a = merged.get('rafting');
      const b = merged.get('etcd');
      row.push(ratio(a?.p50, b?.p50), ratio(a?.p99, b?.p99), ratio(a?.p999, b?.p999));
    }
    rows.push(row);
  }
  return `latency over all runs of each cell together (every request of every run; the tables above show one run)\n${formatTable(header, rows)}`;
}

/** Server CPU per request (µs, all members together) and in % of one core; wrk's CPU in % of one core. */
export function cpuTable(results: readonly CellResult[], systems: readonly SystemName[]): string {
  const header = ['workload', 'conns'];
  for (const s of systems) header.push(`${s} servers %`, 'kernel %', 'µs/req', 'wrk %', 'steal %');
  const keys = [...new Set(results.map((r) => `${r.workload}|${r.connections}`))];
  const rows = keys.map((k) => {
    const [workload, c] = k.split('|') as [WorkloadName, string];
    const row = [workload, c];
    for (const s of systems) {
      const r = cell(results, s, workload, Number(c));
      if (r?.cpu === null || r?.cpu === undefined || r.result === null) {
        row.push('–', '–', '–', '–', '–');
        continue;
      }
      const ok = r.result.okPerSecond;
      row.push(
        String(r.cpu.serversPercent),
        String(r.cpu.serversSystemPercent),
        ok > 0 ? String(Math.round((r.cpu.serversPercent / 100 / ok) * 1e6)) : '–',
        String(r.cpu.wrkPercent),
        r.cpu.stealPercent === null ? '–' : r.cpu.stealPercent.toFixed(1),
      );
    }
    return row;
  });
  return (
    'CPU (% of one core over the measured run, all members together; kernel: the part in system calls; µs/req: ' +
    "the members' CPU per successful request; steal: the machine's CPU time its host took during the run, in % of " +
    `all its CPUs)\n${formatTable(header, rows)}`
  );
}

export function failoverTable(summaries: readonly FailoverSummary[]): string {
  const header = [
    'system',
    'trials',
    'failed',
    'leader min',
    'median',
    'p90',
    'max',
    'write min',
    'median',
    'p90',
    'max',
  ];
  const rows = summaries.map((s) => [
    s.system,
    String(s.trials),
    String(s.failed),
    formatMs(s.leader.min),
    formatMs(s.leader.median),
    formatMs(s.leader.p90),
    formatMs(s.leader.max),
    formatMs(s.write.min),
    formatMs(s.write.median),
    formatMs(s.write.p90),
    formatMs(s.write.max),
  ]);
  return (
    'failover: ms from kill -9 of the leader (5 members) until a new leader reports itself, and until the first ' +
    `successful write\n${formatTable(header, rows)}`
  );
}
