import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCommand } from './command.js';
import { SnapshotFormatError } from './snapshot.js';
import { KvStore } from './store.js';

function storeWith(pairs: [string, string][]): KvStore {
  const kv = new KvStore();
  pairs.forEach(([key, value], i) => kv.apply(i + 1, encodeCommand({ op: 'set', key, value })));
  return kv;
}

/** Cuts a byte stream at arbitrary points, as a network or a file read would. */
function* rechunk(chunks: Iterable<Uint8Array>, sizes: number[]): Generator<Uint8Array> {
  const all = Buffer.concat([...chunks]);
  let at = 0;
  for (let i = 0; at < all.length; i++) {
    const n = Math.max(1, sizes[i % sizes.length] ?? 1);
    yield all.subarray(at, at + n);
    at += n;
  }
}

describe('KV snapshots (§7)', () => {
  it('restore(snapshot) gives back the same state, however the bytes are cut', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.string(), fc.string()), { maxLength: 40 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 5 }),
        async (pairs, sizes) => {
          const source = storeWith(pairs);
          const copy = new KvStore();
          await copy.restore(rechunk(source.snapshotChunks(64), sizes));
          expect(copy.entries()).toEqual(source.entries());
          expect(copy.lastApplied).toBe(source.lastApplied);
        },
      ),
    );
  });

  it('cuts a large state into bounded chunks', () => {
    const kv = storeWith(
      Array.from({ length: 5000 }, (_, i) => [`key-${i}`, 'v'.repeat(200)] as [string, string]),
    );
    const chunks = [...kv.snapshotChunks(64 * 1024)];
    expect(chunks.length).toBeGreaterThan(10);
    for (const chunk of chunks) expect(chunk.length).toBeLessThan(64 * 1024 + 1024);
  });

  it('refuses a truncated snapshot and keeps the old state', async () => {
    const kv = storeWith([['a', '1']]);
    const bytes = Buffer.concat([...storeWith([['b', '2']]).snapshotChunks()]);
    await expect(kv.restore([bytes.subarray(0, bytes.length - 3)])).rejects.toThrow(SnapshotFormatError);
    await expect(kv.restore([Buffer.from('nope, not a snapshot')])).rejects.toThrow(/magic/);
    expect(kv.get('a')).toEqual({ value: '1', index: 1 });
  });

  it('after a restore, entries apply from the snapshot index on', async () => {
    const kv = new KvStore();
    await kv.restore(
      storeWith([
        ['a', '1'],
        ['b', '2'],
      ]).snapshotChunks(),
    );
    expect(() => kv.apply(2, encodeCommand({ op: 'get', key: 'a' }))).toThrow(/after 2/);
    kv.apply(3, encodeCommand({ op: 'set', key: 'a', value: '3' }));
    expect(kv.get('a')).toEqual({ value: '3', index: 3 });
  });
});
