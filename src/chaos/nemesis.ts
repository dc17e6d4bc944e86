// The nemeses: faults injected into a running ChaosCluster, one at a time, in alternating fault and heal windows
// drawn from a seeded PRNG. Every start and stop goes into the timeline (<out>/nemesis.jsonl).

import type { SeededRandom } from '../raft/random.js';
import { sleep, type ChaosCluster } from './cluster.js';

export const nemesisKinds = ['kill', 'pause', 'partition', 'delay', 'drop', 'crash-all'] as const;
export type NemesisKind = (typeof nemesisKinds)[number];

export type PartitionShape = 'isolate' | 'halves' | 'bridge' | 'ring';

export interface TimelineEvent {
  /** Milliseconds since the run began (the same clock as the history). */
  readonly time: number;
  readonly kind: NemesisKind;
  readonly action: 'start' | 'stop';
  readonly detail: Record<string, unknown>;
}

/** One fault, started: `stop` undoes it and says what it did. */
interface ActiveFault {
  readonly detail: Record<string, unknown>;
  stop(): Promise<Record<string, unknown>>;
}

function shuffled<T>(rng: SeededRandom, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(0, i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * The pairs of nodes that cannot talk (both directions) under a partition shape:
 * - isolate: one node alone;
 * - halves: a minority and a majority;
 * - bridge: two halves that cannot talk, and one node that talks to both;
 * - ring (5 nodes): node i talks only to i±1, so every node sees a different overlapping majority.
 */
export function partitionCuts(
  shape: PartitionShape,
  ids: readonly string[],
  rng: SeededRandom,
): { cuts: [string, string][]; groups: string[][] } {
  const order = shuffled(rng, ids);
  const cuts: [string, string][] = [];
  const cutBetween = (a: readonly string[], b: readonly string[]) => {
    for (const x of a) for (const y of b) cuts.push([x, y]);
  };
  switch (shape) {
    case 'isolate': {
      const [alone, ...rest] = order;
      cutBetween([alone!], rest);
      return { cuts, groups: [[alone!], rest] };
    }
    case 'halves': {
      const minority = order.slice(0, Math.floor(ids.length / 2));
      const majority = order.slice(minority.length);
      cutBetween(minority, majority);
      return { cuts, groups: [minority, majority] };
    }
    case 'bridge': {
      const [bridge, ...rest] = order;
      const left = rest.slice(0, Math.floor(rest.length / 2));
      const right = rest.slice(left.length);
      cutBetween(left, right);
      return {
        cuts,
        groups: [
          [...left, bridge!],
          [bridge!, ...right],
        ],
      };
    }
    case 'ring': {
      const n = order.length;
      for (let i = 0; i < n; i++) {
        for (let j = i + 1; j < n; j++) {
          const distance = Math.min(j - i, n - (j - i));
          if (distance > 1) cuts.push([order[i]!, order[j]!]);
        }
      }
      return { cuts, groups: order.map((id, i) => [order[(i + n - 1) % n]!, id, order[(i + 1) % n]!]) };
    }
  }
}

/** Blocks both directions of every cut pair. */
export function applyCuts(cluster: ChaosCluster, cuts: readonly [string, string][]): void {
  for (const [a, b] of cuts) {
    cluster.proxy(a, b).block();
    cluster.proxy(b, a).block();
  }
}

export function healLinks(cluster: ChaosCluster): void {
  for (const p of cluster.proxies) p.heal();
}

async function startFault(kind: NemesisKind, cluster: ChaosCluster, rng: SeededRandom): Promise<ActiveFault> {
  switch (kind) {
    case 'kill': {
      const node = rng.pick(cluster.running());
      await cluster.kill(node);
      return {
        detail: { node },
        stop: async () => {
          cluster.start(node);
          return { node, restarted: true };
        },
      };
    }
    case 'pause': {
      const node = rng.pick(cluster.running());
      cluster.pause(node);
      return {
        detail: { node },
        stop: async () => {
          cluster.resume(node);
          return { node };
        },
      };
    }
    case 'partition': {
      const shapes: PartitionShape[] = ['isolate', 'halves', 'bridge'];
      if (cluster.ids.length >= 5) shapes.push('ring');
      const shape = rng.pick(shapes);
      const { cuts, groups } = partitionCuts(shape, cluster.ids, rng);
      applyCuts(cluster, cuts);
      return {
        detail: { shape, groups },
        stop: async () => {
          healLinks(cluster);
          return { shape };
        },
      };
    }
    case 'delay': {
      // Some links slow, others not, so that messages on different paths arrive out of their sending order.
      const ms = rng.int(20, 200);
      const slowed: string[] = [];
      for (const from of cluster.ids) {
        for (const to of cluster.ids) {
          if (from === to || !rng.chance(0.7)) continue;
          cluster.proxy(from, to).delay(rng.int(Math.floor(ms / 2), ms + 1));
          slowed.push(`${from}→${to}`);
        }
      }
      return {
        detail: { maxDelayMs: ms, links: slowed },
        stop: async () => {
          healLinks(cluster);
          return {};
        },
      };
    }
    case 'drop': {
      const p = rng.int(2, 15) / 100;
      for (const proxy of cluster.proxies) proxy.drop(p);
      return {
        detail: { probabilityPerChunk: p },
        stop: async () => {
          const dropped = cluster.proxies.reduce((sum, proxy) => sum + proxy.stats.dropped, 0);
          healLinks(cluster);
          return { connectionsResetSoFar: dropped };
        },
      };
    }
    case 'crash-all': {
      await Promise.all(cluster.ids.map((id) => cluster.kill(id)));
      return {
        detail: { nodes: cluster.ids },
        stop: async () => {
          cluster.startAll();
          return { restarted: cluster.ids };
        },
      };
    }
  }
}

export interface NemesisOptions {
  readonly cluster: ChaosCluster;
  readonly rng: SeededRandom;
  readonly kinds: readonly NemesisKind[];
  /** Stop injecting (and undo the current fault) at this time. */
  readonly until: number;
  readonly now: () => number;
  readonly timeline: TimelineEvent[];
  /** Fault and heal window lengths, [min, max) ms. */
  readonly faultMs?: readonly [number, number];
  readonly healMs?: readonly [number, number];
}

/** Alternates heal and fault windows until `until`; every fault is undone before it returns. */
export async function runNemesis(options: NemesisOptions): Promise<void> {
  const { cluster, rng, now, timeline } = options;
  const [faultMin, faultMax] = options.faultMs ?? [2000, 5000];
  const [healMin, healMax] = options.healMs ?? [1000, 3000];
  if (options.kinds.length === 0) return;
  while (true) {
    await sleep(Math.min(rng.int(healMin, healMax), Math.max(0, options.until - now())));
    if (options.until - now() < 500) return;
    const kind = rng.pick(options.kinds);
    if ((kind === 'kill' || kind === 'pause') && cluster.running().length === 0) continue;
    // crash-all is a short sharp shock; the others last a fault window.
    const length = kind === 'crash-all' ? rng.int(300, 1500) : rng.int(faultMin, faultMax);
    const fault = await startFault(kind, cluster, rng);
    timeline.push({ time: now(), kind, action: 'start', detail: fault.detail });
    await sleep(Math.max(0, Math.min(length, options.until - now())));
    const detail = await fault.stop();
    timeline.push({ time: now(), kind, action: 'stop', detail });
  }
}
