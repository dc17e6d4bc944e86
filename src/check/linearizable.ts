// A linearizability checker for a key-value store whose every key is a register (read, write, compare-and-set,
// delete).
//
// What is checked. A history is linearizable if the operations can be put in one total order such that (1) if an
// operation returned before another was called, it comes first (real time), and (2) running them in that order on
// a single sequential register produces every output the clients observed. Equivalently, each operation appears to
// take effect at one instant between its call and its return. An operation whose outcome is unknown ('info') has
// no return: its instant may be any time after its call, or never (placing it after everything else is the same
// as never, because nothing observes it).
//
// Partitioning. Linearizability is compositional (Herlihy & Wing): a history is linearizable if and only if its
// restriction to each object is. Every key is an independent register, so each key's sub-history is checked on its
// own. That matters a lot: the search below is exponential in the number of concurrent operations.
//
// The search (Wing & Gong, with Lowe's memoization; the same algorithm as the Porcupine checker). Each operation
// becomes two events, its call and its return, sorted by time into one doubly linked list. Walking the list from
// the front:
// - At a call event, try to linearize that operation now: if the model (the register) accepts it in the current
//   state, remove its call and return events from the list, push it on a stack with the previous state, apply it,
//   and start again from the front of the list. A call that the model rejects is skipped: we move on to the next
//   event, i.e. we try another operation that is also pending at this point.
// - Reaching a return event means its operation has not been linearized although it has already returned, and
//   every pending operation before it has been tried. The current choice is a dead end: pop the last linearized
//   operation, restore the state and the two events, and continue from the event after its call (so the next
//   candidate is tried in its place). If the stack is empty, there is no linearization: the history is not
//   linearizable.
// - If the list empties, every operation was placed: the history is linearizable. (We stop as soon as only
//   operations of unknown outcome that are always legal are left: they can all go at the end.)
// Lowe's improvement: the state of the search is fully described by (which operations are linearized, the model
// state), whatever order they were linearized in. Each pair is cached when first reached; reaching it again is
// pruned, since everything that can follow it was (or is being) explored. The set is a bitset of Uint32Array words
// and the cache is keyed by a Zobrist hash (a random 32+21-bit code per operation, XORed in and out as the bit is
// set and cleared, so hashing costs O(1) per step); entries are compared in full, so a collision is harmless.
//
// Operations of unknown outcome. They never return, so once called they stay candidates until the end, and
// every subset of them could be placed at every point: with many of them the plain search explodes. Three sound
// refinements (see searchKey) keep it in check: they are tried only after the operations that returned; one is
// placed only where it is useful to the operation that follows it (otherwise it could as well be moved later);
// and of several pending ones with the same effect (e.g. two unknown writes of one value) only the first is tried.
// These prune the same way whatever path reaches a point, so they do not disturb the cache.
//
// Explanations. When the search fails, we report the point where it had placed the most operations that
// returned: that linearizable prefix, the operation whose return it then hit without being able to place it, and
// the register's value there.

import { formatOperation, HistoryError, type Operation, type Value } from './history.js';

export interface CheckOptions {
  /** Give up (result 'unknown') after this many milliseconds of search. Default 30 000; Infinity for none. */
  readonly timeoutMs?: number;
  /** Give up after this many search steps in all (one step: one event visited). Default: no limit. */
  readonly maxSteps?: number;
  /** The clock for `timeoutMs`, in milliseconds. Default performance.now(). */
  readonly now?: () => number;
  /** How many operations of the linearizable prefix an explanation lists (the last ones). Default 10. */
  readonly explainPrefix?: number;
}

/** Where the search for a linearization of one key got stuck. */
export interface Violation {
  readonly key: string;
  /** The longest linearization found, in order, with the register's value after each operation. */
  readonly prefix: readonly { readonly op: Operation; readonly after: Value }[];
  /** The register's value after the prefix. */
  readonly expected: Value;
  /** An operation that had to come next (it had returned) but could not be placed. */
  readonly blocked: Operation;
  /** True if `blocked` contradicts `expected` directly; false if it fits there but nothing can follow it. */
  readonly illegal: boolean;
  /** The other operations pending at that point (called, not yet placed), each of which also failed. */
  readonly concurrent: readonly Operation[];
  /** The number of operations of the key that the checker considered (failed ones and unknown reads dropped). */
  readonly total: number;
}

