// Scenario tests of membership changes (thesis chapter 4), each named after the rule it checks.

import { describe, expect, it } from 'vitest';
import { core, drain, ids, Net } from '../../test/helpers/raftnet.js';
import { decodeConfState, encodeConfState } from './confstate.js';
import { Raft } from './raft.js';
import { SeededRandom } from './random.js';
import { EntryType, type ConfState, type Entry, type Message } from './types.js';

const text = new TextEncoder();

/** A 3-voter cluster led by n1, with n4 and n5 started as nodes that know no configuration (joining nodes). */
function cluster(extra: string[] = ['n4', 'n5']): Net {
  const net = new Net([...ids.map((id) => core(id)), ...extra.map((id) => core(id, { voters: [] }))]);
  net.elect('n1');
  expect(net.get('n1').role).toBe('leader');
  net.tickAll(3); // the no-op commits everywhere
  return net;
}

/** Proposes a change on the leader and delivers everything until the network is quiet. */
function change(net: Net, leader: string, changes: Parameters<Raft['proposeConfChange']>[0]) {
  const result = net.get(leader).proposeConfChange(changes, `ctx-${changes.map((c) => c.id).join(',')}`);
  net.run();
  return result;
}

function conf(r: Raft): Pick<ConfState, 'voters' | 'outgoing' | 'learners'> {
  const { voters, outgoing, learners } = r.config;
  return { voters, outgoing, learners };
}

describe('learners (thesis §4.2.1)', () => {
  it('a learner receives the log but counts toward no majority', () => {
    const net = cluster();
    expect(change(net, 'n1', [{ type: 'addLearner', id: 'n4' }])).toMatchObject({ ok: true });
    net.tickAll(3);
    expect(conf(net.get('n4'))).toEqual({ voters: ids, outgoing: [], learners: ['n4'] });
    expect(net.get('n4').log.lastIndex()).toBe(net.get('n1').log.lastIndex());

    // With both other voters cut off, the learner's acknowledgement does not commit anything.
    net.drop = (m) => ['n2', 'n3'].includes(m.from) || ['n2', 'n3'].includes(m.to);
    const leader = net.get('n1');
    const before = leader.log.committed;
    const p = leader.propose(text.encode('x'));
    net.run();
    expect(p.ok).toBe(true);
    expect(net.get('n4').log.lastIndex()).toBe(leader.log.lastIndex());
    expect(leader.log.committed).toBe(before);
    net.heal();
    net.tickAll(3);
    expect(leader.log.committed).toBe(leader.log.lastIndex());
  });

  it('a learner, and a node no configuration names, never start an election', () => {
    const net = cluster();
    change(net, 'n1', [{ type: 'addLearner', id: 'n4' }]);
    net.isolate('n1'); // the leader goes silent
    for (let i = 0; i < 200; i++) {
      net.get('n4').tick();
      net.get('n5').tick();
    }
    expect(net.get('n4').role).toBe('follower');
    expect(net.get('n5').role).toBe('follower');
    expect(net.get('n4').leader).toBeNull(); // it forgot the leader it stopped hearing from
    expect(drain(net.get('n5')).messages).toEqual([]);
  });

  it('leadership cannot be transferred to a learner', () => {
    const net = cluster();
    change(net, 'n1', [{ type: 'addLearner', id: 'n4' }]);
    expect(net.get('n1').transferLeadership('n4')).toEqual({ ok: false, reason: 'not_voter' });
  });
});

