// Every process the benchmark starts goes through spawnTracked, so that an exiting runner (normally, on an
// error, or on SIGINT/SIGTERM, which main.ts turns into an exit) SIGKILLs whatever is still running. Plus the
// CPU time of a process, read from /proc/<pid>/stat.

import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';

const tracked = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of tracked) child.kill('SIGKILL');
});

/** spawn(), remembered until the child exits. */
export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions): ChildProcess {
  const child = spawn(command, args, options);
  tracked.add(child);
  child.once('exit', () => tracked.delete(child));
  // A spawn failure (ENOENT) surfaces as 'error'; the caller sees the child exit without a pid.
  child.once('error', () => tracked.delete(child));
  return child;
}

/** Sends `signal` and waits for the exit; SIGKILL if it is still there after `graceMs`. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL', graceMs = 10_000) {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  if (signal === 'SIGKILL') return exited;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), graceMs)));
  const outcome = await Promise.race([exited.then(() => 'exited' as const), late]);
  clearTimeout(timer);
  if (outcome === 'late') {
    child.kill('SIGKILL');
    await exited;
  }
}

let clockTicks: number | undefined;

/** The kernel's clock ticks per second (USER_HZ), in which /proc reports CPU time. */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/**
 * utime and stime from the text of /proc/<pid>/stat, in clock ticks. The command name (field 2) is in
 * parentheses and may contain spaces or parentheses itself, so fields are counted from the last ')'.
 */
export function parseStat(stat: string): { user: number; system: number } {
  const close = stat.lastIndexOf(')');
  if (close < 0) throw new Error('not a /proc/<pid>/stat line');
  // After ')' come field 3 (state) onward; utime and stime are fields 14 and 15.
  const fields = stat
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const user = Number(fields[14 - 3]);
  const system = Number(fields[15 - 3]);
  if (!Number.isFinite(user) || !Number.isFinite(system)) throw new Error('malformed /proc/<pid>/stat');
  return { user, system };
}

/** utime + stime, in clock ticks. */
export function parseStatTicks(stat: string): number {
  const { user, system } = parseStat(stat);
  return user + system;
}

/**
 * The machine's CPU time so far, in clock ticks: all of it, and the part stolen (a virtual machine's CPUs waiting
 * for the host, which runs something else).
 */
export interface MachineTimes {
  readonly total: number;
  readonly steal: number;
}

/** MachineTimes from the first line of /proc/stat; undefined where there is none. */
export function parseMachineStat(stat: string): MachineTimes | undefined {
  const line = stat.split('\n', 1)[0] ?? '';
  const fields = line.trim().split(/\s+/);
  if (fields[0] !== 'cpu') return undefined;
  // user nice system idle iowait irq softirq steal [guest guest_nice, already counted in user and nice]
  const ticks = fields.slice(1, 9).map(Number);
  if (ticks.length < 8 || ticks.some((t) => !Number.isFinite(t))) return undefined;
  return { total: ticks.reduce((a, b) => a + b, 0), steal: ticks[7]! };
}

export function machineTimes(): MachineTimes | undefined {
  try {
    return parseMachineStat(readFileSync('/proc/stat', 'utf8'));
  } catch {
    return undefined;
  }
}

/** CPU seconds the process has used so far (all its threads), in user and kernel mode; undefined when gone. */
export function cpuTimes(pid: number): { user: number; system: number } | undefined {
  try {
    const { user, system } = parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    const hz = clockTicksPerSecond();
    return { user: user / hz, system: system / hz };
  } catch {
    return undefined;
  }
}
