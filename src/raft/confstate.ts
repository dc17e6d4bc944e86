// Cluster configurations (thesis chapter 4) as the core stores them in Config entries and snapshots, and the
// arithmetic of changing one. Pure: no I/O, and the same input always gives the same output.

import type { ConfState, NodeId } from './types.js';

/** One step of a membership change, as a client asks for it. */
export type ConfChange =
  | { readonly type: 'addLearner'; readonly id: NodeId }
  | { readonly type: 'addVoter'; readonly id: NodeId }
  | { readonly type: 'promote'; readonly id: NodeId }
  | { readonly type: 'remove'; readonly id: NodeId };

export function confState(
  voters: readonly NodeId[],
  learners: readonly NodeId[] = [],
  context = '',
): ConfState {
  return { voters: [...voters], outgoing: [], learners: [...learners], context };
}

export const emptyConfState: ConfState = confState([]);

/** Joint consensus is in force (thesis §4.3): C_old,new, waiting for C_new. */
export function isJoint(c: ConfState): boolean {
  return c.outgoing.length > 0;
}

/** Every member the leader replicates to: voters of both halves and learners. */
export function members(c: ConfState): NodeId[] {
  const out = new Set<NodeId>([...c.voters, ...c.outgoing, ...c.learners]);
  return [...out];
}

/** Whether `id` votes in `c` (in either half while joint): only such a node may stand for election. */
export function isVoter(c: ConfState, id: NodeId): boolean {
  return c.voters.includes(id) || c.outgoing.includes(id);
}

export function sameConfState(a: ConfState, b: ConfState): boolean {
  return (
    sameList(a.voters, b.voters) &&
    sameList(a.outgoing, b.outgoing) &&
    sameList(a.learners, b.learners) &&
    a.context === b.context
  );
}

function sameList(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export type ChangeOutcome =
  { readonly ok: true; readonly next: ConfState } | { readonly ok: false; readonly error: string };

/**
 * The configuration that applying `changes` to `current` (not joint) leads to. When the set of voters changes, the
 * result is the joint configuration C_old,new (thesis §4.3: `outgoing` = the old voters), which the leader replaces
 * by C_new once it commits; a change of learners alone needs no joint step, since learners count toward no
 * majority. Ids stay in the order they were added, so every node derives identical lists.
 */
export function applyChanges(
  current: ConfState,
  changes: readonly ConfChange[],
  context: string,
): ChangeOutcome {
  if (isJoint(current))
    return { ok: false, error: 'the previous change has not finished (joint configuration)' };
  if (changes.length === 0) return { ok: false, error: 'no change given' };
  const voters = [...current.voters];
  const learners = [...current.learners];
  const touched = new Set<NodeId>();
  for (const change of changes) {
    const { id } = change;
    if (touched.has(id)) return { ok: false, error: `${id} appears twice in one change` };
    touched.add(id);
    const isMember = voters.includes(id) || learners.includes(id);
    switch (change.type) {
      case 'addLearner':
      case 'addVoter':
        if (isMember) return { ok: false, error: `${id} is already a member` };
        (change.type === 'addLearner' ? learners : voters).push(id);
        break;
      case 'promote':
        if (voters.includes(id)) return { ok: false, error: `${id} is already a voter` };
        if (!learners.includes(id)) return { ok: false, error: `${id} is not a learner of the cluster` };
        learners.splice(learners.indexOf(id), 1);
        voters.push(id);
        break;
      case 'remove':
        if (!isMember) return { ok: false, error: `${id} is not a member of the cluster` };
        if (voters.includes(id)) voters.splice(voters.indexOf(id), 1);
        else learners.splice(learners.indexOf(id), 1);
        break;
    }
  }
  if (voters.length === 0) return { ok: false, error: 'the change would leave the cluster without voters' };
  const votersChanged = !sameList(voters, current.voters);
  return {
    ok: true,
    next: { voters, outgoing: votersChanged ? [...current.voters] : [], learners, context },
  };
}

/** C_new of a joint configuration: the same members, without the old voters (thesis §4.3). */
export function leaveJoint(c: ConfState): ConfState {
  return { ...c, outgoing: [] };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The data of a Config entry. JSON: configuration entries are rare and small, and worth being readable. */
export function encodeConfState(c: ConfState): Uint8Array {
  return encoder.encode(
    JSON.stringify({ voters: c.voters, outgoing: c.outgoing, learners: c.learners, context: c.context }),
  );
}

/** Reads a Config entry's data back; throws on anything that is not a valid ConfState. */
export function decodeConfState(data: Uint8Array): ConfState {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(data));
  } catch {
    throw new Error('config entry: not JSON');
  }
  return checkConfState(value);
}

/** Checks that `value` (parsed JSON) is a ConfState and returns it with fresh arrays. */
export function checkConfState(value: unknown): ConfState {
  if (typeof value !== 'object' || value === null) throw new Error('configuration: not an object');
  const v = value as Record<string, unknown>;
  const list = (name: string): NodeId[] => {
    const x = v[name];
    if (!Array.isArray(x) || !x.every((id) => typeof id === 'string' && id.length > 0)) {
      throw new Error(`configuration: "${name}" must be a list of node ids`);
    }
    if (new Set(x).size !== x.length) throw new Error(`configuration: "${name}" lists a node twice`);
    return [...(x as string[])];
  };
  const c: ConfState = {
    voters: list('voters'),
    outgoing: list('outgoing'),
    learners: list('learners'),
    context: typeof v['context'] === 'string' ? v['context'] : '',
  };
  for (const id of c.learners) {
    if (c.voters.includes(id) || c.outgoing.includes(id)) {
      throw new Error(`configuration: ${id} is both a learner and a voter`);
    }
  }
  return c;
}
