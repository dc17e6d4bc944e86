// The clients: concurrent loops of reads, writes (unique values), compare-and-sets and deletes over a few keys,
// each request to a random node's REST API, every invocation and outcome recorded in a HistoryRecorder.
//
// Outcomes (what the API promises, README "Errors"):
// - 200: ok. A read's value; 404 key_not_found on a read: ok, absent. 409 on a CAS: ok, the comparison failed.
// - 503 no_leader / proposal_dropped / unavailable: the request did not apply: fail.
// - the connection refused (the node is down): the request was never sent: fail.
// - anything else (a network error, our timeout, 504 timeout, 503 leader_unreachable, 5xx): unknown: info.

import type { HistoryRecorder, OpRequest, Value } from '../check/index.js';
import { SeededRandom } from '../raft/random.js';

export type ReadMode = 'linearizable' | 'stale';

/** One finished request, for the chart: when it ended (ms since the run began), its outcome and latency. */
export interface Completion {
  readonly end: number;
  readonly status: 'ok' | 'fail' | 'info';
  readonly latencyMs: number;
  readonly kind: OpRequest['kind'];
}

export interface OpResult {
  readonly status: 'ok' | 'fail' | 'info';
  readonly output?: Value | boolean;
}

const definitelyNotApplied = ['no_leader', 'proposal_dropped', 'unavailable'];

/** Sends one operation to the node at `url` and classifies the answer. Never throws. */
export async function sendOp(
  url: string,
  op: OpRequest,
  timeoutMs: number,
  readMode: ReadMode = 'linearizable',
): Promise<OpResult> {
  const path = `${url}/kv/${encodeURIComponent(op.key)}`;
  const signal = AbortSignal.timeout(timeoutMs);
  let res: Response;
  let body: { value?: string; error?: { code?: string } };
  try {
    if (op.kind === 'read') {
      res = await fetch(readMode === 'stale' ? `${path}?consistency=stale` : path, { signal });
    } else if (op.kind === 'delete') {
      res = await fetch(path, { method: 'DELETE', signal });
    } else {
      const payload =
        op.kind === 'write'
          ? { value: op.value }
          : { value: op.to, ...(op.from === null ? { prevIndex: 0 } : { prevValue: op.from }) };
      res = await fetch(path, {
        method: 'PUT',
        body: JSON.stringify(payload),
        headers: { 'content-type': 'application/json' },
        signal,
      });
    }
    body = (await res.json().catch(() => ({}))) as typeof body;
  } catch (e) {
    // Refused: the request never reached a server, so it did not happen. Otherwise (timed out, cut off) it may
    // or may not have happened.
    return { status: refused(e) ? 'fail' : 'info' };
  }
  const code = body.error?.code ?? '';
  if (res.status === 200) {
    if (op.kind === 'read') return { status: 'ok', output: body.value ?? null };
    if (op.kind === 'cas') return { status: 'ok', output: true };
    return { status: 'ok' };
  }
  if (res.status === 404 && op.kind === 'read' && code === 'key_not_found')
    return { status: 'ok', output: null };
  if (res.status === 409 && op.kind === 'cas' && code === 'condition_failed') {
    return { status: 'ok', output: false };
  }
  if (res.status === 503 && definitelyNotApplied.includes(code)) return { status: 'fail' };
  return { status: 'info' };
}

/** Runs one operation and records it (in the history, and as a completion for the chart). */
export async function perform(
  recorder: HistoryRecorder,
  process: number | string,
  url: string,
  op: OpRequest,
  options: {
    timeoutMs: number;
    readMode?: ReadMode;
    completions?: Completion[];
    now: () => number;
    /** Operation id → the node's URL, for the history file. */
    targets?: Map<number, string>;
  },
): Promise<OpResult> {
  const started = options.now();
  const id = recorder.invoke(process, op);
  options.targets?.set(id, url);
  const result = await sendOp(url, op, options.timeoutMs, options.readMode);
  if (result.status === 'ok') {
    if (op.kind === 'read' || op.kind === 'cas') recorder.ok(id, result.output);
    else recorder.ok(id);
  } else if (result.status === 'fail') recorder.fail(id);
  else recorder.info(id);
  const end = options.now();
  options.completions?.push({ end, status: result.status, latencyMs: end - started, kind: op.kind });
  return result;
}

export interface WorkloadOptions {
  readonly recorder: HistoryRecorder;
  readonly urls: () => readonly string[];
  readonly keys: readonly string[];
  readonly clients: number;
  readonly seed: number;
  /** Stop issuing operations at this time (the `now` clock). */
  readonly until: number;
  readonly now: () => number;
  readonly timeoutMs: number;
  readonly readMode: ReadMode;
  readonly completions: Completion[];
  readonly targets: Map<number, string>;
  /** Share of reads; the rest is split among writes, CAS and deletes. */
  readonly readShare?: number;
  /** The URL of the node a request goes to; undefined (or no function): a uniformly random node. */
  readonly urlFor?: (rng: SeededRandom, op: OpRequest) => string | undefined;
}

/** Runs the clients until `until`, each with one request outstanding at a time. */
export async function runWorkload(options: WorkloadOptions): Promise<void> {
  const readShare = options.readShare ?? 0.45;
  await Promise.all(
    Array.from({ length: options.clients }, async (_, process) => {
      const rng = new SeededRandom(options.seed * 1000 + process + 1);
      // The last value this client saw per key, for CAS attempts that can succeed.
      const seen = new Map<string, Value>();
      let written = 0;
      while (options.now() < options.until) {
        const key = rng.pick(options.keys);
        const roll = rng.float();
        const value = `c${process}-${written++}`;
        const writeShare = readShare + (1 - readShare) * 0.55;
        const casShare = readShare + (1 - readShare) * 0.9;
        const op: OpRequest =
          roll < readShare
            ? { kind: 'read', key }
            : roll < writeShare
              ? { kind: 'write', key, value }
              : roll < casShare
                ? { kind: 'cas', key, from: rng.chance(0.15) ? null : (seen.get(key) ?? null), to: value }
                : { kind: 'delete', key };
        const url = options.urlFor?.(rng, op) ?? rng.pick(options.urls());
        const result = await perform(options.recorder, process, url, op, {
          timeoutMs: options.timeoutMs,
          readMode: options.readMode,
          completions: options.completions,
          now: options.now,
          targets: options.targets,
        });
        if (result.status === 'ok') {
          if (op.kind === 'read') seen.set(key, (result.output as Value | undefined) ?? null);
          else if (op.kind === 'write') seen.set(key, op.value);
          else if (op.kind === 'delete') seen.set(key, null);
          else if (op.kind === 'cas' && result.output === true) seen.set(key, op.to);
        } else if (result.status === 'fail') {
          // Nobody to talk to: do not spin.
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    }),
  );
}

/** True if fetch failed because nothing listened (the request was never sent). */
function refused(e: unknown): boolean {
  let cause: unknown = e;
  for (let depth = 0; depth < 4 && typeof cause === 'object' && cause !== null; depth++) {
    if ((cause as { code?: unknown }).code === 'ECONNREFUSED') return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}
