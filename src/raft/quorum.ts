// Majority arithmetic, kept apart and pure so it can be table-tested: simple majorities (§5.2) and the joint
// majorities of a configuration change (thesis §4.3: a majority of C_old and, separately, a majority of C_new).

import type { ConfState, NodeId } from './types.js';

/** The smallest number of voters that is a majority of `voterCount` (§5.2: "a majority of the servers"). */
export function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The highest index that a majority of voters have replicated, given each voter's match index (§5.3, §5.4:
 * "there exists an N such that a majority of matchIndex[i] >= N"). Returns 0 for no voters.
 */
export function majorityMatchIndex(matchIndexes: readonly number[]): number {
  scratch.length = 0;
  for (const m of matchIndexes) scratch.push(m);
  return quorumOfScratch();
}

/**
 * Reused by every quorum computation: a leader computes one per acknowledgement, and sorting a fresh copy each
 * time (Array.prototype.sort allocates its own work space too) was a visible share of its garbage.
 */
const scratch: number[] = [];
// Safe because nothing here is reentrant: `matchOf` is a plain lookup that never calls back into this module, and
// each result is read before the next fill.

/** The quorum-th highest value in `scratch`: at least a quorum of voters hold it. Sorts `scratch` in place. */
function quorumOfScratch(): number {
  const n = scratch.length;
  if (n === 0) return 0;
  // Insertion sort, descending: n is the number of voters, a handful.
  for (let i = 1; i < n; i++) {
    const v = scratch[i] ?? 0;
    let j = i - 1;
    while (j >= 0 && (scratch[j] ?? 0) < v) {
      scratch[j + 1] = scratch[j] ?? 0;
      j--;
    }
    scratch[j + 1] = v;
  }
  return scratch[quorumSize(n) - 1] ?? 0;
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

/**
 * The highest index committed under configuration `c` (§5.3 with thesis §4.3): while joint, an index counts only
 * once a majority of C_new and a majority of C_old hold it. `matchOf` gives each voter's match index.
 */
export function jointMatchIndex(c: ConfState, matchOf: (id: NodeId) => number): number {
  const incoming = votersMatchIndex(c.voters, matchOf);
  if (c.outgoing.length === 0) return incoming;
  return Math.min(incoming, votersMatchIndex(c.outgoing, matchOf));
}

function votersMatchIndex(voters: readonly NodeId[], matchOf: (id: NodeId) => number): number {
  scratch.length = 0;
  for (const id of voters) scratch.push(matchOf(id));
  return quorumOfScratch();
}

/** An election under configuration `c` (§5.2 with thesis §4.3): while joint, it must be won in both halves. */
export function jointTally(c: ConfState, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  const incoming = tallyVotes(c.voters, votes);
  if (c.outgoing.length === 0) return incoming;
  const outgoing = tallyVotes(c.outgoing, votes);
  if (incoming === 'lost' || outgoing === 'lost') return 'lost';
  return incoming === 'won' && outgoing === 'won' ? 'won' : 'pending';
}