describe('joint consensus (thesis §4.3)', () => {
  it('promoting a learner goes through C_old,new, and the leader appends C_new once that commits', () => {
    const net = cluster();
    change(net, 'n1', [{ type: 'addLearner', id: 'n4' }]);
    net.tickAll(3);
    const leader = net.get('n1');
    const result = change(net, 'n1', [{ type: 'promote', id: 'n4' }]);
    expect(result).toMatchObject({
      ok: true,
      config: { voters: [...ids, 'n4'], outgoing: ids, learners: [] },
    });
    net.tickAll(5);
    for (const id of [...ids, 'n4']) {
      expect(conf(net.get(id))).toEqual({ voters: [...ids, 'n4'], outgoing: [], learners: [] });
    }
    // The log holds both steps: C_old,new, then C_new.
    const configs = configEntries(leader);
    expect(configs.slice(-2).map((c) => c.outgoing.length > 0)).toEqual([true, false]);
    expect(leader.log.committed).toBe(leader.log.lastIndex());
  });

  it('while joint, an entry needs a majority of C_old and a majority of C_new', () => {
    // Replace n2 and n3 by n4 and n5 in one change: C_old {n1,n2,n3}, C_new {n1,n4,n5}.
    const net = cluster();
    change(net, 'n1', [
      { type: 'addLearner', id: 'n4' },
      { type: 'addLearner', id: 'n5' },
    ]);
    net.tickAll(3);
    const leader = net.get('n1');
    // C_old's n2 and n3 cannot be reached: C_new alone {n1,n4,n5} must not commit the joint entry.
    net.drop = (m) => ['n2', 'n3'].includes(m.from) || ['n2', 'n3'].includes(m.to);
    const result = change(net, 'n1', [
      { type: 'promote', id: 'n4' },
      { type: 'promote', id: 'n5' },
      { type: 'remove', id: 'n2' },
      { type: 'remove', id: 'n3' },
    ]);
    // n2 and n3 answered within the last election timeout, so the change is allowed to start.
    expect(result).toMatchObject({ ok: true, config: { voters: ['n1', 'n4', 'n5'], outgoing: ids } });
    if (!result.ok) return;
    net.tickAll(4);
    expect(net.get('n4').log.lastIndex()).toBeGreaterThanOrEqual(result.index);
    expect(leader.log.committed).toBeLessThan(result.index);
    // One voter of C_old back gives C_old its majority {n1,n2}: now it commits, and C_new follows.
    net.drop = (m) => m.from === 'n3' || m.to === 'n3';
    net.tickAll(5);
    expect(leader.log.committed).toBe(leader.log.lastIndex());
    expect(conf(leader)).toEqual({ voters: ['n1', 'n4', 'n5'], outgoing: [], learners: [] });
    // C_new alone commits from now on, without n2 and n3.
    net.drop = (m) => ['n2', 'n3'].includes(m.from) || ['n2', 'n3'].includes(m.to);
    const p = leader.propose(text.encode('after'));
    net.tickAll(3);
    expect(p.ok && leader.log.committed >= p.index).toBe(true);
  });

  it('an election while joint needs both majorities, and the new leader completes the change', () => {
    const net = cluster();
    change(net, 'n1', [{ type: 'addLearner', id: 'n4' }]);
    net.tickAll(3);
    // The joint entry reaches everyone and commits, but C_new does not go out: the leader is cut off first.
    const joint = net.get('n1').proposeConfChange([{ type: 'promote', id: 'n4' }], '');
    expect(joint.ok).toBe(true);
    net.drop = (m) =>
      m.type === 'AppendEntries' && m.entries.some((e) => e.type === EntryType.Config && !isJointEntry(e));
    net.tickAll(4);
    expect(isJointConf(net.get('n2').config)).toBe(true);
    net.isolate('n1');
    // n4 (in C_new only) and n2 ... an election among n2, n3, n4: needs 2 of C_old {n1,n2,n3} and 3 of C_new.
    net.elect('n2');
    net.tickAll(30);
    const leaders = ['n2', 'n3', 'n4'].filter((id) => net.get(id).role === 'leader');
    expect(leaders).toHaveLength(1);
    const leader = net.get(leaders[0] ?? '');
    // The new leader committed its no-op, hence C_old,new, and appended C_new itself.
    expect(conf(leader)).toEqual({ voters: [...ids, 'n4'], outgoing: [], learners: [] });
    expect(leader.log.committed).toBe(leader.log.lastIndex());
  });
});