export type CheckResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly key: string; readonly explanation: string; readonly violation: Violation }
  | { readonly ok: 'unknown'; readonly key: string; readonly explanation: string; readonly steps: number };

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_EXPLAIN_PREFIX = 10;
/** The most pending operations a violation keeps. */
const MAX_CONCURRENT = 20;

/**
 * Checks that `history` is linearizable with respect to a map of independent registers that start absent.
 * Throws HistoryError if the history is malformed (a missing output, a return before its call, a duplicate id).
 */
export function checkHistory(history: readonly Operation[], options: CheckOptions = {}): CheckResult {
  const byKey = partition(history);
  const now = options.now ?? (() => performance.now());
  const budget: Budget = {
    steps: 0,
    maxSteps: options.maxSteps ?? Infinity,
    deadline: now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
    now,
  };
  // Small keys first, so that with a budget a violation is found before a hard key uses it all up.
  const keys = [...byKey.entries()].sort((a, b) => a[1].length - b[1].length || compare(a[0], b[0]));
  for (const [key, ops] of keys) {
    const outcome = searchKey(ops, budget);
    if (outcome.kind === 'violation') {
      const violation: Violation = { key, ...outcome.violation };
      return {
        ok: false,
        key,
        explanation: explain(violation, options.explainPrefix ?? DEFAULT_EXPLAIN_PREFIX),
        violation,
      };
    }
    if (outcome.kind === 'unknown') {
      const why =
        budget.steps >= budget.maxSteps ? `the step budget of ${budget.maxSteps}` : `the time budget`;
      return {
        ok: 'unknown',
        key,
        steps: budget.steps,
        explanation:
          `Key ${JSON.stringify(key)}: gave up after ${budget.steps} search steps (${why} ran out); ` +
          `at best ${outcome.progress} of its ${outcome.returned} operations that returned were linearized.`,
      };
    }
  }
  return { ok: true };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Validates the history and groups the operations that constrain anything by key. */
function partition(history: readonly Operation[]): Map<string, Operation[]> {
  const ids = new Set<number>();
  const byKey = new Map<string, Operation[]>();
  for (const op of history) {
    validate(op);
    if (ids.has(op.id)) throw new HistoryError(`duplicate operation id ${op.id}`);
    ids.add(op.id);
    if (op.status === 'fail') continue; // It did not happen.
    if (op.status === 'info' && op.kind === 'read') continue; // An unobserved read constrains nothing.
    let ops = byKey.get(op.key);
    if (ops === undefined) byKey.set(op.key, (ops = []));
    ops.push(op);
  }
  return byKey;
}

function validate(op: Operation): void {
  const bad = (why: string): never => {
    throw new HistoryError(`operation ${String(op.id)}: ${why}`);
  };
  if (typeof op.id !== 'number') bad('id must be a number');
  if (typeof op.key !== 'string') bad('key must be a string');
  if (op.status !== 'ok' && op.status !== 'fail' && op.status !== 'info') bad(`unknown status ${op.status}`);
  if (typeof op.call !== 'number' || !Number.isFinite(op.call)) bad('call time must be a finite number');
  if (op.return !== null) {
    if (typeof op.return !== 'number' || Number.isNaN(op.return)) bad('return time must be a number or null');
    if (op.return < op.call) bad(`returned (t=${op.return}) before its call (t=${op.call})`);
  }
  const isValue = (v: unknown): boolean => typeof v === 'string' || v === null;
  switch (op.kind) {
    case 'read':
      if (op.status === 'ok' && !isValue(op.output))
        bad('a completed read needs an output (a string or null)');
      break;
    case 'write':
      if (typeof op.input !== 'string') bad('a write needs a string input');
      break;
    case 'cas':
      if (typeof op.input !== 'object' || op.input === null) bad('a cas needs an input { from, to }');
      if (!isValue(op.input.from) || typeof op.input.to !== 'string')
        bad('a cas needs from: string | null, to: string');
      if (op.status === 'ok' && typeof op.output !== 'boolean') bad('a completed cas needs a boolean output');
      break;
    case 'delete':
      break;
    default:
      bad(`unknown kind ${(op as { kind: unknown }).kind as string}`);
  }
}

interface Budget {
  steps: number;
  readonly maxSteps: number;
  readonly deadline: number;
  readonly now: () => number;
}

type KeyOutcome =
  | { readonly kind: 'ok' }
  | { readonly kind: 'violation'; readonly violation: Omit<Violation, 'key'> }
  | { readonly kind: 'unknown'; readonly progress: number; readonly returned: number };

// The register model, compiled: each operation is one of these steps on an interned value (0 = absent).
/** Legal iff the state is A; the state is unchanged. */
const READ = 0;
/** Always legal; the state becomes A (write, delete, and their unknown-outcome versions). */
const SET = 1;
/** A successful cas: legal iff the state is A; it becomes B. */
const CAS_OK = 2;
/** A failed cas: legal iff the state is not A; unchanged. */
const CAS_FAIL = 3;
/** A cas of unknown outcome: always legal; the state becomes B if it was A. */
const CAS_ANY = 4;

/** The model's transition: the state after operation `i`, or -1 if it is illegal in state `s`. */
function step(code: Uint8Array, a: Int32Array, b: Int32Array, i: number, s: number): number {
  switch (code[i]) {
    case READ:
      return s === a[i] ? s : -1;
    case SET:
      return a[i]!;
    case CAS_OK:
      return s === a[i] ? b[i]! : -1;
    case CAS_FAIL:
      return s !== a[i] ? s : -1;
    default:
      return s === a[i] ? b[i]! : s;
  }
}

/** Searches for a linearization of one key's operations. */
function searchKey(ops: readonly Operation[], budget: Budget): KeyOutcome {
  const n = ops.length;

  // Compile the operations into model steps over interned values.
  const values: Value[] = [null];
  const valueIds = new Map<string, number>();
  const intern = (v: Value): number => {
    if (v === null) return 0;
    let id = valueIds.get(v);
    if (id === undefined) {
      id = values.length;
      values.push(v);
      valueIds.set(v, id);
    }
    return id;
  };
  const code = new Uint8Array(n);
  const a = new Int32Array(n);
  const b = new Int32Array(n);
  const returnTime = new Float64Array(n);
  // Operations that must be placed before the search can stop: those that returned, or that can be illegal.
  // The rest (unknown outcome, always legal) can all go at the end, in any order.
  const constrained = new Uint8Array(n);
  let remaining = 0;
  let returned = 0;
  for (let i = 0; i < n; i++) {
    const op = ops[i]!;
    const unknown = op.status === 'info';
    returnTime[i] = unknown || op.return === null ? Infinity : op.return;
    if (returnTime[i] !== Infinity) returned++;
    switch (op.kind) {
      case 'read':
        code[i] = READ;
        a[i] = intern(op.output ?? null);
        break;
      case 'write':
        code[i] = SET;
        a[i] = intern(op.input);
        break;
      case 'delete':
        code[i] = SET;
        a[i] = 0;
        break;
      case 'cas':
        code[i] = unknown ? CAS_ANY : op.output === true ? CAS_OK : CAS_FAIL;
        a[i] = intern(op.input.from);
        b[i] = intern(op.input.to);
        break;
    }
    if (returnTime[i] !== Infinity || code[i] === READ || code[i] === CAS_OK || code[i] === CAS_FAIL) {
      constrained[i] = 1;
      remaining++;
    }
  }
  if (remaining === 0) return { kind: 'ok' };

  // Events: node i < n is the call of operation i, node n + i its return; node 2n is the list head. Sorted by
  // time; at equal times calls come first, so operations that touch at an instant count as concurrent.
  const head = 2 * n;
  const next = new Int32Array(2 * n + 1);
  const prev = new Int32Array(2 * n + 1);
  const time = (node: number): number => (node < n ? ops[node]!.call : returnTime[node - n]!);
  const order = Array.from({ length: 2 * n }, (_, k) => k).sort((x, y) => {
    const tx = time(x);
    const ty = time(y);
    if (tx !== ty) return tx < ty ? -1 : 1;
    if (x < n !== y < n) return x < n ? -1 : 1;
    return x - y;
  });
  // Operations of unknown outcome that are always legal and have the same step (e.g. two unknown writes of one
  // value) are interchangeable once both are called: only the earliest one not yet placed is tried.
  const previousTwin = new Int32Array(n).fill(-1);
  const lastOfStep = new Map<string, number>();
  for (const node of order) {
    if (node >= n || constrained[node] === 1) continue;
    const sig = `${code[node]!} ${a[node]!} ${b[node]!}`;
    const twin = lastOfStep.get(sig);
    if (twin !== undefined) previousTwin[node] = twin;
    lastOfStep.set(sig, node);
  }
  let last = head;
  prev[head] = -1;
  for (const node of order) {
    next[last] = node;
    prev[node] = last;
    last = node;
  }
  next[last] = -1;

  // Zobrist codes for the linearized set, from a fixed seed so that runs are reproducible.
  const z1 = new Int32Array(n);
  const z2 = new Int32Array(n);
  let seed = 0x2545f491;
  for (let i = 0; i < n; i++) {
    seed = splitmix32(seed);
    z1[i] = seed;
    seed = splitmix32(seed);
    z2[i] = seed;
  }
  const bits = new Uint32Array((n + 31) >>> 5);
  let h1 = 0;
  let h2 = 0;
  const visited = new VisitedSet(bits.length);

  const stackOp = new Int32Array(n);
  const stackState = new Int32Array(n);
  let sp = 0;
  let state = 0;

  // How many operations that returned are linearized.
  let placed = 0;
  // The deepest point where the search got stuck, for the explanation.
  let bestPlaced = -1;
  let bestLen = 0;
  let bestOps = new Int32Array(0);
  let bestStates = new Int32Array(0);
  let bestState = 0;
  let bestBlocked = 0;
  let bestConcurrent: number[] = [];

  // The candidates at a point are the calls before the first return in the list. They are tried in three passes:
  // 0. the operations that returned, in list order;
  // 1. the operations with no return (unknown outcome: they may take effect at any later time) that are useful
  //    right now to an operation that returned (see below);
  // 2. those useful right now to another operation with no return.
  // An operation of unknown outcome I that is always legal is placed at a point only if it is useful there: if
  // some candidate X could follow it such that X cannot instead go first with I just after it, or with I dropped
  // to the very end of the linearization (where it constrains nothing). Any linearization can be rearranged into
  // one where every such I is useful (move each I later while the above allows it), and the test depends only on
  // the point (the set placed and the state), so the pruning is sound and consistent with the cache. It removes
  // most of the placements of unknown writes that nothing observed, which otherwise multiply the search space.
  let pass = 0;
  /**
   * The pass in which candidate `op` is tried at the current point, given `ns`, the state after it: 0 if it
   * returned; 1 or 2 if it has no return and is useful (to a candidate that returned, or only to one that did
   * not); -1 if it is illegal or useless here.
   */
  const passOf = (op: number, ns: number): number => {
    if (ns === -1) return -1;
    if (returnTime[op] !== Infinity) return 0;
    if (constrained[op] === 1) return 2;
    let best = -1;
    // The candidates once `op` is placed: the calls before the first return (its own return, at infinity, comes
    // after every call).
    for (let x = next[head]!; x < n; x = next[x]!) {
      if (x === op) continue;
      const after = step(code, a, b, x, ns); // I then X
      if (after === -1) continue;
      const first = step(code, a, b, x, state); // X first
      if (first !== -1 && (first === after || step(code, a, b, op, first) === after)) continue;
      if (returnTime[x] !== Infinity) return 1;
      best = 2;
    }
    return best;
  };

  let entry = next[head]!;
  while (true) {
    if ((++budget.steps & 1023) === 0 || budget.steps >= budget.maxSteps) {
      if (budget.steps >= budget.maxSteps || budget.now() > budget.deadline) {
        return { kind: 'unknown', progress: Math.max(bestPlaced, placed), returned };
      }
    }
    if (entry < n) {
      // A call: try to linearize operation `entry` now, if it belongs to this pass.
      const op = entry;
      const ns = (returnTime[op] === Infinity) === (pass !== 0) ? step(code, a, b, op, state) : -1;
      const twin = previousTwin[op]!;
      const eligible = twin === -1 || (bits[twin >>> 5]! & (1 << (twin & 31))) !== 0;
      if (ns !== -1 && (pass === 0 || (eligible && passOf(op, ns) === pass))) {
        const word = op >>> 5;
        const mask = 1 << (op & 31);
        bits[word]! |= mask;
        h1 ^= z1[op]!;
        h2 ^= z2[op]!;
        if (visited.add(bits, ns, h1, h2)) {
          stackOp[sp] = op;
          stackState[sp] = state;
          sp++;
          state = ns;
          // Lift the call and its return out of the list.
          const ret = n + op;
          next[prev[op]!] = next[op]!;
          prev[next[op]!] = prev[op]!;
          next[prev[ret]!] = next[ret]!;
          if (next[ret] !== -1) prev[next[ret]!] = prev[ret]!;
          remaining -= constrained[op]!;
          if (returnTime[op] !== Infinity) placed++;
          if (remaining === 0) return { kind: 'ok' };
          pass = 0;
          entry = next[head]!;
          continue;
        }
        bits[word]! &= ~mask;
        h1 ^= z1[op]!;
        h2 ^= z2[op]!;
      }
      entry = next[entry]!;
      continue;
    }
    if (pass === 0) {
      // Every operation that returned has been tried here. For the explanation, remember the point where the
      // most of them were placed (operations of unknown outcome placed early only clutter it).
      if (placed > bestPlaced) {
        bestPlaced = placed;
        bestLen = sp;
        bestOps = stackOp.slice(0, sp);
        bestStates = stackState.slice(0, sp);
        bestState = state;
        bestBlocked = entry - n;
        bestConcurrent = [];
        for (let e = next[head]!; e !== entry && bestConcurrent.length < MAX_CONCURRENT; e = next[e]!) {
          if (e < n && e !== bestBlocked) bestConcurrent.push(e);
        }
      }
    }
    if (pass < 2) {
      pass++;
      entry = next[head]!;
      continue;
    }

    // A return whose operation is not linearized, every candidate tried: a dead end.
    if (sp === 0) break;
    sp--;
    const op = stackOp[sp]!;
    state = stackState[sp]!;
    bits[op >>> 5]! &= ~(1 << (op & 31));
    h1 ^= z1[op]!;
    h2 ^= z2[op]!;
    remaining += constrained[op]!;
    if (returnTime[op] !== Infinity) placed--;
    // Put the return and then the call back (the reverse of lifting), and try the next candidate of the same pass.
    const ret = n + op;
    next[prev[ret]!] = ret;
    if (next[ret] !== -1) prev[next[ret]!] = ret;
    next[prev[op]!] = op;
    prev[next[op]!] = op;
    pass = passOf(op, step(code, a, b, op, state));
    entry = next[op]!;
  }

  const prefix = Array.from(bestOps, (i, k) => ({
    op: ops[i]!,
    after: values[k + 1 < bestLen ? bestStates[k + 1]! : bestState]!,
  }));
  return {
    kind: 'violation',
    violation: {
      prefix,
      expected: values[bestState]!,
      blocked: ops[bestBlocked]!,
      illegal: step(code, a, b, bestBlocked, bestState) === -1,
      concurrent: bestConcurrent.map((i) => ops[i]!),
      total: n,
    },
  };
}

function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) | 0;
}

