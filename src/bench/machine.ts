// The tools the benchmark needs (wrk, etcd), installed from Debian when missing and we are root, and a
// description of the machine for the report.

import { execFile } from 'node:child_process';
import { accessSync, constants, statfsSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { delimiter, join } from 'node:path';

/** Longest an apt-get call may take before it is given up. */
const aptTimeoutMs = 300_000;

export interface Tool {
  /** The executable, or null when it is not there (see note). */
  readonly path: string | null;
  readonly version: string | null;
  /** Why it is missing, or how it got there. */
  readonly note: string | null;
}

export function which(command: string): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

interface Run {
  readonly code: number;
  readonly output: string;
}

/** Runs a command to completion (bounded by timeoutMs); stdout and stderr together. Never throws. */
export function run(command: string, args: readonly string[], timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { timeout: timeoutMs, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 8 << 20 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        // A command that could not start (ENOENT) or was killed prints nothing: say why instead.
        const why = error !== null && typeof error.code !== 'number' ? error.message : '';
        resolve({ code, output: `${stdout}${stderr}${why}` });
      },
    );
  });
}

function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join(' | ');
}

/**
 * The command, from PATH; when missing and running as root, `apt-get install -y <pkg>` (after `apt-get update`
 * if the first attempt fails). Never throws: a tool that cannot be had comes back with path null and a note.
 */
export async function ensureTool(
  command: string,
  pkg: string,
  versionArgs: readonly string[],
  log: (line: string) => void,
): Promise<Tool> {
  let path = which(command);
  let note: string | null = null;
  if (path === null) {
    if (process.getuid?.() !== 0) {
      return { path: null, version: null, note: `${command} is not on PATH; install ${pkg} (needs root)` };
    }
    log(`${command} is missing: apt-get install -y ${pkg}`);
    let result = await run('apt-get', ['install', '-y', '--no-install-recommends', pkg], aptTimeoutMs);
    if (result.code !== 0) {
      log(`apt-get install failed; apt-get update, then again`);
      await run('apt-get', ['update'], aptTimeoutMs);
      result = await run('apt-get', ['install', '-y', '--no-install-recommends', pkg], aptTimeoutMs);
    }
    path = which(command);
    if (path === null) {
      return {
        path: null,
        version: null,
        note: `${command} is missing and apt-get install ${pkg} failed: ${lastLines(result.output, 3)}`,
      };
    }
    note = `installed by this run (apt-get install ${pkg})`;
  }
  const version = await run(path, versionArgs, 10_000);
  return { path, version: firstVersion(version.output), note };
}

/** The first dotted version number in a tool's --version output ("wrk 4.1.0 [epoll] ..." → "4.1.0"). */
export function firstVersion(output: string): string | null {
  return /\d+\.\d+(?:\.\d+)?/.exec(output)?.[0] ?? null;
}

export interface Machine {
  readonly cores: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly loadAverageAtStart: readonly number[];
  /** The file system of the data directories (fsync on tmpfs would cost nothing). */
  readonly dataFileSystem: string;
  readonly date: string;
}

const fsNames: Record<number, string> = {
  0xef53: 'ext4',
  0x01021994: 'tmpfs',
  0x58465342: 'xfs',
  0x9123683e: 'btrfs',
  0x794c7630: 'overlayfs',
};

export function describeMachine(dataDir: string): Machine {
  const all = cpus();
  let fsType = 'unknown';
  try {
    const type = statfsSync(dataDir).type;
    fsType = fsNames[type] ?? `0x${type.toString(16)}`;
  } catch {
    // leave unknown
  }
  return {
    cores: all.length,
    cpuModel: all[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
    dataFileSystem: fsType,
    date: new Date().toISOString(),
  };
}