describe('one change at a time (thesis §4.1)', () => {
  it('a second change waits until the first has committed', () => {
    const net = cluster();
    net.isolate('n1');
    const first = net.get('n1').proposeConfChange([{ type: 'addLearner', id: 'n4' }], '');
    expect(first.ok).toBe(true);
    expect(net.get('n1').proposeConfChange([{ type: 'addLearner', id: 'n5' }], '')).toMatchObject({
      ok: false,
      reason: 'pending',
    });
    net.heal();
    net.tickAll(3);
    expect(change(net, 'n1', [{ type: 'addLearner', id: 'n5' }])).toMatchObject({ ok: true });
  });

  it('a new leader changes nothing before it has committed an entry of its own term', () => {
    const net = cluster();
    // n1 is cut off; acknowledgements of AppendEntries are lost, so a new leader's no-op cannot commit.
    net.drop = (m) => m.from === 'n1' || m.to === 'n1' || m.type === 'AppendEntriesResponse';
    let leader: Raft | undefined;
    for (let i = 0; i < 100 && leader === undefined; i++) {
      for (const id of ['n2', 'n3']) net.get(id).tick();
      net.run();
      leader = [net.get('n2'), net.get('n3')].find((r) => r.role === 'leader');
    }
    if (leader === undefined) throw new Error('no leader elected');
    expect(leader.log.committed).toBeLessThan(leader.log.lastIndex());
    expect(leader.proposeConfChange([{ type: 'addLearner', id: 'n4' }], '')).toEqual({
      ok: false,
      reason: 'not_ready',
      message: 'the leader has not committed an entry of its term yet',
    });
    net.drop = (m) => m.from === 'n1' || m.to === 'n1';
    net.tickAll(3);
    expect(leader.role).toBe('leader');
    expect(change(net, leader.id, [{ type: 'addLearner', id: 'n4' }])).toMatchObject({ ok: true });
  });

  it('invalid changes are refused with the reason', () => {
    const net = cluster();
    const propose = (changes: Parameters<Raft['proposeConfChange']>[0]) =>
      net.get('n1').proposeConfChange(changes, '');
    expect(propose([{ type: 'addLearner', id: 'n2' }])).toMatchObject({
      reason: 'invalid',
      message: 'n2 is already a member',
    });
    expect(propose([{ type: 'remove', id: 'n9' }])).toMatchObject({
      message: 'n9 is not a member of the cluster',
    });
    expect(propose([{ type: 'promote', id: 'n2' }])).toMatchObject({ message: 'n2 is already a voter' });
    expect(propose([{ type: 'promote', id: 'n9' }])).toMatchObject({
      message: 'n9 is not a learner of the cluster',
    });
    expect(
      propose([
        { type: 'remove', id: 'n1' },
        { type: 'remove', id: 'n2' },
        { type: 'remove', id: 'n3' },
      ]),
    ).toMatchObject({ message: 'the change would leave the cluster without voters' });
    expect(propose([])).toMatchObject({ reason: 'invalid' });
    expect(net.get('n2').proposeConfChange([{ type: 'addLearner', id: 'n4' }], '')).toMatchObject({
      reason: 'not_leader',
      leader: 'n1',
    });
  });

  it('a change whose new voters include no reachable majority is refused', () => {
    const net = cluster();
    // n3 goes down; after an election timeout the leader has not heard from it.
    net.drop = (m) => m.from === 'n3' || m.to === 'n3';
    net.tickAll(12);
    expect(net.get('n1').role).toBe('leader');
    // Removing the healthy n2 would leave {n1, n3}: both needed, n3 unreachable.
    expect(net.get('n1').proposeConfChange([{ type: 'remove', id: 'n2' }], '')).toMatchObject({
      ok: false,
      reason: 'no_quorum',
    });
    // Adding a voter that never answered would leave {n1,n2,n3,n4} with 2 reachable of the 3 needed.
    expect(net.get('n1').proposeConfChange([{ type: 'addVoter', id: 'n4' }], '')).toMatchObject({
      reason: 'no_quorum',
    });
    // Removing the unreachable n3 is fine: {n1, n2} are both up.
    expect(change(net, 'n1', [{ type: 'remove', id: 'n3' }])).toMatchObject({ ok: true });
    net.tickAll(5);
    expect(conf(net.get('n1'))).toEqual({ voters: ['n1', 'n2'], outgoing: [], learners: [] });
  });
});

