// npm run bench -- [options] (see options.ts): Rafting against etcd on this machine, through the same HTTP
// load (wrk), then failover timing. Writes results.json and chart.svg into the results directory.
// Exit status 0 when every measurement ran; 1 when one failed; 2 on bad arguments.

import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderBenchChart } from './chart.js';
import { etcdTiming } from './etcd.js';
import { failoverSize, runFailover, summarizeFailover, type FailoverRun } from './failover.js';
import { describeMachine, ensureTool, type Tool } from './machine.js';
import { parseOptions, usage, UsageError, type BenchOptions } from './options.js';
import { summarizeFile } from './profile.js';
import { raftingTiming } from './rafting.js';
import { cpuTable, failoverTable, pooledTable, spreadTable, workloadTable } from './report.js';
import { clusterSize, runThroughput, type CellResult } from './throughput.js';
import { workloads } from './workloads.js';

const method = {
  clusters:
    `${clusterSize} members on loopback (127.0.0.1), each with its own data directory on the machine's disk; ` +
    'fsync on for both (Rafting: --data-dir, one fdatasync per batch; etcd: its default WAL fsync)',
  load:
    'wrk 4.1 (Debian), closed loop: each connection sends its next request when the answer to the last one ' +
    'arrives; threads = min(2, connections) against the leader; against every member, one wrk process per ' +
    'member with one thread and the connections split evenly; the results added up (latency percentiles merged ' +
    'from a grid of 120 percentiles per process)',
  requests:
    'keys of 16 bytes, values of 100 bytes; Rafting: PUT /kv/<key> {"value"} and GET /kv/<key>[?consistency=stale]; ' +
    'etcd: POST /v3/kv/put and /v3/kv/range (JSON gateway, base64 key and value; "serializable": true for stale)',
  cells:
    'every (workload, connections) pair runs on a fresh cluster (new data directories), after a warm-up of the ' +
    'same load that is not counted; the two systems alternate which goes first from one pair to the next ' +
    '(R E, E R, R E, ...), one system running at a time',
  rates:
    'requests/s counts successful answers (status < 400); errors are non-2xx/3xx answers plus socket errors ' +
    '(connect, read, write, timeout after 6 s)',
  cpu: 'from /proc/<pid>/stat (utime + stime) of each member before and after the run; wrk reads its own in done()',
  failover:
    `${failoverSize} members of each system up at once, trials alternating; one client writes to the leader one ` +
    'write at a time; the leader is SIGKILLed 200-1000 ms after that load starts; survivors polled every 5 ms ' +
    '(new leader = a survivor reports itself leader at a higher term); a write to every survivor every 20 ms ' +
    '(1 s timeout each) finds the first successful write; the killed member restarts and the cluster must agree ' +
    'on a leader and take a write through it before the next trial',
  timing:
    `Rafting: ${raftingTiming.tickIntervalMs} ms ticks, heartbeat ${raftingTiming.heartbeatIntervalMs} ms, election ` +
    `timeout random in [${raftingTiming.electionTimeoutMinMs}, ${raftingTiming.electionTimeoutMaxMs}) ms, PreVote and ` +
    `CheckQuorum. etcd: --heartbeat-interval ${etcdTiming.heartbeatIntervalMs} --election-timeout ` +
    `${etcdTiming.electionTimeoutMs} --pre-vote=${etcdTiming.preVote}; etcd randomises each timeout in [E, 2E), so the ` +
    'same [150, 300) ms range (in 30 ms steps); it refuses an election timeout under 5 heartbeats, so a 50 ms ' +
    'heartbeat would force 250-500 ms',
};

