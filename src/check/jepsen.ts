// A parser for Jepsen's log of a single compare-and-set register (the etcd histories in
// test/fixtures/etcd-jepsen). One event per line:
//
//   INFO  jepsen.util - <process> <type> <f> <value>
//
// <type> is :invoke, :ok, :fail or :info; <f> is :read, :write or :cas; <value> is nil, a value, [FROM TO] for a
// cas, or :timed-out on :info (and on a :fail read). Fields are separated by tabs or spaces.
//
// Mapping to history.ts (the time of an event is its position in the log, counting events only):
// - :ok read v             -> read, status 'ok', output v (nil -> null, absent)
// - :ok write / :ok cas     -> status 'ok' (a cas with output true)
// - :fail cas               -> status 'ok' with output false: Jepsen's :fail on a cas means the comparison failed,
//                              which is an observation (the value differed), not "nothing happened"
// - :fail read              -> status 'fail': a read that never completed constrains nothing (the checker drops it)
// - :fail write             -> status 'fail': it did not take effect
// - :info (:timed-out)      -> status 'info', return null: it may take effect any time after its call, or never
// - an :invoke with no completion by the end of the log -> status 'info' as well
// Lines for the :nemesis process and blank lines are skipped; anything else that does not parse is an error.

import { HistoryError, type Operation, type Value } from './history.js';

export interface JepsenParseOptions {
  /** The key every operation is on. Default 'register'. */
  readonly key?: string;
}

const LINE = /^INFO\s+jepsen\.util\s+-\s+(\S+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)\s+(.*?)\s*$/;

type Arg =
  | { readonly kind: 'value'; readonly value: Value }
  | { readonly kind: 'pair'; readonly from: Value; readonly to: Value };

interface Invocation {
  readonly id: number;
  readonly process: number;
  readonly f: 'read' | 'write' | 'cas';
  readonly arg: Arg;
  readonly call: number;
  readonly line: number;
}

/** Parses a Jepsen register log into operations on one key, ordered by call. */
export function parseJepsenLog(text: string, options: JepsenParseOptions = {}): Operation[] {
  const key = options.key ?? 'register';
  const pending = new Map<number, Invocation>();
  const done: Operation[] = [];
  let time = 0;
  let nextId = 0;

  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    const fail = (why: string): never => {
      throw new HistoryError(`line ${lineNo}: ${why}: ${JSON.stringify(raw)}`);
    };
    if (raw.trim() === '') return;
    if (/^INFO\s+jepsen\.util\s+-\s+:nemesis\s/.test(raw)) return;
    const m = LINE.exec(raw);
    if (m === null) return fail('not a Jepsen register event');
    const procText = m[1]!;
    const type = m[2]!;
    const f = m[3] as 'read' | 'write' | 'cas';
    const valueText = m[4]!;
    if (!/^\d+$/.test(procText)) return fail('the process is not a number');
    const proc = Number(procText);
    const t = time++;

    if (type === 'invoke') {
      if (pending.has(proc)) fail(`process ${proc} invoked while its previous operation was outstanding`);
      const arg = parseArg(valueText, fail);
      if (f === 'cas' && arg.kind !== 'pair') fail('a cas needs [FROM TO]');
      if (f === 'write' && (arg.kind !== 'value' || arg.value === null)) fail('a write needs a value');
      pending.set(proc, { id: nextId++, process: proc, f, arg, call: t, line: lineNo });
      return;
    }

    const inv = pending.get(proc);
    if (inv === undefined) return fail(`process ${proc} completed an operation it never invoked`);
    if (inv.f !== f) fail(`process ${proc} invoked :${inv.f} but completed :${f}`);
    pending.delete(proc);

    if (type === 'info') {
      done.push(toOperation(key, inv, 'info', null, undefined));
      return;
    }
    if (valueText === ':timed-out') {
      // A :fail :read :timed-out: never completed. (Other timed-out failures did not take effect either.)
      done.push(toOperation(key, inv, 'fail', t, undefined));
      return;
    }
    const arg = parseArg(valueText, fail);
    if (f === 'read') {
      if (arg.kind !== 'value') return fail('a read returns a single value');
      done.push(toOperation(key, inv, type === 'ok' ? 'ok' : 'fail', t, arg.value));
      return;
    }
    if (!sameArg(arg, inv.arg))
      fail(`the completion's arguments differ from the invocation's (line ${inv.line})`);
    if (f === 'cas') {
      // :fail on a cas: the comparison failed. That was observed, so the operation completed with output false.
      done.push(toOperation(key, inv, 'ok', t, type === 'ok'));
    } else {
      done.push(toOperation(key, inv, type === 'ok' ? 'ok' : 'fail', t, undefined));
    }
  });

  for (const inv of pending.values()) done.push(toOperation(key, inv, 'info', null, undefined));
  return done.sort((x, y) => x.call - y.call);
}

function parseValue(token: string, fail: (why: string) => never): Value {
  if (token === 'nil') return null;
  if (token === '' || token.startsWith(':') || /[\s[\]]/.test(token))
    return fail(`bad value ${JSON.stringify(token)}`);
  return token;
}

function parseArg(text: string, fail: (why: string) => never): Arg {
  const pair = /^\[\s*(\S+)\s+(\S+)\s*\]$/.exec(text);
  if (pair !== null)
    return { kind: 'pair', from: parseValue(pair[1]!, fail), to: parseValue(pair[2]!, fail) };
  return { kind: 'value', value: parseValue(text, fail) };
}

function sameArg(x: Arg, y: Arg): boolean {
  if (x.kind === 'value' && y.kind === 'value') return x.value === y.value;
  if (x.kind === 'pair' && y.kind === 'pair') return x.from === y.from && x.to === y.to;
  return false;
}

function toOperation(
  key: string,
  inv: Invocation,
  status: 'ok' | 'fail' | 'info',
  ret: number | null,
  output: Value | boolean | undefined,
): Operation {
  const common = { id: inv.id, process: inv.process, key, call: inv.call, return: ret, status };
  const arg = inv.arg;
  switch (inv.f) {
    case 'read':
      return output === undefined || typeof output === 'boolean'
        ? { ...common, kind: 'read' }
        : { ...common, kind: 'read', output };
    case 'write':
      if (arg.kind !== 'value' || arg.value === null)
        throw new HistoryError('unreachable: write without a value');
      return { ...common, kind: 'write', input: arg.value };
    case 'cas': {
      if (arg.kind !== 'pair' || arg.to === null) {
        throw new HistoryError(`line ${inv.line}: a cas must set a value (TO cannot be nil)`);
      }
      const input = { from: arg.from, to: arg.to };
      return typeof output === 'boolean'
        ? { ...common, kind: 'cas', input, output }
        : { ...common, kind: 'cas', input };
    }
  }
}
