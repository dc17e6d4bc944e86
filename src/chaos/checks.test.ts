import { describe, expect, it } from 'vitest';
import type { Operation } from '../check/index.js';
import { SeededRandom } from '../raft/random.js';
import { partitionCuts } from './nemesis.js';
import { findLostWrites } from './run.js';

describe('partitionCuts', () => {
  const ids3 = ['n1', 'n2', 'n3'];
  const ids5 = ['n1', 'n2', 'n3', 'n4', 'n5'];
  const linked = (cuts: [string, string][], a: string, b: string) =>
    !cuts.some(([x, y]) => (x === a && y === b) || (x === b && y === a));

  it('isolate cuts one node from every other', () => {
    const { cuts, groups } = partitionCuts('isolate', ids5, new SeededRandom(1));
    expect(cuts).toHaveLength(4);
    expect(groups[0]).toHaveLength(1);
  });

  it('halves leaves a majority together', () => {
    const { cuts, groups } = partitionCuts('halves', ids5, new SeededRandom(2));
    expect(groups.map((g) => g.length)).toEqual([2, 3]);
    expect(cuts).toHaveLength(6);
  });

  it('bridge: one node talks to both sides, which cannot talk to each other', () => {
    const { cuts, groups } = partitionCuts('bridge', ids5, new SeededRandom(3));
    const bridge = groups[0]!.find((id) => groups[1]!.includes(id))!;
    for (const other of ids5) if (other !== bridge) expect(linked(cuts, bridge, other)).toBe(true);
    expect(cuts).toHaveLength(4);
    expect(partitionCuts('bridge', ids3, new SeededRandom(3)).cuts).toHaveLength(1);
  });

  it('ring: every node sees exactly its two neighbours (overlapping majorities of 3)', () => {
    const { cuts } = partitionCuts('ring', ids5, new SeededRandom(4));
    expect(cuts).toHaveLength(5);
    for (const id of ids5) expect(ids5.filter((o) => o !== id && linked(cuts, id, o))).toHaveLength(2);
  });
});

describe('findLostWrites', () => {
  const w = (id: number, value: string, call: number, ret: number | null, status: 'ok' | 'info' = 'ok') =>
    ({ id, process: id, key: 'k', call, return: ret, status, kind: 'write', input: value }) as Operation;
  const r = (id: number, value: string | null, call: number, ret: number) =>
    ({
      id,
      process: id,
      key: 'k',
      call,
      return: ret,
      status: 'ok',
      kind: 'read',
      output: value,
    }) as Operation;

  it('reports an acknowledged write that nothing read and nothing overwrote', () => {
    expect(findLostWrites([w(0, 'a', 0, 1), r(1, null, 2, 3)]).map((l) => l.value)).toEqual(['a']);
  });

  it('accepts a write that was read, or superseded by a later or concurrent change', () => {
    expect(findLostWrites([w(0, 'a', 0, 1), r(1, 'a', 2, 3)])).toEqual([]);
    expect(findLostWrites([w(0, 'a', 0, 1), w(1, 'b', 2, 3)]).map((l) => l.value)).toEqual(['b']);
    expect(findLostWrites([w(0, 'a', 0, 5), w(1, 'b', 1, null, 'info'), r(2, null, 6, 7)])).toEqual([]);
  });
});