describe('removing members (thesis §4.2.2)', () => {
  it('a leader that removes itself steps down once C_new commits, and the others elect a leader', () => {
    const net = cluster();
    const leader = net.get('n1');
    expect(change(net, 'n1', [{ type: 'remove', id: 'n1' }])).toMatchObject({ ok: true });
    net.tickAll(5);
    expect(leader.role).toBe('follower');
    expect(conf(net.get('n2'))).toEqual({ voters: ['n2', 'n3'], outgoing: [], learners: [] });
    net.tickAll(40);
    const leaders = ['n2', 'n3'].filter((id) => net.get(id).role === 'leader');
    expect(leaders).toHaveLength(1);
    expect(leader.role).toBe('follower'); // removed: it never campaigns again
    // The two remaining voters commit without n1.
    net.isolate('n1');
    const next = net.get(leaders[0] ?? '');
    const p = next.propose(text.encode('y'));
    net.tickAll(3);
    expect(p.ok && next.log.committed >= p.index).toBe(true);
  });

  it('the leader stops replicating to a removed member', () => {
    const net = cluster();
    change(net, 'n1', [{ type: 'remove', id: 'n3' }]);
    net.tickAll(5);
    net.sent = [];
    net.tickAll(5);
    expect(net.sent.filter((m) => m.to === 'n3')).toEqual([]);
    expect(net.get('n1').matchIndexes().has('n3')).toBe(false);
  });
  it('a voter removed by a C_new that only it holds may still campaign, or no one could be elected', () => {
    // Found by the simulator (membership runs with frequent changes: the cluster never settled). C_old {n1,n2}
    // with n1 leading; n1 replaces itself by n3: C_old,new {n2,n3 | n1,n2}, then C_new {n2,n3}.
    const two = ['n1', 'n2'];
    const net = new Net([
      core('n1', { voters: two }),
      core('n2', { voters: two }),
      core('n3', { voters: [] }),
    ]);
    net.elect('n1');
    net.tickAll(3);
    change(net, 'n1', [{ type: 'addLearner', id: 'n3' }]);
    net.tickAll(3);
    // C_old,new reaches everyone and commits; C_new, which the leader then appends, reaches no one.
    const isCNew = (m: Message) =>
      m.type === 'AppendEntries' && m.entries.some((e) => e.type === EntryType.Config && !isJointEntry(e));
    net.drop = isCNew;
    const joint = change(net, 'n1', [
      { type: 'promote', id: 'n3' },
      { type: 'remove', id: 'n1' },
    ]);
    expect(joint.ok).toBe(true);
    net.tickAll(2);
    expect(conf(net.get('n1'))).toEqual({ voters: ['n2', 'n3'], outgoing: [], learners: [] });
    for (const id of ['n2', 'n3']) expect(isJointConf(net.get(id).config)).toBe(true);
    // The leader is cut off before C_new commits, and steps down (CheckQuorum); then the network heals.
    net.isolate('n1');
    net.tickAll(25);
    expect(net.get('n1').role).not.toBe('leader');
    net.heal();
    // n2 and n3 hold C_old,new: an election needs both votes of C_old {n1,n2}, and n1 refuses them, its log being
    // longer (it holds C_new). Only n1 can be elected, under C_new {n2,n3}, without counting itself; it commits
    // C_new with its no-op and steps down (thesis §4.2.2), and n2 or n3 takes over.
    net.tickAll(150);
    const leaders = ['n1', 'n2', 'n3'].filter((id) => net.get(id).role === 'leader');
    expect(leaders).toHaveLength(1);
    const leader = net.get(leaders[0] ?? '');
    expect(['n2', 'n3']).toContain(leader.id);
    expect(conf(leader)).toEqual({ voters: ['n2', 'n3'], outgoing: [], learners: [] });
    expect(leader.log.committed).toBe(leader.log.lastIndex());
    expect(net.get('n1').role).toBe('follower'); // removed, it stays out
  });
});

