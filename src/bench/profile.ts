// Summaries of V8 .cpuprofile files (node --cpu-prof): where the samples fell, by function, self time only.
// `node dist/bench/profile.js FILE...` prints the top of each; `npm run bench -- --profile` writes one per
// profiled node into <out>/profiles/.

import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  /** µs between consecutive samples (the first from startTime). */
  readonly timeDeltas?: readonly number[];
}

export interface SelfTime {
  /** "name file:line", or V8's own entries: (garbage collector), (program), (idle). */
  readonly frame: string;
  readonly samples: number;
  /** Share of all samples, idle included. */
  readonly percent: number;
  readonly ms: number;
}

function shortUrl(url: string): string {
  if (url === '') return '';
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('node_modules/');
  if (nm >= 0) return path.slice(nm + 'node_modules/'.length);
  const dist = path.lastIndexOf('/dist/');
  if (dist >= 0) return path.slice(dist + 1);
  return path;
}

/**
 * The profile cut to its last `seconds` (the measured run, when the process was stopped right after it), or
 * the whole of it when it has no sample times.
 */
export function lastSeconds(profile: CpuProfile, seconds: number): CpuProfile {
  const deltas = profile.timeDeltas;
  if (deltas === undefined || deltas.length !== profile.samples.length) return profile;
  const from = profile.endTime - seconds * 1e6;
  let t = profile.startTime;
  const samples: number[] = [];
  const kept: number[] = [];
  profile.samples.forEach((id, i) => {
    t += deltas[i]!;
    if (t >= from) {
      samples.push(id);
      kept.push(deltas[i]!);
    }
  });
  return { ...profile, startTime: Math.max(profile.startTime, from), samples, timeDeltas: kept };
}

/** Self time per function (same name, file and line taken together), largest first. */
export function selfTimes(profile: CpuProfile): SelfTime[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n] as const));
  const counts = new Map<string, number>();
  for (const id of profile.samples) {
    const f = byId.get(id)?.callFrame;
    if (f === undefined) continue;
    const where = shortUrl(f.url);
    const key = `${f.functionName === '' ? '(anonymous)' : f.functionName}${where === '' ? '' : ` ${where}:${f.lineNumber + 1}`}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const total = profile.samples.length;
  const msPerSample = total > 0 ? (profile.endTime - profile.startTime) / 1000 / total : 0;
  return [...counts]
    .map(([frame, samples]) => ({
      frame,
      samples,
      percent: total > 0 ? Math.round((samples / total) * 1000) / 10 : 0,
      ms: Math.round(samples * msPerSample),
    }))
    .sort((a, b) => b.samples - a.samples);
}

/**
 * Where a frame's code lives: a package (fastify, @grpc/grpc-js), one of our directories (dist/node), Node's
 * own JavaScript (node built-ins), native code without a script (C++ bindings such as writev), or V8's own
 * entries ((program), (garbage collector), (idle)).
 */
export function origin(frame: string): string {
  if (frame.startsWith('(') && frame.endsWith(')')) return frame;
  const where = frame.slice(frame.lastIndexOf(' ') + 1);
  if (!frame.includes(' ') || !where.includes(':')) return 'native (no script)';
  if (where.startsWith('node:')) return 'node built-ins';
  if (where.startsWith('dist/')) return where.split('/').slice(0, 2).join('/');
  const parts = where.split('/');
  return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1] ?? ''}` : parts[0]!;
}

/** Self time summed by origin (see above), largest first. */
export function selfTimesByOrigin(times: readonly SelfTime[]): SelfTime[] {
  const merged = new Map<string, { samples: number; ms: number }>();
  let total = 0;
  for (const t of times) {
    const key = origin(t.frame);
    const m = merged.get(key) ?? { samples: 0, ms: 0 };
    merged.set(key, { samples: m.samples + t.samples, ms: m.ms + t.ms });
    total += t.samples;
  }
  return [...merged]
    .map(([frame, m]) => ({
      frame,
      samples: m.samples,
      percent: total > 0 ? Math.round((m.samples / total) * 1000) / 10 : 0,
      ms: m.ms,
    }))
    .sort((a, b) => b.samples - a.samples);
}

/** The share that was not idle, the top origins, and the top `n` functions. */
export function summarizeProfile(profile: CpuProfile, n = 25): string {
  const all = selfTimes(profile);
  const idle = all.find((s) => s.frame === '(idle)')?.percent ?? 0;
  const seconds = (profile.endTime - profile.startTime) / 1e6;
  const row = (s: SelfTime) =>
    `${s.percent.toFixed(1).padStart(5)}%  ${String(s.ms).padStart(6)} ms  ${s.frame}`;
  return [
    `main thread busy ${(100 - idle).toFixed(1)}% of ${seconds.toFixed(1)} s (wall-clock samples: time the thread ` +
      'was preempted counts as busy)',
    'by origin:',
    ...selfTimesByOrigin(all).slice(0, 12).map(row),
    'by function:',
    ...all.slice(0, n).map(row),
  ].join('\n');
}

/** A .cpuprofile file's summary; only its last `seconds` when given. */
export async function summarizeFile(path: string, n = 25, seconds?: number): Promise<string> {
  const profile = JSON.parse(await readFile(path, 'utf8')) as CpuProfile;
  return summarizeProfile(seconds === undefined ? profile : lastSeconds(profile, seconds), n);
}

// node dist/bench/profile.js [--last SECONDS] FILE...
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--last');
  const seconds = at >= 0 ? Number(args.splice(at, 2)[1]) : undefined;
  for (const file of args) process.stdout.write(`${file}\n${await summarizeFile(file, 25, seconds)}\n\n`);
}
