// Majority arithmetic, kept apart and pure so it can be table-tested (and later extended to joint consensus,
// thesis §4.3, by requiring a majority of both configurations).

import type { NodeId } from './types.js';

/** The smallest number of voters that is a majority of `voterCount` (§5.2: "a majority of the servers"). */
export function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The highest index that a majority of voters have replicated, given each voter's match index (§5.3, §5.4:
 * "there exists an N such that a majority of matchIndex[i] >= N"). Returns 0 for no voters.
 */
export function majorityMatchIndex(matchIndexes: readonly number[]): number {
  if (matchIndexes.length === 0) return 0;
  const sorted = [...matchIndexes].sort((a, b) => b - a);
  // The quorum-th highest value is held by at least a quorum of voters.
  return sorted[quorumSize(matchIndexes.length) - 1] ?? 0;
}

export type VoteResult = 'won' | 'lost' | 'pending';

/** Tallies an election (§5.2): won with a majority of grants, lost once a majority can no longer be reached. */
export function tallyVotes(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  let granted = 0;
  let rejected = 0;
  for (const voter of voters) {
    const vote = votes.get(voter);
    if (vote === true) granted++;
    else if (vote === false) rejected++;
  }
  const quorum = quorumSize(voters.length);
  if (granted >= quorum) return 'won';
  if (rejected > voters.length - quorum) return 'lost';
  return 'pending';
}
