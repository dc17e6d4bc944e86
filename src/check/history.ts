// Histories of operations on a key-value store, as a client-side test records them: each operation has a call
// time, a return time (unknown if the client gave up waiting) and an outcome. The linearizability checker
// (linearizable.ts) decides whether some total order of the operations, consistent with real time, explains every
// observed output.
//
// Semantics of the outcome (`status`):
// - 'ok': the operation completed and its output was observed.
// - 'fail': it definitely did not take effect (e.g. rejected before being proposed). The checker drops it.
// - 'info': unknown outcome (e.g. a timeout). It may have taken effect at any moment after its call, or never.
//   Its return time is treated as +infinity and its output constrains nothing; an unknown read is dropped.
// Every key starts absent (null). A delete makes the key absent again.

/** A register's value; null is "absent". */
export type Value = string | null;

export type OpStatus = 'ok' | 'fail' | 'info';

export type OpKind = 'read' | 'write' | 'cas' | 'delete';

/** Compare-and-set: set the key to `to` only if it currently holds `from` (null: only if it is absent). */
export interface CasInput {
  readonly from: Value;
  readonly to: string;
}

interface OpCommon {
  /** Unique within a history; used in explanations. */
  readonly id: number;
  /** The client that issued the operation. A client has at most one operation outstanding. */
  readonly process: number | string;
  readonly key: string;
  /** When the client issued the operation (any monotonic clock; only the order of times matters). */
  readonly call: number;
  /** When the client saw the outcome; null or Infinity when the outcome is unknown. */
  readonly return: number | null;
  readonly status: OpStatus;
}

export interface ReadOp extends OpCommon {
  readonly kind: 'read';
  readonly input?: undefined;
  /** The value read; required when status is 'ok'. */
  readonly output?: Value;
}

export interface WriteOp extends OpCommon {
  readonly kind: 'write';
  readonly input: string;
  readonly output?: undefined;
}

export interface CasOp extends OpCommon {
  readonly kind: 'cas';
  readonly input: CasInput;
  /** Whether the comparison succeeded (and the value was set); required when status is 'ok'. */
  readonly output?: boolean;
}

export interface DeleteOp extends OpCommon {
  readonly kind: 'delete';
  readonly input?: undefined;
  readonly output?: undefined;
}

export type Operation = ReadOp | WriteOp | CasOp | DeleteOp;

/** A malformed history (a bug in whatever recorded it, not a linearizability violation). */
export class HistoryError extends Error {
  override name = 'HistoryError';
}

function show(v: Value): string {
  return v === null ? 'absent' : JSON.stringify(v);
}

function showTime(t: number | null): string {
  return t === null || t === Infinity ? '∞' : String(t);
}

/** One line describing an operation, e.g. `#7 process 2: cas "1" -> "3" ok [t=12..15]`. */
export function formatOperation(op: Operation): string {
  let what: string;
  const unknown = op.status === 'info';
  switch (op.kind) {
    case 'read':
      what = unknown || op.output === undefined ? 'read -> ?' : `read -> ${show(op.output)}`;
      break;
    case 'write':
      what = `write ${show(op.input)}`;
      break;
    case 'delete':
      what = 'delete';
      break;
    case 'cas': {
      const outcome = unknown || op.output === undefined ? '' : op.output ? ' ok' : ' failed';
      what = `cas ${show(op.input.from)} -> ${show(op.input.to)}${outcome}`;
      break;
    }
  }
  const status = op.status === 'ok' ? '' : op.status === 'info' ? ' (outcome unknown)' : ' (failed)';
  return `#${op.id} process ${op.process}: ${what} [t=${showTime(op.call)}..${showTime(op.return)}]${status}`;
}

/** What a client is about to do: the part of an operation known at call time. */
export type OpRequest =
  | { readonly kind: 'read'; readonly key: string }
  | { readonly kind: 'write'; readonly key: string; readonly value: string }
  | { readonly kind: 'cas'; readonly key: string; readonly from: Value; readonly to: string }
  | { readonly kind: 'delete'; readonly key: string };

interface Pending {
  readonly process: number | string;
  readonly request: OpRequest;
  readonly call: number;
}

/**
 * Records a history as clients run: `invoke` before sending a request, then exactly one of `ok`, `fail` or
 * `info` when its outcome is known. Operations still outstanding when `history()` is called count as 'info'.
 */
export class HistoryRecorder {
  readonly #clock: () => number;
  readonly #done: Operation[] = [];
  readonly #pending = new Map<number, Pending>();
  #nextId = 0;

  /** `clock` must be monotonic; the default is performance.now(). */
  constructor(clock: () => number = () => performance.now()) {
    this.#clock = clock;
  }

  /** Returns the operation's id. */
  invoke(process: number | string, request: OpRequest): number {
    const id = this.#nextId++;
    this.#pending.set(id, { process, request, call: this.#clock() });
    return id;
  }

  /** The operation completed: pass the value read (reads) or whether the comparison succeeded (cas). */
  ok(id: number, output?: Value | boolean): void {
    const p = this.#take(id);
    const r = p.request;
    if (r.kind === 'read' && (typeof output === 'string' || output === null)) {
      this.#push(id, p, 'ok', output, this.#clock());
    } else if (r.kind === 'cas' && typeof output === 'boolean') {
      this.#push(id, p, 'ok', output, this.#clock());
    } else if ((r.kind === 'write' || r.kind === 'delete') && output === undefined) {
      this.#push(id, p, 'ok', undefined, this.#clock());
    } else {
      throw new HistoryError(`operation ${id} (${r.kind}) completed with an output of the wrong type`);
    }
  }

  /** The operation definitely did not take effect. */
  fail(id: number): void {
    this.#push(id, this.#take(id), 'fail', undefined, this.#clock());
  }

  /** The outcome is unknown (e.g. a timeout): it may take effect at any later time, or never. */
  info(id: number): void {
    this.#push(id, this.#take(id), 'info', undefined, null);
  }

  /** The operations recorded so far, by id; outstanding ones as 'info'. */
  history(): Operation[] {
    const ops = [...this.#done];
    for (const [id, p] of this.#pending) ops.push(toOperation(id, p, 'info', undefined, null));
    return ops.sort((a, b) => a.id - b.id);
  }

  #take(id: number): Pending {
    const p = this.#pending.get(id);
    if (p === undefined) throw new HistoryError(`operation ${id} is not outstanding`);
    this.#pending.delete(id);
    return p;
  }

  #push(
    id: number,
    p: Pending,
    status: OpStatus,
    output: Value | boolean | undefined,
    ret: number | null,
  ): void {
    this.#done.push(toOperation(id, p, status, output, ret));
  }
}

function toOperation(
  id: number,
  p: Pending,
  status: OpStatus,
  output: Value | boolean | undefined,
  ret: number | null,
): Operation {
  const common = { id, process: p.process, key: p.request.key, call: p.call, return: ret, status };
  const r = p.request;
  switch (r.kind) {
    case 'read':
      return typeof output === 'boolean' || output === undefined
        ? { ...common, kind: 'read' }
        : { ...common, kind: 'read', output };
    case 'write':
      return { ...common, kind: 'write', input: r.value };
    case 'delete':
      return { ...common, kind: 'delete' };
    case 'cas':
      return typeof output === 'boolean'
        ? { ...common, kind: 'cas', input: { from: r.from, to: r.to }, output }
        : { ...common, kind: 'cas', input: { from: r.from, to: r.to } };
  }
}