describe('the configuration in force is the latest in the log (thesis §4.1)', () => {
  it('a follower uses a configuration as soon as it is in its log, before it commits', () => {
    const net = cluster();
    net.drop = (m) => m.type === 'AppendEntriesResponse';
    const r = net.get('n1').proposeConfChange([{ type: 'addLearner', id: 'n4' }], '');
    net.run();
    expect(r.ok).toBe(true);
    for (const id of ['n2', 'n3']) {
      const follower = net.get(id);
      expect(follower.log.committed).toBeLessThan(follower.log.lastIndex());
      expect(follower.config.learners).toEqual(['n4']);
    }
  });

  it('truncating a Config entry restores the configuration before it', () => {
    // n2 holds a configuration entry at index 2 from a deposed leader of term 1; the leader of term 2 overwrites it.
    const c = encodeConfState({ voters: ids, outgoing: [], learners: ['n4'], context: '' });
    const entries: Entry[] = [
      { index: 1, term: 1, type: EntryType.Noop, data: new Uint8Array() },
      { index: 2, term: 1, type: EntryType.Config, data: c },
    ];
    const r = core('n2', { entries, hardState: { term: 1, vote: 'n1', commit: 1 } });
    expect(r.config.learners).toEqual(['n4']);
    expect(r.configIndex).toBe(2);
    r.step({
      type: 'AppendEntries',
      from: 'n3',
      to: 'n2',
      term: 2,
      prevLogIndex: 1,
      prevLogTerm: 1,
      entries: [{ index: 2, term: 2, type: EntryType.Noop, data: new Uint8Array() }],
      leaderCommit: 1,
      context: 0,
    });
    expect(r.config.learners).toEqual([]);
    expect(r.configIndex).toBe(0);
    expect(drain(r).config).toMatchObject({ voters: ids, learners: [] });
  });

  it('a restarted node takes its configuration from its log, else its snapshot, else the bootstrap voters', () => {
    const c: ConfState = { voters: ['n1', 'n2'], outgoing: [], learners: ['n3'], context: 'x' };
    const fromLog = new Raft({
      ...base('n1'),
      entries: [{ index: 1, term: 1, type: EntryType.Config, data: encodeConfState(c) }],
    });
    expect(fromLog.config).toEqual(c);
    const fromSnapshot = new Raft({ ...base('n1'), snapshot: { index: 5, term: 1, config: c }, entries: [] });
    expect(fromSnapshot.config).toEqual(c);
    expect(new Raft({ ...base('n1'), entries: [] }).config).toEqual({
      voters: ids,
      outgoing: [],
      learners: [],
      context: '',
    });
  });

  it('Ready reports the configuration when it changes, and the leader snapshots the one in force there', () => {
    const net = new Net([core('n1', { voters: ['n1'] })]);
    net.elect('n1');
    const leader = net.get('n1');
    const r = leader.proposeConfChange([{ type: 'addLearner', id: 'n2' }], 'ctx');
    const rd = leader.ready();
    expect(rd.config).toEqual({ voters: ['n1'], outgoing: [], learners: ['n2'], context: 'ctx' });
    leader.advance(rd);
    expect(leader.ready().config).toBeUndefined();
    expect(r.ok && leader.log.configAt(r.index)).toMatchObject({ learners: ['n2'] });
    expect(r.ok && leader.log.configAt(r.index - 1)).toMatchObject({ learners: [] });
  });
});

function base(id: string) {
  return {
    id,
    voters: ids,
    electionTicksMin: 10,
    electionTicksMax: 20,
    heartbeatTicks: 2,
    random: new SeededRandom(1),
    hardState: { term: 1, vote: '', commit: 0 },
  };
}

function configEntries(r: Raft): ConfState[] {
  const out: ConfState[] = [];
  for (let i = r.log.firstIndex(); i <= r.log.lastIndex(); i++) {
    const e = r.log.entry(i);
    if (e?.type === EntryType.Config) out.push(decodeConfState(e.data));
  }
  return out;
}

function isJointConf(c: ConfState): boolean {
  return c.outgoing.length > 0;
}

function isJointEntry(e: Entry): boolean {
  return isJointConf(decodeConfState(e.data));
}
