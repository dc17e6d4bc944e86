// Scenario tests of the core, each named after the rule it checks. A tiny synchronous network passes messages
// between cores; nothing here sleeps or uses a clock.

import { describe, expect, it } from 'vitest';
import { Raft } from './raft.js';
import { SeededRandom } from './random.js';
import { EntryType, type AppendEntries, type Message } from './types.js';
import { core, drain, entry, ids, Net, tickUntilCandidate } from '../../test/helpers/raftnet.js';

const text = new TextEncoder();

describe('leader election (§5.2)', () => {
  it('a follower that hears nothing for a randomized election timeout becomes candidate', () => {
    const timeouts = new Set<number>();
    for (let seed = 0; seed < 30; seed++) {
      const r = new Raft({
        id: 'n1',
        voters: ids,
        electionTicksMin: 10,
        electionTicksMax: 20,
        heartbeatTicks: 2,
        random: new SeededRandom(seed),
        hardState: { term: 0, vote: '', commit: 0 },
        entries: [],
      });
      const ticks = tickUntilCandidate(r);
      expect(ticks).toBeGreaterThanOrEqual(10);
      expect(ticks).toBeLessThan(20);
      timeouts.add(ticks);
    }
    expect(timeouts.size).toBeGreaterThan(3); // randomized, so split votes are rare
  });

  it('a candidate increments its term, votes for itself, and persists that before asking for votes', () => {
    const r = core('n1', { preVote: false });
    tickUntilCandidate(r);
    const rd = drain(r);
    expect(rd.hardState).toEqual({ term: 1, vote: 'n1', commit: 0 });
    expect(rd.messages.map((m) => [m.type, m.to])).toEqual([
      ['RequestVote', 'n2'],
      ['RequestVote', 'n3'],
    ]);
  });

  it('a candidate with votes from a majority becomes leader and appends a no-op of its term (§8)', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    expect(net.get('n1').role).toBe('leader');
    expect(net.get('n2').leader).toBe('n1');
    const noop = net.get('n1').log.entry(1);
    expect(noop).toMatchObject({ index: 1, term: 1, type: EntryType.Noop });
    expect(net.get('n1').log.committed).toBe(1);
  });

  it('one vote per term: a follower that voted for one candidate rejects another in the same term', () => {
    const r = core('n3');
    r.step({
      type: 'RequestVote',
      from: 'n1',
      to: 'n3',
      term: 5,
      lastLogIndex: 0,
      lastLogTerm: 0,
      preVote: false,
      transfer: false,
    });
    r.step({
      type: 'RequestVote',
      from: 'n2',
      to: 'n3',
      term: 5,
      lastLogIndex: 0,
      lastLogTerm: 0,
      preVote: false,
      transfer: false,
    });
    r.step({
      type: 'RequestVote',
      from: 'n1',
      to: 'n3',
      term: 5,
      lastLogIndex: 0,
      lastLogTerm: 0,
      preVote: false,
      transfer: false,
    });
    const rd = drain(r);
    expect(rd.hardState).toEqual({ term: 5, vote: 'n1', commit: 0 });
    expect(rd.messages.map((m) => m.type === 'RequestVoteResponse' && [m.to, m.voteGranted])).toEqual([
      ['n1', true],
      ['n2', false],
      ['n1', true], // a repeated request from the same candidate is granted again
    ]);
  });

  it('§5.4.1: a voter denies its vote to a candidate whose log is less up-to-date', () => {
    const r = core('n3', {
      entries: [entry(1, 1), entry(2, 3)],
      hardState: { term: 3, vote: '', commit: 0 },
    });
    r.step({
      type: 'RequestVote',
      from: 'n1',
      to: 'n3',
      term: 4,
      lastLogIndex: 5,
      lastLogTerm: 2,
      preVote: false,
      transfer: false,
    });
    r.step({
      type: 'RequestVote',
      from: 'n2',
      to: 'n3',
      term: 4,
      lastLogIndex: 1,
      lastLogTerm: 3,
      preVote: false,
      transfer: false,
    });
    const grants = drain(r).messages.map((m) => m.type === 'RequestVoteResponse' && m.voteGranted);
    expect(grants).toEqual([false, false]);
    r.step({
      type: 'RequestVote',
      from: 'n2',
      to: 'n3',
      term: 4,
      lastLogIndex: 2,
      lastLogTerm: 3,
      preVote: false,
      transfer: false,
    });
    expect(drain(r).messages[0]).toMatchObject({ voteGranted: true, preVote: false });
  });

  it('§5.1: any node that sees a higher term adopts it and becomes follower, a leader included', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    const leader = net.get('n1');
    leader.step({
      type: 'AppendEntriesResponse',
      from: 'n2',
      to: 'n1',
      term: 7,
      success: false,
      matchIndex: 0,
      rejectedIndex: 0,
      conflictTerm: 0,
      conflictIndex: 0,
      context: 0,
    });
    expect(leader.role).toBe('follower');
    expect(leader.term).toBe(7);
    expect(drain(leader).hardState).toEqual({ term: 7, vote: '', commit: 1 });
  });

  it('Figure 2: requests from an older term are refused with the current term, so the sender steps down', () => {
    const r = core('n2', { hardState: { term: 4, vote: '', commit: 0 } });
    r.step({
      type: 'RequestVote',
      from: 'n1',
      to: 'n2',
      term: 3,
      lastLogIndex: 9,
      lastLogTerm: 3,
      preVote: false,
      transfer: false,
    });
    r.step({
      type: 'AppendEntries',
      from: 'n1',
      to: 'n2',
      term: 3,
      prevLogIndex: 0,
      prevLogTerm: 0,
      entries: [entry(1, 3)],
      leaderCommit: 1,
      context: 0,
    });
    const replies = drain(r).messages;
    expect(replies).toMatchObject([
      { type: 'RequestVoteResponse', term: 4, voteGranted: false, preVote: false },
      { type: 'AppendEntriesResponse', term: 4, success: false },
    ]);
    expect(r.log.lastIndex()).toBe(0);
  });

  it('a candidate that hears from the leader of its own term becomes follower (§5.2)', () => {
    const r = core('n2');
    tickUntilCandidate(r);
    drain(r);
    r.step({
      type: 'AppendEntries',
      from: 'n3',
      to: 'n2',
      term: 1,
      prevLogIndex: 0,
      prevLogTerm: 0,
      entries: [],
      leaderCommit: 0,
      context: 0,
    });
    expect(r.role).toBe('follower');
    expect(r.leader).toBe('n3');
  });

  it('messages for another node are ignored', () => {
    const r = core('n1');
    r.step({
      type: 'RequestVote',
      from: 'n2',
      to: 'n3',
      term: 9,
      lastLogIndex: 0,
      lastLogTerm: 0,
      preVote: false,
      transfer: false,
    });
    expect(r.term).toBe(0);
    expect(r.hasReady()).toBe(false);
  });

  it('thesis §4.1: requests from a node outside the configuration are processed like any other', () => {
    // A node added by a configuration entry this voter has not received yet may already stand for election.
    const r = core('n1');
    r.step({
      type: 'RequestVote',
      from: 'n9',
      to: 'n1',
      term: 9,
      lastLogIndex: 0,
      lastLogTerm: 0,
      preVote: false,
      transfer: false,
    });
    expect(r.term).toBe(9);
    const vote = drain(r).messages[0];
    expect(vote).toMatchObject({ type: 'RequestVoteResponse', to: 'n9', voteGranted: true });
  });
});

