import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jointMatchIndex, jointTally, majorityMatchIndex, quorumSize, tallyVotes } from './quorum.js';

describe('quorum arithmetic (§5.2: a majority of the servers)', () => {
  it.each([
    [1, 1],
    [2, 2],
    [3, 2],
    [4, 3],
    [5, 3],
    [7, 4],
  ])('%i voters need %i', (voters, quorum) => expect(quorumSize(voters)).toBe(quorum));

  it.each([
    [[], 0],
    [[7], 7],
    [[5, 3], 3],
    [[10, 8, 3], 8],
    [[3, 8, 10], 8],
    [[10, 8, 5, 3], 5],
    [[9, 9, 1, 1, 1], 1],
    [[9, 9, 9, 1, 1], 9],
  ])('§5.3: the index replicated on a majority of %j is %i', (matches, expected) =>
    expect(majorityMatchIndex(matches)).toBe(expected),
  );

  it('§5.3, by definition: the highest N that a majority of match indexes reach', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(1000), { minLength: 1, maxLength: 15 }), (matches) => {
        const input = [...matches];
        const n = majorityMatchIndex(matches);
        expect(matches).toEqual(input); // the input is not reordered
        const reach = (index: number) =>
          matches.filter((m) => m >= index).length >= quorumSize(matches.length);
        expect(reach(n)).toBe(true);
        expect(matches.some((m) => m > n && reach(m))).toBe(false);
      }),
    );
  });

  const voters = ['a', 'b', 'c', 'd', 'e'];
  it.each([
    [{ a: true, b: true, c: true }, 'won'],
    [{ a: true, b: true }, 'pending'],
    [{ a: true, b: false, c: false }, 'pending'],
    [{ a: true, b: false, c: false, d: false }, 'lost'],
    [{ a: true, b: true, x: true, y: true }, 'pending'],
  ] as const)('§5.2: votes %j are %s (non-voters do not count)', (votes, expected) =>
    expect(tallyVotes(voters, new Map(Object.entries(votes)))).toBe(expected),
  );
});

describe('joint majorities (thesis §4.3: separate majorities of C_old and C_new)', () => {
  const joint = { voters: ['a', 'b', 'd'], outgoing: ['a', 'b', 'c'], learners: ['x'], context: '' };
  const simple = { ...joint, outgoing: [] };
  const matches: Record<string, number> = { a: 9, b: 3, c: 8, d: 2, x: 100 };
  const matchOf = (id: string) => matches[id] ?? 0;

  it('an index commits only once both halves hold it on a majority', () => {
    // C_new {a,b,d}: 3 is on a and b; C_old {a,b,c}: 8 is on a and c. Both hold 3, only C_old holds 8.
    expect(jointMatchIndex(joint, matchOf)).toBe(3);
    expect(jointMatchIndex(simple, matchOf)).toBe(3);
    expect(jointMatchIndex({ ...simple, voters: ['a', 'b', 'c'] }, matchOf)).toBe(8);
  });

  it('learners count toward no majority', () => {
    expect(jointMatchIndex({ ...simple, voters: ['a'], learners: ['x'] }, matchOf)).toBe(9);
  });

  it.each([
    [{ a: true, b: true }, 'won'],
    [{ a: true, d: true }, 'pending'], // a majority of C_new, not of C_old
    [{ a: true, c: true }, 'pending'], // a majority of C_old, not of C_new
    [{ a: true, c: true, d: true }, 'won'],
    [{ a: true, b: false, d: false }, 'lost'], // C_new can no longer agree
    [{ x: true, a: true, c: true }, 'pending'], // the learner's vote does not count
  ] as const)('votes %j in {a,b,d} joint with {a,b,c} are %s', (votes, expected) =>
    expect(jointTally(joint, new Map(Object.entries(votes)))).toBe(expected),
  );
});
