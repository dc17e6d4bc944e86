import type { NodeId } from '../raft/types.js';

/**
 * Expected failures of client requests, typed so the HTTP layer can map each to one status in one place
 * (STYLE.md 10). Programmer errors are assertions, not these.
 */
export class RaftingError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** This node is not the leader. `leader` is who it believes leads, or null when it knows none. */
export class NotLeaderError extends RaftingError {
  constructor(readonly leader: NodeId | null) {
    super('not_leader', leader === null ? 'no leader is known at the moment' : `the leader is ${leader}`);
  }
}

/** The proposal was not committed: another leader overwrote it, or leadership was lost before it was sent. */
export class ProposalDroppedError extends RaftingError {
  constructor(reason: string) {
    super('proposal_dropped', reason);
  }
}

/** The request waited its whole time budget; a proposed write may or may not take effect later. */
export class TimeoutError extends RaftingError {
  constructor(message: string) {
    super('timeout', message);
  }
}

/** The node is shutting down or too busy to take more work. */
export class UnavailableError extends RaftingError {
  constructor(message: string) {
    super('unavailable', message);
  }
}

/** The request cannot be carried out as asked (an unknown node, a transfer already running). */
export class InvalidRequestError extends RaftingError {
  constructor(message: string) {
    super('invalid_request', message);
  }
}

/**
 * A membership change that cannot be made (thesis chapter 4). Codes: `member_not_found` (404), `invalid_change`,
 * `change_in_progress`, `no_quorum`, `learner_behind` (409).
 */
export class MembershipError extends RaftingError {}

/**
 * The leader handed leadership to `leader` so that it could be removed (issue: removing the leader transfers
 * leadership first); the request must now go to the new leader, even if it was already forwarded once.
 */
export class LeaderMovedError extends NotLeaderError {
  constructor(leader: NodeId) {
    super(leader);
  }
}