describe('log replication (§5.3)', () => {
  it('followers learn a new commit index with the next AppendEntries (§5.3), not in a message of its own', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    const leader = net.get('n1');
    const p = leader.propose(text.encode('x'));
    net.run(); // no tick: only the messages the proposal causes
    expect(p.ok && leader.log.committed >= p.index).toBe(true);
    const committed = leader.log.committed;
    for (const id of ['n2', 'n3']) expect(net.get(id).log.committed).toBeLessThan(committed);
    // The next proposal's AppendEntries carries it.
    leader.propose(text.encode('y'));
    net.run();
    for (const id of ['n2', 'n3']) expect(net.get(id).log.committed).toBeGreaterThanOrEqual(committed);
  });

  it('a follower waiting for the commit index (wantCommit) hears of it at once; the others do not', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    const leader = net.get('n1');
    const p = leader.propose(text.encode('x'));
    if (!p.ok) throw new Error('propose failed');
    leader.wantCommit('n2', p.index); // say n2 passed this write on and waits to apply it
    net.run();
    expect(leader.log.committed).toBe(p.index);
    expect(net.get('n2').log.committed).toBe(p.index);
    expect(net.get('n3').log.committed).toBeLessThan(p.index);
    // Covered: a later commit is no longer announced to n2 either.
    const q = leader.propose(text.encode('y'));
    net.run();
    expect(q.ok && leader.log.committed === q.index).toBe(true);
    expect(net.get('n2').log.committed).toBe(p.index);
  });

  it('wantCommit of an index already committed but not yet sent announces it in the next Ready', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    const leader = net.get('n1');
    const p = leader.propose(text.encode('x'));
    if (!p.ok) throw new Error('propose failed');
    net.run();
    expect(net.get('n3').log.committed).toBeLessThan(p.index);
    leader.wantCommit('n3', p.index); // a read index handed to n3
    expect(leader.hasReady()).toBe(true);
    net.run();
    expect(net.get('n3').log.committed).toBe(p.index);
    // Known already: nothing more to send.
    leader.wantCommit('n3', p.index);
    expect(leader.hasReady()).toBe(false);
  });

  it('wantCommit is ignored for an unknown peer, and by a node that no longer leads', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    const p = net.get('n1').propose(text.encode('x'));
    if (!p.ok) throw new Error('propose failed');
    net.run();
    net.get('n1').wantCommit('n9', p.index);
    expect(net.get('n1').hasReady()).toBe(false);
    // n1 hands over to n2 and becomes a follower; asked as leader it would now announce p.index to n3.
    expect(net.get('n1').transferLeadership('n2').ok).toBe(true);
    net.run();
    expect(net.get('n2').role).toBe('leader');
    expect(net.get('n1').role).toBe('follower');
    net.get('n1').wantCommit('n3', p.index + 1);
    expect(net.get('n1').hasReady()).toBe(false);
  });

  it('a follower cut off while an entry committed learns the commit index once healed and waited for', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    const leader = net.get('n1');
    net.isolate('n3');
    const p = leader.propose(text.encode('x'));
    if (!p.ok) throw new Error('propose failed');
    net.run();
    expect(leader.log.committed).toBe(p.index);
    net.heal();
    // n3 missed the entry: the heartbeat it now gets is rejected, and the leader probes it again.
    leader.tick();
    leader.tick();
    net.run();
    leader.wantCommit('n3', p.index);
    net.run();
    expect(net.get('n3').log.committed).toBe(p.index);
  });

  it('the leader replicates proposals; they commit on a majority and are applied everywhere', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    const leader = net.get('n1');
    const result = leader.propose(text.encode('x'));
    expect(result).toEqual({ ok: true, index: 2, term: 1 });
    net.run();
    net.get('n1').tick();
    net.get('n1').tick(); // a heartbeat carries the new commit index to the followers
    net.run();
    for (const r of net.nodes.values()) {
      expect(r.log.committed).toBe(2);
      expect(r.log.applied).toBe(2);
    }
  });

  it('a follower refuses proposals and names the leader (§5.1: clients talk to the leader)', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    expect(net.get('n2').propose(text.encode('x'))).toEqual({
      ok: false,
      reason: 'not_leader',
      leader: 'n1',
    });
  });

  it('batching: many proposals between two Readies go out as one AppendEntries per follower', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    const leader = net.get('n1');
    for (let i = 0; i < 100; i++) leader.propose(text.encode(`v${i}`));
    const rd = drain(leader);
    expect(rd.entries.length).toBe(100);
    const appends = rd.messages.filter((m): m is AppendEntries => m.type === 'AppendEntries');
    expect(appends.map((m) => [m.to, m.entries.length])).toEqual([
      ['n2', 100],
      ['n3', 100],
    ]);
  });

  it('pipelining: the leader keeps up to maxInflightMessages AppendEntries in flight, then waits', () => {
    const rs = ids.map((id) => core(id, { inflight: 3 }));
    const net = new Net(rs);
    net.elect('n1');
    const leader = net.get('n1');
    const appendsTo = (m: Message[], to: string) =>
      m.filter((x) => x.type === 'AppendEntries' && x.to === to);
    let sent = 0;
    for (let i = 0; i < 5; i++) {
      leader.propose(text.encode(`v${i}`));
      sent += appendsTo([...drain(leader).messages], 'n2').length; // nothing acknowledged meanwhile
    }
    expect(sent).toBe(3);
  });

  it('§5.4.2 (Figure 8): a leader never commits an entry of an earlier term by counting replicas', () => {
    // n1 holds an entry of term 2 that it did not manage to commit; it is elected leader at term 3.
    const old = [entry(1, 1), entry(2, 2)];
    const n1 = core('n1', { entries: old, hardState: { term: 2, vote: 'n1', commit: 1 } });
    const n2 = core('n2', { entries: old.slice(0, 1), hardState: { term: 2, vote: '', commit: 1 } });
    const n3 = core('n3', { entries: old.slice(0, 1), hardState: { term: 2, vote: '', commit: 1 } });
    const net = new Net([n1, n2, n3]);
    // The followers receive the old entry (index 2) but never the leader's no-op (index 3).
    net.drop = (m) => {
      if (m.type !== 'AppendEntries' || !m.entries.some((e) => e.index === 3)) return false;
      net.get(m.to).step({ ...m, entries: m.entries.filter((e) => e.index < 3) });
      return true;
    };
    net.elect('n1');
    expect(n1.role).toBe('leader');
    expect(n1.matchIndexes().get('n2')).toBe(2); // index 2 is on a majority...
    expect(n1.log.committed).toBe(1); // ...but is from term 2, so it is not committed by counting.
    // Once the leader's own no-op (term 3) reaches a majority, both commit (§5.4.2).
    net.drop = () => false;
    n1.tick();
    n1.tick();
    net.run();
    expect(n1.log.committed).toBe(3);
  });

  it('thesis §10.2.1: the leader counts itself toward a majority only once its own entries are stable', () => {
    const n1 = core('n1', { voters: ['n1', 'n2'] });
    const n2 = core('n2', { voters: ['n1', 'n2'] });
    const net = new Net([n1, n2]);
    net.elect('n1');
    n1.propose(text.encode('x'));
    const rd = n1.ready(); // handed to storage, not yet durable
    for (const m of rd.messages) n2.step(m);
    for (const m of drain(n2).messages) n1.step(m); // the follower acknowledges index 2
    expect(n1.log.committed).toBe(1);
    n1.advance(rd); // now the leader's own write is durable
    expect(n1.log.committed).toBe(2);
  });

  it('pipelined writes: a Ready advanced before its write is durable is not handed out again, and counts once persisted', () => {
    const n1 = core('n1', { voters: ['n1', 'n2'] });
    const n2 = core('n2', { voters: ['n1', 'n2'] });
    const net = new Net([n1, n2]);
    net.elect('n1');
    n1.propose(text.encode('x'));
    const first = n1.ready();
    n1.advance(first, false); // handed to storage, write in progress
    expect(first.entries.map((e) => e.index)).toEqual([2]);
    n1.propose(text.encode('y'));
    const second = n1.ready(); // the next Ready carries only the new entry
    n1.advance(second, false);
    expect(second.entries.map((e) => e.index)).toEqual([3]);
    for (const m of [...first.messages, ...second.messages]) n2.step(m);
    for (const m of drain(n2).messages) n1.step(m); // the follower has 2 and 3
    expect(n1.log.committed).toBe(1); // the leader's own copy is not durable: no majority yet
    n1.persisted(first.entries);
    expect(n1.log.committed).toBe(2);
    n1.persisted(second.entries);
    expect(n1.log.committed).toBe(3);
    expect(n1.hasReady()).toBe(true); // the commit is to be applied and announced
  });

  it('fast backtracking: the leader skips a whole conflicting term per round trip', () => {
    // n2 was leader of term 2 and appended 50 entries that never replicated; n1 leads term 3 with other ones.
    const common = [entry(1, 1)];
    const theirs = [...common, ...Array.from({ length: 50 }, (_, i) => entry(i + 2, 2))];
    const ours = [...common, ...Array.from({ length: 30 }, (_, i) => entry(i + 2, 3))];
    const n1 = core('n1', { entries: ours, hardState: { term: 3, vote: 'n1', commit: 1 } });
    const n2 = core('n2', { entries: theirs, hardState: { term: 3, vote: '', commit: 1 } });
    const n3 = core('n3', { entries: ours, hardState: { term: 3, vote: 'n1', commit: 1 } });
    const net = new Net([n1, n2, n3]);
    net.elect('n1');
    expect(n1.role).toBe('leader');
    const rejections = net.sent.filter(
      (m) => m.type === 'AppendEntriesResponse' && m.from === 'n2' && !m.success,
    );
    expect(rejections.length).toBeLessThanOrEqual(2);
    n1.tick();
    n1.tick();
    net.run();
    expect(n2.log.lastIndex()).toBe(n1.log.lastIndex());
    expect(n2.log.term(20)).toBe(3);
    expect(n2.log.committed).toBe(n1.log.committed);
  });

  it('heartbeats: an idle leader sends an empty AppendEntries to every follower each heartbeat interval', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    const leader = net.get('n1');
    leader.tick();
    expect(drain(leader).messages).toEqual([]);
    leader.tick();
    const beats = drain(leader).messages;
    expect(beats.map((m) => m.type === 'AppendEntries' && [m.to, m.entries.length])).toEqual([
      ['n2', 0],
      ['n3', 0],
    ]);
  });

  it('lost AppendEntries are detected by the next heartbeat and sent again', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    const leader = net.get('n1');
    net.drop = (m) => m.type === 'AppendEntries' && m.to === 'n3' && m.entries.length > 0;
    for (let i = 0; i < 3; i++) {
      leader.propose(text.encode(`v${i}`));
      net.run();
    }
    expect(net.get('n3').log.lastIndex()).toBe(1);
    net.drop = () => false;
    for (let i = 0; i < 4; i++) {
      leader.tick();
      net.run();
    }
    expect(net.get('n3').log.lastIndex()).toBe(4);
    expect(net.get('n3').log.committed).toBe(4);
  });

  it('the leader refuses proposals beyond maxUncommittedEntries (back-pressure)', () => {
    const r = new Raft({
      id: 'n1',
      voters: ['n1', 'n2'],
      electionTicksMin: 10,
      electionTicksMax: 20,
      heartbeatTicks: 2,
      random: new SeededRandom(1),
      hardState: { term: 1, vote: 'n1', commit: 0 },
      entries: [],
      limits: { maxUncommittedEntries: 3 },
      preVote: false,
    });
    tickUntilCandidate(r);
    r.step({ type: 'RequestVoteResponse', from: 'n2', to: 'n1', term: 2, voteGranted: true, preVote: false });
    expect(r.role).toBe('leader');
    expect(r.propose(text.encode('a')).ok).toBe(true);
    expect(r.propose(text.encode('b')).ok).toBe(true);
    expect(r.propose(text.encode('c'))).toEqual({ ok: false, reason: 'busy' });
  });
});

