import { describe, expect, it } from 'vitest';
import { majorityMatchIndex, quorumSize, tallyVotes } from './quorum.js';

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