/**
 * The cache of visited (linearized set, state) pairs: an open-addressing hash table over a flat pool of bitsets,
 * so that an entry costs no allocation. `h1` and `h2` are the set's Zobrist hashes; the state is mixed in.
 */
class VisitedSet {
  readonly #words: number;
  #pool: Uint32Array;
  #states: Int32Array;
  #hashA: Int32Array;
  #hashB: Int32Array;
  /** Entry index + 1, or 0 for an empty slot. */
  #table: Int32Array;
  #count = 0;

  constructor(words: number) {
    this.#words = words;
    const capacity = 1024;
    this.#pool = new Uint32Array(capacity * words);
    this.#states = new Int32Array(capacity);
    this.#hashA = new Int32Array(capacity);
    this.#hashB = new Int32Array(capacity);
    this.#table = new Int32Array(capacity * 2);
  }

  get size(): number {
    return this.#count;
  }

  /** Adds the pair; false if it was already there. */
  add(bits: Uint32Array, state: number, h1: number, h2: number): boolean {
    const ha = h1 ^ Math.imul(state + 1, 0x9e3779b1);
    const hb = h2 ^ Math.imul(state + 1, 0x27d4eb2f);
    const table = this.#table;
    const mask = table.length - 1;
    const words = this.#words;
    const pool = this.#pool;
    let slot = ha & mask;
    while (true) {
      const e = table[slot]! - 1;
      if (e < 0) break;
      if (this.#hashA[e] === ha && this.#hashB[e] === hb && this.#states[e] === state) {
        let w = 0;
        const base = e * words;
        while (w < words && pool[base + w] === bits[w]) w++;
        if (w === words) return false;
      }
      slot = (slot + 1) & mask;
    }
    let e = this.#count;
    if (e === this.#states.length) {
      this.#grow();
      return this.add(bits, state, h1, h2);
    }
    this.#count++;
    this.#pool.set(bits, e * words);
    this.#states[e] = state;
    this.#hashA[e] = ha;
    this.#hashB[e] = hb;
    table[slot] = ++e;
    return true;
  }