describe('snapshots and log compaction (§7)', () => {
  /** A leader n1 whose log is compacted up to index 6, and a follower n2 that has only index 1. */
  function compactedLeader() {
    const log = [entry(1, 1), ...Array.from({ length: 7 }, (_, i) => entry(i + 2, 2))];
    const n1 = core('n1', { entries: log, hardState: { term: 2, vote: 'n1', commit: 8 } });
    const n2 = core('n2', { entries: log.slice(0, 1), hardState: { term: 2, vote: 'n1', commit: 1 } });
    const n3 = core('n3', { entries: log, hardState: { term: 2, vote: 'n1', commit: 8 } });
    const net = new Net([n1, n2, n3]);
    for (const r of [n1, n3]) while (r.hasReady()) drain(r); // apply what is committed
    n1.compact({ index: 8, term: 2 }, 2);
    expect(n1.log.firstIndex()).toBe(7);
    return { n1, n2, n3, net };
  }

  it('the leader sends a snapshot to a follower that needs entries it has compacted away', () => {
    const { n1, net } = compactedLeader();
    net.drop = (m) => m.type === 'InstallSnapshot';
    net.elect('n1');
    expect(n1.role).toBe('leader');
    const sent = net.sent.filter((m) => m.type === 'InstallSnapshot');
    expect(sent).toEqual([
      { type: 'InstallSnapshot', from: 'n1', to: 'n2', term: 3, snapshot: { index: 8, term: 2 } },
    ]);
  });

  it('while the snapshot travels the follower gets heartbeats only, and no second snapshot', () => {
    const { n1, net } = compactedLeader();
    net.drop = (m) => m.type === 'InstallSnapshot';
    net.elect('n1');
    net.sent = [];
    for (let i = 0; i < 6; i++) n1.tick();
    net.run();
    const toN2 = net.sent.filter((m) => m.to === 'n2');
    expect(toN2.length).toBeGreaterThan(0);
    expect(toN2.every((m) => m.type === 'AppendEntries' && m.entries.length === 0)).toBe(true);
  });

  it('a follower installs the snapshot, answers with its index, and then receives the rest of the log', () => {
    const { n1, n2, net } = compactedLeader();
    net.elect('n1');
    // The transport reports the transfer done once n2 has the data (here: at once).
    n1.reportSnapshot('n2', true);
    n1.tick();
    n1.tick();
    net.run();
    expect(n2.log.firstIndex()).toBe(9);
    expect(n2.log.lastIndex()).toBe(n1.log.lastIndex());
    expect(n1.matchIndexes().get('n2')).toBe(n1.log.lastIndex());
  });

  it('the follower hands the snapshot to the outside to install before anything else', () => {
    const n2 = core('n2', { entries: [entry(1, 1)], hardState: { term: 2, vote: '', commit: 1 } });
    n2.step({ type: 'InstallSnapshot', from: 'n1', to: 'n2', term: 2, snapshot: { index: 50, term: 2 } });
    const rd = drain(n2);
    expect(rd.snapshot).toEqual({ index: 50, term: 2 });
    expect(rd.committedEntries).toEqual([]);
    expect(rd.messages).toMatchObject([{ type: 'AppendEntriesResponse', success: true, matchIndex: 50 }]);
    expect(n2.log.committed).toBe(50);
  });

  it('a snapshot older than what the follower committed changes nothing', () => {
    const n2 = core('n2', {
      entries: [entry(1, 1), entry(2, 1), entry(3, 2)],
      hardState: { term: 2, vote: '', commit: 3 },
    });
    n2.step({ type: 'InstallSnapshot', from: 'n1', to: 'n2', term: 2, snapshot: { index: 2, term: 1 } });
    const rd = drain(n2);
    expect(rd.snapshot).toBeUndefined();
    expect(rd.messages).toMatchObject([{ type: 'AppendEntriesResponse', success: true, matchIndex: 3 }]);
    expect(n2.log.lastIndex()).toBe(3);
  });

  it('a failed transfer is retried with a later heartbeat, not at once', () => {
    const { n1, net } = compactedLeader();
    net.drop = (m) => m.type === 'InstallSnapshot';
    net.elect('n1');
    net.sent = [];
    n1.reportSnapshot('n2', false);
    net.run();
    expect(net.sent.filter((m) => m.type === 'InstallSnapshot')).toEqual([]);
    n1.tick();
    n1.tick();
    net.run();
    expect(net.sent.filter((m) => m.type === 'InstallSnapshot').length).toBe(1);
  });
});