async function main(): Promise<number> {
  let options: BenchOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    if (e.message !== '') process.stderr.write(`bench: ${e.message}\n`);
    process.stderr.write(usage + '\n');
    return e.message === '' ? 0 : 2;
  }
  // Children are SIGKILLed on exit (procs.ts); make Ctrl-C and SIGTERM an exit.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`bench: ${signal}, stopping everything\n`);
      process.exit(130);
    });
  }
  const started = performance.now();
  const log = (line: string) =>
    process.stdout.write(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)}s] ${line}\n`);
  const out = options.out;
  await mkdir(out, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'rafting-bench-'));
  process.once('exit', () => rmSync(tmp, { recursive: true, force: true }));

  const notes: string[] = [];
  const wrk = await ensureTool('wrk', 'wrk', ['-v'], log);
  let etcd: Tool = { path: null, version: null, note: 'not requested (--only rafting)' };
  if (options.systems.includes('etcd')) etcd = await ensureTool('etcd', 'etcd-server', ['--version'], log);
  if (wrk.path === null && options.throughput) {
    process.stderr.write(`bench: cannot run without wrk: ${wrk.note ?? ''}\n`);
    return 1;
  }
  let systems = options.systems;
  if (options.systems.includes('etcd') && etcd.path === null) {
    const note = `etcd SKIPPED: ${etcd.note ?? 'not available'}`;
    notes.push(note);
    log(note);
    systems = systems.filter((s) => s !== 'etcd');
  }
  const machine = describeMachine(tmp);
  log(
    `${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}, ` +
      `wrk ${wrk.version ?? '?'}, etcd ${etcd.version ?? '-'}; data on ${machine.dataFileSystem}; ` +
      `load average ${machine.loadAverageAtStart.join(' ')}`,
  );
  if (machine.dataFileSystem === 'tmpfs')
    notes.push('the data directories are on tmpfs: fsync costs nothing there');
  log(`results in ${out}`);

  let cells: CellResult[] = [];
  let runs: CellResult[] = [];
  if (options.throughput && wrk.path !== null && systems.length > 0) {
    log(
      `throughput: ${options.workloads.join(', ')} at ${options.concurrency.join(', ')} connections, ` +
        `${options.warmupS} s warm-up + ${options.durationS} s each` +
        (options.repeat > 1 ? `, ${options.repeat} runs of each (the table shows the median run)` : ''),
    );
    ({ cells, runs } = await runThroughput(
      {
        tmp,
        out,
        etcd: etcd.path,
        systems,
        wrk: wrk.path,
        durationS: options.durationS,
        warmupS: options.warmupS,
        preloadKeys: options.preloadKeys,
        profile: options.profile,
        nodeArgs: options.nodeArgs,
        log,
      },
      options.workloads,
      options.concurrency,
      options.repeat,
    ));
  }
  let failover: FailoverRun = { trials: [], notes: [] };
  if (options.failoverTrials > 0 && systems.length > 0) {
    log(
      `failover: ${options.failoverTrials} trials per system, ${failoverSize} members, seed ${options.seed}`,
    );
    failover = await runFailover({
      tmp,
      etcd: etcd.path,
      systems,
      trials: options.failoverTrials,
      seed: options.seed,
      log,
    });
    notes.push(...failover.notes);
  }
  const summaries = systems.map((s) => summarizeFailover(s, failover.trials));

  const sections: string[] = [];
  for (const w of options.workloads) {
    if (cells.some((c) => c.workload === w))
      sections.push(workloadTable(cells, w, systems, options.concurrency));
  }
  if (cells.length > 0) sections.push(cpuTable(cells, systems));
  if (options.repeat > 1 && runs.length > 0) {
    sections.push(pooledTable(runs, options.workloads, systems, options.concurrency));
    sections.push(spreadTable(runs, options.workloads, systems, options.concurrency));
  }
  if (failover.trials.length > 0) sections.push(failoverTable(summaries));
  if (cells.some((c) => c.leaderChanged)) sections.push('* the leader changed during that run');
  if (options.profile) sections.push(await profileSummaries(out, options.durationS));
  const failedCells = cells.filter((c) => c.error !== null);
  const header =
    `Rafting vs etcd, ${machine.date.slice(0, 10)}: ${machine.cores} cores (${machine.cpuModel}), Node ${machine.node}, ` +
    `etcd ${etcd.version ?? 'skipped'}, wrk ${wrk.version ?? '?'}, Linux ${machine.kernel}` +
    (options.profile ? ' (Rafting under --cpu-prof: slower than usual)' : '') +
    (options.repeat > 1
      ? `; each row the run with the median requests/s of ${options.repeat} (all in results.json)`
      : '') +
    (options.nodeArgs.length > 0 ? ` (Rafting's nodes run with ${options.nodeArgs.join(' ')})` : '');
  const report = [header, ...sections, ...notes.map((n) => `NOTE: ${n}`)].join('\n\n');
  process.stdout.write(`\n${report}\n\n`);

  const results = {
    version: 1,
    machine,
    tools: { wrk, etcd, node: process.version },
    options,
    method,
    timing: { rafting: raftingTiming, etcd: etcdTiming },
    workloads: Object.fromEntries(options.workloads.map((w) => [w, workloads[w]])),
    throughput: cells,
    ...(options.repeat > 1 ? { throughputRuns: runs } : {}),
    failover: { trials: failover.trials, summaries },
    notes,
    elapsedS: Math.round((performance.now() - started) / 1000),
  };
  await writeFile(join(out, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  await writeFile(join(out, 'report.txt'), report + '\n');
  await writeFile(
    join(out, 'chart.svg'),
    renderBenchChart({
      title:
        `Rafting vs etcd (${clusterSize} members, fsync on)` + (options.profile ? ', Rafting profiled' : ''),
      subtitle: `${machine.date.slice(0, 10)}, ${machine.cores} cores ${machine.cpuModel}, Node ${machine.node}, etcd ${etcd.version ?? '-'}, wrk ${wrk.version ?? '?'}; ${options.durationS} s per run`,
      cells,
      workloads: options.workloads,
      concurrency: options.concurrency,
      systems,
      trials: failover.trials,
    }),
  );
  log(`wrote ${join(out, 'results.json')}, report.txt and chart.svg`);
  return failedCells.length > 0 || failover.notes.length > 0 ? 1 : 0;
}

/**
 * The top self-time functions of every profile the run kept, over the measured run only (each node stops right
 * after it), written beside them; the leaders' are returned.
 */
async function profileSummaries(out: string, durationS: number): Promise<string> {
  const dir = join(out, 'profiles');
  const files = (await readdir(dir).catch(() => [] as string[]))
    .filter((f) => f.endsWith('.cpuprofile'))
    .sort();
  const parts: string[] = [];
  for (const f of files) parts.push(`${f}\n${await summarizeFile(join(dir, f), 20, durationS)}`);
  if (parts.length === 0) return 'no profiles were written';
  await writeFile(join(dir, 'summary.txt'), parts.join('\n\n') + '\n');
  const leaders = parts.filter((p) => p.split('\n')[0]!.includes('-leader'));
  return (
    `CPU profiles of the leaders (self time over the last ${durationS} s); every node's in ${dir}/summary.txt\n\n` +
    leaders.join('\n\n')
  );
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
