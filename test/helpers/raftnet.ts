// A tiny synchronous network of cores for scenario tests: messages are passed until none are left; nothing
// sleeps or uses a clock.

import { Raft, type Ready } from '../../src/raft/raft.js';
import { SeededRandom } from '../../src/raft/random.js';
import { EntryType, type Entry, type HardState, type Message } from '../../src/raft/types.js';

export const ids = ['n1', 'n2', 'n3'];
const text = new TextEncoder();

export function entry(index: number, term: number): Entry {
  return { index, term, type: EntryType.Normal, data: text.encode(`e${index}`) };
}

export function core(
  id: string,
  opts: {
    entries?: Entry[];
    hardState?: HardState;
    voters?: string[];
    learners?: string[];
    inflight?: number;
    preVote?: boolean;
  } = {},
): Raft {
  return new Raft({
    id,
    voters: opts.voters ?? ids,
    ...(opts.learners === undefined ? {} : { learners: opts.learners }),
    electionTicksMin: 10,
    electionTicksMax: 20,
    heartbeatTicks: 2,
    random: new SeededRandom(id.charCodeAt(1)),
    hardState: opts.hardState ?? { term: 0, vote: '', commit: 0 },
    entries: opts.entries ?? [],
    limits: { maxInflightMessages: opts.inflight ?? 8 },
    preVote: opts.preVote ?? true,
  });
}

/** Handles one Ready as the runtime would (storage is implicit: cores keep their own log) and returns it. */
export function drain(r: Raft): Ready {
  const rd = r.ready();
  r.advance(rd);
  return rd;
}

/** A synchronous network: `run` delivers messages until none are left. `drop` filters what gets lost. */
export class Net {
  readonly nodes = new Map<string, Raft>();
  drop: (m: Message) => boolean = () => false;
  sent: Message[] = [];

  constructor(cores: Raft[]) {
    for (const c of cores) this.nodes.set(c.id, c);
  }

  get(id: string): Raft {
    const r = this.nodes.get(id);
    if (r === undefined) throw new Error(id);
    return r;
  }

  run(maxSteps = 10_000): void {
    const queue: Message[] = [];
    const collect = () => {
      for (const r of this.nodes.values()) {
        while (r.hasReady()) {
          const rd = drain(r);
          queue.push(...rd.messages);
          if (rd.readStates.length > 0)
            this.reads.set(r.id, [...(this.reads.get(r.id) ?? []), ...rd.readStates]);
        }
      }
    };
    collect();
    for (let i = 0; queue.length > 0; i++) {
      if (i > maxSteps) throw new Error('network did not quiesce');
      const m = queue.shift()!;
      this.sent.push(m);
      if (!this.drop(m)) this.nodes.get(m.to)?.step(m);
      collect();
    }
  }

  /** Ticks every node `n` times, delivering messages after each tick. */
  tickAll(n: number): void {
    for (let i = 0; i < n; i++) {
      for (const r of this.nodes.values()) r.tick();
      this.run();
    }
  }

  /** Cuts `id` off from everyone, both ways (until `heal`). */
  isolate(id: string): void {
    this.drop = (m) => m.from === id || m.to === id;
  }

  heal(): void {
    this.drop = () => false;
  }

  /** The read states every node reported so far (drained from its Readies). */
  readonly reads = new Map<string, { requestId: number; index: number }[]>();

  /** Ticks `id` until it starts an election, then delivers everything. */
  elect(id: string): void {
    const r = this.get(id);
    for (let i = 0; i < 100 && r.role === 'follower'; i++) r.tick();
    this.run();
  }
}

export function tickUntilCandidate(r: Raft): number {
  let ticks = 0;
  while (r.role === 'follower') {
    r.tick();
    ticks++;
    if (ticks > 100) throw new Error('never campaigned');
  }
  return ticks;
}