describe('PreVote and CheckQuorum (thesis §9.6, §6.2)', () => {
  it('a node cut off from the cluster does not raise its term, and does not disturb the cluster when it returns', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    const term = net.get('n1').term;
    net.isolate('n3');
    net.tickAll(200); // many election timeouts for n3
    expect(net.get('n3').term).toBe(term); // PreVotes failed, so its term never moved
    net.heal();
    net.tickAll(50);
    expect(net.get('n1').role).toBe('leader');
    expect(net.get('n1').term).toBe(term);
    expect(net.get('n3').leader).toBe('n1');
  });

  it('without PreVote the same node would depose the leader on return (the problem PreVote solves)', () => {
    const net = new Net(ids.map((id) => core(id, { preVote: false })));
    net.elect('n1');
    const term = net.get('n1').term;
    net.isolate('n3');
    net.tickAll(200);
    expect(net.get('n3').term).toBeGreaterThan(term + 3);
    net.heal();
    net.tickAll(50);
    expect(net.get('n1').term).toBeGreaterThan(term);
  });

  it('a leader cut off from the majority steps down within an election timeout', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    net.isolate('n1');
    let ticks = 0;
    while (net.get('n1').role === 'leader') {
      net.tickAll(1);
      ticks++;
      expect(ticks).toBeLessThanOrEqual(20); // the minimum election timeout is 10 ticks; the check runs every 10
    }
  });

  it('voters ignore RequestVote while they hear from a leader (thesis §4.2.3)', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    const n2 = net.get('n2');
    const term = n2.term;
    n2.step({
      type: 'RequestVote',
      from: 'n3',
      to: 'n2',
      term: term + 5,
      lastLogIndex: 99,
      lastLogTerm: 99,
      preVote: false,
      transfer: false,
    });
    expect(n2.term).toBe(term);
    expect(n2.hasReady()).toBe(false);
  });
});

