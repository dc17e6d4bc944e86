// FileStorage against MemoryStorage as the model: random saves (with overwrites), snapshots (with a configuration
// or without), installs that match the log or not, compactions and reopens, over tiny segments; after each reopen
// the two must load the same.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SeededRandom } from '../raft/random.js';
import { EntryType, type ConfState, type Entry, type HardState } from '../raft/types.js';
import { FileStorage } from './file.js';
import { MemoryStorage } from './memory.js';
import type { Storage, StoredState } from './storage.js';

let dir: string;
let file: FileStorage | null = null;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rafting-model-'));
});

afterEach(async () => {
  await file?.close();
  file = null;
  await rm(dir, { recursive: true, force: true });
});

const options = { segmentBytes: 160, snapshotChunkBytes: 7 };

async function* bytesOf(s: string): AsyncGenerator<Uint8Array> {
  const b = new TextEncoder().encode(s);
  for (let i = 0; i < b.length; i += 5) yield b.subarray(i, i + 5);
}

async function snapshotText(s: Storage): Promise<string | null> {
  const src = await s.openSnapshot();
  if (src === null) return null;
  let out = '';
  for await (const c of src.chunks()) out += Buffer.from(c).toString();
  return out;
}

describe('FileStorage against the in-memory model', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`seed ${seed}: loads what the model holds after every reopen`, async () => {
      const rnd = new SeededRandom(seed);
      const coin = (p: number): boolean => rnd.int(0, 1000) < p * 1000;
      const model = new MemoryStorage();
      file = await FileStorage.open(dir, options);
      await file.load();
      const state = (): { floor: number; last: number; stored: StoredState } => {
        const stored = model.snapshot();
        const floor = stored.snapshot?.index ?? 0;
        return { floor, last: stored.entries.at(-1)?.index ?? floor, stored };
      };
      const termAt = (stored: StoredState, index: number): number | undefined =>
        stored.entries.find((e) => e.index === index)?.term;
      let reopens = 0;
      /** A configuration (or none) for a snapshot's meta, as a node's core would give it. */
      const config = (): { config?: ConfState } => {
        if (coin(0.3)) return {};
        const ids = ['n1', 'n2', 'n3', 'n4', 'n5'].filter(() => coin(0.6));
        const voters = ids.length > 0 ? ids.slice(0, 3) : ['n1'];
        return {
          config: {
            voters,
            outgoing: coin(0.3) ? ['n1', 'n2', 'n3'] : [],
            learners: ids.filter((id) => !voters.includes(id) && !['n1', 'n2', 'n3'].includes(id)),
            context: `step ${rnd.int(0, 1000)}`,
          },
        };
      };

      for (let step = 0; step < 400; step++) {
        const { floor, last, stored } = state();
        const op = rnd.int(0, 100);
        if (op < 55) {
          const start = rnd.int(floor + 1, last + 2);
          const entries: Entry[] = Array.from({ length: rnd.int(0, 6) }, (_, i) => ({
            index: start + i,
            term: rnd.int(1, 6),
            type: EntryType.Normal,
            data: new TextEncoder().encode(`s${step}.${i}`),
          }));
          const hs: HardState | undefined = coin(0.5)
            ? { term: rnd.int(1, 9), vote: coin(0.5) ? `n${rnd.int(1, 4)}` : '', commit: rnd.int(0, 50) }
            : undefined;
          model.saveSync(hs, entries);
          await file.save(hs, entries);
        } else if (op < 65) {
          if (last <= floor) continue;
          const index = rnd.int(floor + 1, last + 1);
          const meta = { index, term: termAt(stored, index) ?? 0, ...config() };
          await model.saveSnapshot(meta, bytesOf(`local ${step}`));
          await file.saveSnapshot(meta, bytesOf(`local ${step}`));
        } else if (op < 77) {
          const index = rnd.int(floor + 1, last + 4);
          const term = coin(0.5) ? (termAt(stored, index) ?? 1) : rnd.int(1, 7);
          const meta = { index, term, ...config() };
          await model.stageSnapshot(meta, bytesOf(`leader ${step}`));
          await model.installStagedSnapshot(meta);
          await file.stageSnapshot(meta, bytesOf(`leader ${step}`));
          await file.installStagedSnapshot(meta);
        } else if (op < 87) {
          const index = rnd.int(0, floor + 1);
          await model.compact(index);
          await file.compact(index);
        } else if (op < 95) {
          await file.close();
          file = await FileStorage.open(dir, options);
          expect(await file.load(), `seed ${seed} step ${step}`).toEqual(model.snapshot());
          expect(await snapshotText(file)).toEqual(await snapshotText(model));
          reopens++;
        } else {
          expect(await file.load(), `seed ${seed} step ${step} (reload)`).toEqual(model.snapshot());
        }
      }
      await file.close();
      file = await FileStorage.open(dir, options);
      expect(await file.load()).toEqual(model.snapshot());
      expect(reopens).toBeGreaterThan(10);
      // Compacting up to the snapshot leaves only segments with live entries after it, and the active one.
      const { floor, stored } = state();
      await file.compact(floor);
      expect(file.stats().segments).toBeLessThanOrEqual(2 + stored.entries.length);
      await file.close();
      file = await FileStorage.open(dir, options);
      expect(await file.load()).toEqual(model.snapshot());
    });
  }
});
