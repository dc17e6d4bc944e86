// MemoryStorage keeps a snapshot's meta, configuration included (thesis §5.1), as it was given.

import { describe, expect, it } from 'vitest';
import type { ConfState } from '../raft/types.js';
import { MemoryStorage } from './memory.js';
import type { SnapshotMeta } from './storage.js';

const joint: ConfState = {
  voters: ['n1', 'n2', 'n4'],
  outgoing: ['n1', 'n2', 'n3'],
  learners: ['n5'],
  context: 'addresses',
};
const simple: ConfState = { voters: ['n1'], outgoing: [], learners: [], context: '' };

async function* bytes(s: string): AsyncGenerator<Uint8Array> {
  yield new TextEncoder().encode(s);
}

async function openedMeta(s: MemoryStorage): Promise<SnapshotMeta | undefined> {
  return (await s.openSnapshot())?.meta;
}

describe('MemoryStorage: the configuration in a snapshot', () => {
  it('save → load and openSnapshot give it back', async () => {
    const s = new MemoryStorage();
    const meta = { index: 4, term: 2, config: joint };
    await s.saveSnapshot(meta, bytes('four'));
    expect((await s.load()).snapshot).toStrictEqual(meta);
    expect(await openedMeta(s)).toStrictEqual(meta);
    await s.saveSnapshot({ index: 5, term: 2 }, bytes('five'));
    expect((await s.load()).snapshot).toStrictEqual({ index: 5, term: 2 });
  });

  it('stage → install keeps the staged configuration; another one is refused', async () => {
    const s = new MemoryStorage();
    const meta = { index: 7, term: 1, config: simple };
    await s.stageSnapshot(meta, bytes('seven'));
    expect(await s.openSnapshot()).toBeNull();
    await expect(s.installStagedSnapshot({ index: 7, term: 1, config: joint })).rejects.toThrow(
      /staged snapshot 7\/1 holds another configuration/,
    );
    await s.installStagedSnapshot(meta);
    expect((await s.load()).snapshot).toStrictEqual(meta);
    expect(await openedMeta(s)).toStrictEqual(meta);

    // Named by index and term alone, it installs with the staged configuration.
    await s.stageSnapshot({ index: 9, term: 2, config: joint }, bytes('nine'));
    await s.installStagedSnapshot({ index: 9, term: 2 });
    expect(await openedMeta(s)).toStrictEqual({ index: 9, term: 2, config: joint });
  });
});