describe('ReadIndex and leases (thesis §6.4)', () => {
  it('a read is confirmed by one heartbeat round, shared by every read waiting, and writes nothing to the log', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    const leader = net.get('n1');
    const last = leader.log.lastIndex();
    net.sent = [];
    for (let id = 1; id <= 5; id++) expect(leader.readIndex(id)).toEqual({ ok: true });
    net.run();
    expect(net.reads.get('n1')?.map((r) => r.requestId)).toEqual([1, 2, 3, 4, 5]);
    expect(net.reads.get('n1')?.every((r) => r.index === leader.log.committed)).toBe(true);
    expect(net.sent.filter((m) => m.type === 'AppendEntries').length).toBe(2); // one round: one per follower
    expect(leader.log.lastIndex()).toBe(last);
  });

  it('a leader cut off from the majority never completes a linearizable read', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    net.isolate('n1');
    expect(net.get('n1').readIndex(7)).toEqual({ ok: true });
    net.tickAll(40);
    expect(net.reads.get('n1')).toBeUndefined();
    expect(net.get('n1').role).not.toBe('leader');
  });

  it('a new leader answers reads only once it has committed an entry of its term', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.drop = (m) => m.type === 'AppendEntriesResponse';
    net.elect('n1');
    expect(net.get('n1').readIndex(1)).toEqual({ ok: true });
    net.run();
    expect(net.reads.get('n1')).toBeUndefined(); // its no-op is not committed: the commit index is not known
    net.heal();
    net.get('n1').tick();
    net.get('n1').tick();
    net.run();
    expect(net.reads.get('n1')?.map((r) => r.requestId)).toEqual([1]);
  });

  it('followers refuse to serve ReadIndex themselves and name the leader', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    expect(net.get('n2').readIndex(1)).toEqual({ ok: false, reason: 'not_leader', leader: 'n1' });
  });

  it('the lease holds after a majority acknowledged a recent round and expires without one', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    const leader = net.get('n1');
    net.tickAll(3);
    expect(leader.leaseValid()).toBe(true);
    net.drop = (m) => m.type === 'AppendEntriesResponse';
    let ticks = 0;
    while (leader.leaseValid()) {
      leader.tick();
      net.run();
      ticks++;
    }
    expect(ticks).toBeLessThan(10); // within the minimum election timeout minus drift
  });
});