  #grow(): void {
    const capacity = this.#states.length * 2;
    const pool = new Uint32Array(capacity * this.#words);
    pool.set(this.#pool);
    this.#pool = pool;
    const resize = (old: Int32Array): Int32Array => {
      const a = new Int32Array(capacity);
      a.set(old);
      return a;
    };
    this.#states = resize(this.#states);
    this.#hashA = resize(this.#hashA);
    this.#hashB = resize(this.#hashB);
    const table = new Int32Array(capacity * 2);
    const mask = table.length - 1;
    for (let e = 0; e < this.#count; e++) {
      let slot = this.#hashA[e]! & mask;
      while (table[slot] !== 0) slot = (slot + 1) & mask;
      table[slot] = e + 1;
    }
    this.#table = table;
  }
}

function show(v: Value): string {
  return v === null ? 'absent' : JSON.stringify(v);
}

function explain(v: Violation, prefixShown: number): string {
  const lines = [`Key ${JSON.stringify(v.key)} is not linearizable (${v.total} operations considered).`];
  if (v.prefix.length === 0) {
    lines.push('No operation can be linearized first; the register starts absent.');
  } else {
    const shown = v.prefix.slice(Math.max(0, v.prefix.length - prefixShown));
    const which = shown.length < v.prefix.length ? `, the last ${shown.length}` : '';
    lines.push(`The longest linearizable prefix found has ${v.prefix.length} operations${which}:`);
    for (const { op, after } of shown) lines.push(`  ${formatOperation(op)}  => register ${show(after)}`);
  }
  lines.push(`Then the register held ${show(v.expected)}, and this operation could not be placed:`);
  lines.push(`  ${formatOperation(v.blocked)}`);
  const op = v.blocked;
  if (v.illegal && op.kind === 'read') {
    lines.push(`It read ${show(op.output ?? null)}, but the model expected ${show(v.expected)}.`);
  } else if (v.illegal && op.kind === 'cas' && op.output === true) {
    lines.push(
      `It succeeded, so the register must have held ${show(op.input.from)}; the model expected ${show(v.expected)}.`,
    );
  } else if (v.illegal && op.kind === 'cas') {
    lines.push(
      `It failed, so the register must not have held ${show(op.input.from)}, but the model says it did.`,
    );
  } else {
    lines.push(
      'It fits that state, but no order of it and the other pending operations is consistent with what followed.',
    );
  }
  if (v.concurrent.length > 0) {
    lines.push(
      'Other operations pending at that point (each was tried there; none leads to a linearization):',
    );
    for (const c of v.concurrent) lines.push(`  ${formatOperation(c)}`);
  }
  return lines.join('\n');
}
