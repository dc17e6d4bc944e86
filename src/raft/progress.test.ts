import { describe, expect, it } from 'vitest';
import { Inflights, Progress } from './progress.js';

describe('Inflights: the bounded window of unacknowledged AppendEntries', () => {
  it('fills up to its capacity and frees every message acknowledged', () => {
    const w = new Inflights(3);
    w.add(5);
    w.add(9);
    w.add(12);
    expect(w.full()).toBe(true);
    expect(() => w.add(13)).toThrow(/full/);
    w.freeTo(9);
    expect(w.count).toBe(1);
    w.add(15);
    w.add(20); // wraps around the ring
    w.freeTo(14);
    expect(w.count).toBe(2);
    w.freeTo(100);
    expect(w.count).toBe(0);
  });
});

describe('Progress: the leader’s nextIndex/matchIndex for one follower (Figure 2)', () => {
  it('probe state sends one message at a time until answered', () => {
    const pr = new Progress(10, 4);
    expect(pr.paused()).toBe(false);
    pr.sent(12);
    expect(pr.paused()).toBe(true);
    expect(pr.next).toBe(10); // probing does not move nextIndex optimistically
  });

  it('replicate state pipelines up to the window, advancing nextIndex as it sends', () => {
    const pr = new Progress(10, 2);
    expect(pr.maybeUpdate(9)).toBe(true);
    pr.becomeReplicate();
    pr.sent(12);
    pr.sent(15);
    expect(pr.next).toBe(16);
    expect(pr.paused()).toBe(true);
    expect(pr.maybeUpdate(12)).toBe(true);
    expect(pr.paused()).toBe(false);
  });

  it('ignores stale acknowledgements: matchIndex never decreases', () => {
    const pr = new Progress(10, 2);
    pr.maybeUpdate(8);
    expect(pr.maybeUpdate(5)).toBe(false);
    expect(pr.match).toBe(8);
  });

  it('going back to probe never moves nextIndex to or below matchIndex', () => {
    const pr = new Progress(10, 2);
    pr.maybeUpdate(7);
    pr.becomeProbe(3);
    expect(pr.next).toBe(8);
  });

  it('going back to probe, or to a snapshot, forgets commit indexes sent beyond what the follower acknowledged', () => {
    const pr = new Progress(1, 4);
    pr.maybeUpdate(5);
    pr.commitSent = 9; // told in messages it may have rejected
    pr.becomeProbe(6);
    expect(pr.commitSent).toBe(5);
    pr.commitSent = 8;
    pr.becomeSnapshot(20);
    expect(pr.commitSent).toBe(5);
  });
});