describe('leadership transfer (thesis §3.10)', () => {
  it('the target takes over at once, and the old leader refuses writes meanwhile', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    net.drop = (m) => m.type === 'TimeoutNow';
    expect(net.get('n1').transferLeadership('n2')).toEqual({ ok: true });
    net.run();
    expect(net.get('n1').propose(text.encode('x'))).toEqual({ ok: false, reason: 'transferring', to: 'n2' });
    expect(net.get('n1').leaseValid()).toBe(false);
    net.heal();
    net.get('n1').tick();
    net.get('n1').tick();
    net.run(); // the heartbeat's answer makes the leader send TimeoutNow again
    expect(net.get('n2').role).toBe('leader');
    expect(net.get('n1').leader).toBe('n2');
  });

  it('a target that is behind gets no TimeoutNow until it has caught up', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    net.drop = (m) => m.to === 'n3' && m.type === 'AppendEntries';
    for (let i = 0; i < 3; i++) net.get('n1').propose(text.encode(`v${i}`));
    net.run();
    net.sent = [];
    net.get('n1').transferLeadership('n3');
    net.run();
    expect(net.sent.some((m) => m.type === 'TimeoutNow')).toBe(false);
    net.heal();
    net.get('n1').tick();
    net.get('n1').tick();
    net.run();
    expect(net.get('n3').role).toBe('leader');
    expect(net.get('n3').log.lastIndex()).toBeGreaterThanOrEqual(4);
  });

  it('is given up after an election timeout if the target does not take over', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    net.isolate('n3');
    net.get('n1').transferLeadership('n3');
    net.tickAll(12);
    expect(net.get('n1').role).toBe('leader');
    expect(net.get('n1').transferee).toBeNull();
    expect(net.get('n1').propose(text.encode('x')).ok).toBe(true);
  });

  it('refuses unknown targets and itself', () => {
    const net = new Net(ids.map((id) => core(id)));
    net.elect('n1');
    expect(net.get('n1').transferLeadership('n9')).toEqual({ ok: false, reason: 'unknown_target' });
    expect(net.get('n1').transferLeadership('n1')).toEqual({ ok: false, reason: 'already_leader' });
    expect(net.get('n2').transferLeadership('n3')).toMatchObject({ ok: false, reason: 'not_leader' });
  });
});
