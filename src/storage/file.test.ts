import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  appendFile,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  truncate,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeConfState } from '../raft/confstate.js';
import { emptyHardState, EntryType, type ConfState, type Entry, type HardState } from '../raft/types.js';
import { crc32 } from '../util/crc32.js';
import { StorageCorruptError } from './errors.js';
import { FileStorage, type FileStorageOptions } from './file.js';
import { newCounters } from './fsutil.js';
import { MAX_SNAPSHOT_CONFIG_BYTES, readSnapshotInfo, snapshotName, writeSnapshotFile } from './snapfile.js';
import type { SnapshotMeta } from './storage.js';
import { readRecord, zeroTailStart, type WalRecord } from './wal.js';

let dir: string;
let opened: FileStorage[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rafting-storage-'));
});

afterEach(async () => {
  for (const s of opened) await s.close();
  opened = [];
  await rm(dir, { recursive: true, force: true });
});

interface Logged {
  readonly obj: Record<string, unknown>;
  readonly msg: string;
}

/** Opens the storage in `dir` (closed after the test); `logged` collects its warnings. */
async function openStorage(options: FileStorageOptions = {}, logged: Logged[] = []): Promise<FileStorage> {
  const logger = {
    warn: (obj: object, msg: string) => logged.push({ obj: obj as Record<string, unknown>, msg }),
  };
  const s = await FileStorage.open(dir, { logger, ...options });
  opened.push(s);
  return s;
}

async function reopen(
  s: FileStorage,
  options: FileStorageOptions = {},
  logged: Logged[] = [],
): Promise<FileStorage> {
  await s.close();
  return openStorage(options, logged);
}

const text = new TextEncoder();
const entry = (index: number, term: number, data = `entry ${index}/${term}`): Entry => ({
  index,
  term,
  type: EntryType.Normal,
  data: text.encode(data),
});
const range = (from: number, to: number, term: number): Entry[] =>
  Array.from({ length: to - from + 1 }, (_, i) => entry(from + i, term));
const hs = (term: number, vote: string, commit: number): HardState => ({ term, vote, commit });

const walDir = (): string => join(dir, 'wal');
const snapDir = (): string => join(dir, 'snap');
const segments = async (): Promise<string[]> => (await readdir(walDir())).sort();
const lastSegment = async (): Promise<string> => join(walDir(), (await segments()).at(-1) ?? 'none');

/** Every record in a segment file, with its offset (up to the zeros of the segment's unused reserved space). */
async function recordsOf(file: string): Promise<{ offset: number; bytes: number; record: WalRecord }[]> {
  const buf = await readFile(file);
  const end = zeroTailStart(buf);
  const out: { offset: number; bytes: number; record: WalRecord }[] = [];
  for (let offset = 0; offset < end;) {
    const r = readRecord(buf, offset);
    if (r.kind !== 'ok') throw new Error(`${file}@${offset}: ${r.reason}`);
    out.push({ offset, bytes: r.bytes, record: r.record });
    offset += r.bytes;
  }
  return out;
}

async function flipByte(file: string, offset: number): Promise<void> {
  const buf = await readFile(file);
  buf[offset] = (buf[offset] as number) ^ 0x55;
  await writeFile(file, buf);
}

/** `count` chunks of `chunkBytes` each, derived from `seed`, fresh buffers (as a state machine would produce). */
async function* generated(count: number, chunkBytes: number, seed = 1): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < count; i++) {
    const chunk = Buffer.allocUnsafe(chunkBytes);
    for (let j = 0; j < chunkBytes; j += 4) chunk.writeUInt32LE((seed * 7919 + i * 104729 + j) >>> 0, j);
    yield chunk;
  }
}

async function* fromBytes(...chunks: string[]): AsyncGenerator<Uint8Array> {
  for (const c of chunks) yield text.encode(c);
}

async function readAll(s: FileStorage): Promise<{ meta: SnapshotMeta; data: string } | null> {
  const src = await s.openSnapshot();
  if (src === null) return null;
  const parts: Buffer[] = [];
  for await (const c of src.chunks()) parts.push(Buffer.from(c));
  return { meta: src.meta, data: Buffer.concat(parts).toString() };
}

describe('FileStorage: the log', () => {
  it('a fresh directory loads empty, and every method wants load() first', async () => {
    const s = await openStorage();
    await expect(s.save(hs(1, '', 0), [])).rejects.toThrow(/load\(\) must come first/);
    expect(await s.load()).toEqual({ hardState: emptyHardState, snapshot: null, entries: [] });
  });

  it('round trip of every record type through close and reopen', async () => {
    let s = await openStorage();
    await s.load();
    await s.save(hs(1, 'n1', 0), range(1, 5, 1)); // HARD_STATE + ENTRY
    await s.save(hs(2, 'n2', 3), []);
    await s.save(undefined, [entry(6, 2)]);
    await s.save(undefined, [entry(4, 3), entry(5, 3)]); // TRUNCATE
    await s.saveSnapshot({ index: 2, term: 1 }, fromBytes('state ', 'at 2')); // SNAPSHOT_MARK
    s = await reopen(s);
    expect(await s.load()).toEqual({
      hardState: hs(2, 'n2', 3),
      snapshot: { index: 2, term: 1 },
      entries: [entry(3, 1), entry(4, 3), entry(5, 3)],
    });
    expect(await readAll(s)).toEqual({ meta: { index: 2, term: 1 }, data: 'state at 2' });

    const types = new Set<string>();
    for (const name of await segments()) {
      for (const r of await recordsOf(join(walDir(), name))) types.add(r.record.type);
    }
    expect([...types].sort()).toEqual(['entry', 'hardState', 'snapshotMark', 'truncate']);
  });

  it('blocking writes: the records are in the file before save() gives the thread back; both modes mix', async () => {
    let s = await openStorage();
    await s.load();
    await s.save(hs(1, 'n1', 0), range(1, 2, 1)); // through the thread pool (the default)
    s.setBlockingWrites(true);
    const file = await lastSegment();
    const before = zeroTailStart(readFileSync(file));
    const saved = s.save(undefined, [entry(3, 1)]);
    // No await in between: the write has already happened, on this thread.
    expect(zeroTailStart(readFileSync(file))).toBeGreaterThan(before);
    await saved;
    s.setBlockingWrites(false);
    await s.save(hs(1, 'n1', 3), [entry(4, 1)]);
    s = await reopen(s);
    expect(await s.load()).toEqual({ hardState: hs(1, 'n1', 3), snapshot: null, entries: range(1, 4, 1) });
  });

  it('a new segment takes its full size at once; sealing and close give back what it did not use', async () => {
    const segmentBytes = 1024;
    const held = async (file: string): Promise<number> =>
      (await recordsOf(file)).reduce((n, r) => n + r.bytes, 0);
    const s = await openStorage({ segmentBytes });
    await s.load();
    await s.save(hs(1, 'n1', 0), [entry(1, 1)]);
    const first = await lastSegment();
    // The writes land inside the file, so an O_DSYNC write has no new file size to make durable.
    expect((await stat(first)).size).toBe(segmentBytes);
    let i = 2;
    while ((await segments()).length < 2) await s.save(undefined, [entry(i++, 1)]);
    expect((await stat(first)).size).toBe(await held(first));
    expect(await held(first)).toBeLessThanOrEqual(segmentBytes);
    const second = await lastSegment();
    expect((await stat(second)).size).toBe(segmentBytes);
    await s.close();
    expect((await stat(second)).size).toBe(await held(second));
    const again = await openStorage({ segmentBytes });
    expect((await again.load()).entries).toEqual(range(1, i - 1, 1));
  });

  it('switching between blocking and thread-pool writes with saves in flight keeps them in order', async () => {
    let s = await openStorage({ segmentBytes: 300 }); // rolls every few records
    await s.load();
    const saves: Promise<void>[] = [];
    for (let i = 1; i <= 40; i++) {
      s.setBlockingWrites(i % 3 === 0);
      saves.push(s.save(hs(1, 'n1', i - 1), [entry(i, 1)]));
    }
    await Promise.all(saves);
    expect((await segments()).length).toBeGreaterThan(5);
    s = await reopen(s, { segmentBytes: 300 });
    expect(await s.load()).toEqual({ hardState: hs(1, 'n1', 39), snapshot: null, entries: range(1, 40, 1) });
  });

  it('an overwritten suffix stays overwritten after reopen, and the log goes on from there', async () => {
    let s = await openStorage();
    await s.load();
    await s.save(hs(1, 'a', 0), range(1, 10, 1));
    await s.save(hs(2, 'b', 0), range(6, 8, 2));
    s = await reopen(s);
    expect((await s.load()).entries).toEqual([...range(1, 5, 1), ...range(6, 8, 2)]);
    await s.save(undefined, [entry(9, 2)]);
    await s.save(undefined, [entry(3, 3)]);
    s = await reopen(s);
    const stored = await s.load();
    expect(stored.entries).toEqual([...range(1, 2, 1), entry(3, 3)]);
    expect(stored.hardState).toEqual(hs(2, 'b', 0));
  });

  it('a second load() reads the same state back from disk', async () => {
    const s = await openStorage();
    await s.load();
    await s.save(hs(3, 'n2', 1), range(1, 4, 3));
    await s.saveSnapshot({ index: 2, term: 3 }, fromBytes('two'));
    expect(await s.load()).toEqual({
      hardState: hs(3, 'n2', 1),
      snapshot: { index: 2, term: 3 },
      entries: range(3, 4, 3),
    });
  });

  it('rejects a save that would leave a gap or is not contiguous', async () => {
    const s = await openStorage();
    await s.load();
    await s.save(undefined, range(1, 3, 1));
    await expect(s.save(undefined, [entry(5, 1)])).rejects.toThrow(/gap, have up to 3, got 5/);
    await expect(s.save(undefined, [entry(4, 1), entry(6, 1)])).rejects.toThrow(/not contiguous/);
    await s.save(undefined, [entry(4, 1)]);
  });

  it('rolls segments at a tiny size, within a save and across saves, and reads them all back', async () => {
    const options = { segmentBytes: 300 };
    let s = await openStorage(options);
    await s.load();
    await s.save(hs(1, 'n1', 0), range(1, 100, 1)); // one save over many segments
    for (let i = 101; i <= 300; i++) await s.save(hs(1, 'n1', i - 100), [entry(i, 1)]);
    expect(s.stats().segments).toBeGreaterThan(20);
    const files = await segments();
    expect(files.length).toBe(s.stats().segments);
    for (const f of files) expect((await stat(join(walDir(), f))).size).toBeLessThan(300 + 100);
    s = await reopen(s, options);
    const stored = await s.load();
    expect(stored.entries).toEqual(range(1, 300, 1));
    expect(stored.hardState).toEqual(hs(1, 'n1', 200));
  });

  it('a segment starts with the hard state, so it survives losing the older segments', async () => {
    let s = await openStorage({ segmentBytes: 200 });
    await s.load();
    await s.save(hs(4, 'n3', 0), []);
    for (let i = 1; i <= 40; i++) await s.save(undefined, [entry(i, 4)]);
    const last = await lastSegment();
    expect((await recordsOf(last))[0]?.record).toEqual({ type: 'hardState', hardState: hs(4, 'n3', 0) });
    await s.saveSnapshot({ index: 40, term: 4 }, fromBytes('x'));
    await s.compact(40);
    expect(await segments()).toEqual([last.slice(walDir().length + 1)]);
    s = await reopen(s);
    expect(await s.load()).toEqual({
      hardState: hs(4, 'n3', 0),
      snapshot: { index: 40, term: 4 },
      entries: [],
    });
  });
});

describe('FileStorage: recovery from a torn or corrupt WAL', () => {
  /** Five single-entry saves, closed: returns the last segment's path, its size and the last record's size. */
  async function fiveEntries(): Promise<{ file: string; size: number; lastBytes: number }> {
    const s = await openStorage();
    await s.load();
    await s.save(hs(1, 'n1', 0), []);
    for (let i = 1; i <= 5; i++) await s.save(undefined, [entry(i, 1)]);
    await s.close();
    const file = await lastSegment();
    const records = await recordsOf(file);
    return { file, size: (await stat(file)).size, lastBytes: records.at(-1)?.bytes ?? 0 };
  }

  it('cuts a torn last record off, wherever the tear is, logs it, and goes on', async () => {
    const { lastBytes } = await fiveEntries();
    expect(lastBytes).toBeGreaterThan(20);
    // Cuts inside the header (keep < 8 bytes), inside the payload, and one byte short.
    const cuts = [1, 2, 10, lastBytes - 9, lastBytes - 8, lastBytes - 7, lastBytes - 3, lastBytes - 1];
    for (const cut of cuts) {
      await rm(dir, { recursive: true, force: true });
      const { file, size } = await fiveEntries();
      await truncate(file, size - cut);
      const logged: Logged[] = [];
      const s = await openStorage({}, logged);
      const stored = await s.load();
      expect(stored.entries, `cut ${cut}`).toEqual(range(1, 4, 1));
      expect(stored.hardState).toEqual(hs(1, 'n1', 0));
      expect(logged).toHaveLength(1);
      expect(logged[0]?.obj).toMatchObject({ file, offset: size - lastBytes, bytesDropped: lastBytes - cut });
      expect((await stat(file)).size).toBe(size - lastBytes);
      // The log continues where the tear was; a reopen sees a clean log.
      await s.save(undefined, [entry(5, 2)]);
      const again = await reopen(s, {}, logged);
      expect((await again.load()).entries).toEqual([...range(1, 4, 1), entry(5, 2)]);
      expect(logged).toHaveLength(1);
      await again.close();
    }
  });

  it('drops a last record whose checksum fails (a flipped byte in its data, or in its length)', async () => {
    for (const where of ['data', 'length'] as const) {
      await rm(dir, { recursive: true, force: true });
      const { file, size, lastBytes } = await fiveEntries();
      await flipByte(file, where === 'data' ? size - 2 : size - lastBytes + 3);
      const logged: Logged[] = [];
      const s = await openStorage({}, logged);
      expect((await s.load()).entries, where).toEqual(range(1, 4, 1));
      expect(logged[0]?.obj).toMatchObject({ file, offset: size - lastBytes });
      expect(String(logged[0]?.obj.reason)).toMatch(
        where === 'data' ? /checksum mismatch/ : /runs past the end/,
      );
      await s.close();
    }
  });

  it('a crash leaves the active segment ending in its reserved zeros: load reads up to them and tidies', async () => {
    const s = await openStorage();
    await s.load();
    await s.save(hs(1, 'n1', 0), range(1, 4, 1));
    // An entry whose data ends in zero bytes ends the log: the zeros after it must not eat into it.
    const last = { ...entry(5, 1), data: new Uint8Array([1, 2, 0, 0, 0]) };
    await s.save(undefined, [last]);
    await s.close();
    const file = await lastSegment();
    const size = (await stat(file)).size;
    // What a crash leaves: the records, then the rest of the segment's reserved space, never written.
    await truncate(file, size + 100_000);
    const logged: Logged[] = [];
    const again = await openStorage({}, logged);
    expect((await again.load()).entries).toEqual([...range(1, 4, 1), last]);
    expect(logged).toEqual([]); // nothing was lost
    expect((await stat(file)).size).toBe(size);
  });

  it('a torn last record followed by reserved zeros is cut off with the zeros', async () => {
    const { file, size, lastBytes } = await fiveEntries();
    // The crash cut the last write short inside the reserved space: its end is still zeros.
    const buf = await readFile(file);
    buf.fill(0, size - 4);
    await writeFile(file, Buffer.concat([buf, Buffer.alloc(50_000)]));
    const logged: Logged[] = [];
    const s = await openStorage({}, logged);
    expect((await s.load()).entries).toEqual(range(1, 4, 1));
    expect(logged).toHaveLength(1);
    expect(logged[0]?.obj).toMatchObject({
      file,
      offset: size - lastBytes,
      bytesDropped: lastBytes + 50_000,
    });
    expect(String(logged[0]?.obj.reason)).toMatch(/checksum mismatch/);
    expect((await stat(file)).size).toBe(size - lastBytes);
  });

  it('a crash while a new segment was being created leaves an empty or torn one: recovery copes', async () => {
    await fiveEntries();
    const next = (n: number): string => join(walDir(), `${String(n).padStart(16, '0')}.log`);
    const count = (await segments()).length;
    await writeFile(next(count + 1), Buffer.alloc(0));
    let s = await openStorage();
    expect((await s.load()).entries).toEqual(range(1, 5, 1));
    await s.close();
    await writeFile(next(count + 3), Buffer.from([40, 0, 0]));
    const logged: Logged[] = [];
    s = await openStorage({}, logged);
    expect((await s.load()).entries).toEqual(range(1, 5, 1));
    expect(logged[0]?.obj).toMatchObject({ file: next(count + 3), offset: 0, bytesDropped: 3 });
  });

  it('rejects a record with a good checksum but an unknown type, even at the end', async () => {
    const { file } = await fiveEntries();
    const body = Buffer.from([77, 1, 2, 3]);
    const header = Buffer.alloc(8);
    header.writeUInt32LE(body.length, 0);
    header.writeUInt32LE(crc32(body), 4);
    await appendFile(file, Buffer.concat([header, body]));
    const s = await openStorage();
    await expect(s.load()).rejects.toThrow(/unknown record type 77/);
  });

  it('rejects a corrupt record followed by valid ones, naming the file and offset', async () => {
    const { file } = await fiveEntries();
    const second = (await recordsOf(file)).find(
      (r) => r.record.type === 'entry' && r.record.entry.index === 2,
    );
    if (second === undefined) throw new Error('no entry 2');
    await flipByte(file, second.offset + 12);
    const s = await openStorage();
    const err = await s.load().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StorageCorruptError);
    const message = (err as StorageCorruptError).message;
    expect(message.startsWith(`${file} at offset ${second.offset}: checksum mismatch`)).toBe(true);
    expect(message).toContain(`a valid record follows at ${second.offset + second.bytes}`);
    expect((err as StorageCorruptError).file).toBe(file);
    expect((err as StorageCorruptError).offset).toBe(second.offset);
  });

  /** A log over several segments; returns the segment files. */
  async function manySegments(): Promise<string[]> {
    const s = await openStorage({ segmentBytes: 200 });
    await s.load();
    await s.save(hs(1, 'n1', 0), []);
    for (let i = 1; i <= 30; i++) await s.save(undefined, [entry(i, 1)]);
    await s.close();
    const files = (await segments()).map((f) => join(walDir(), f));
    expect(files.length).toBeGreaterThan(4);
    return files;
  }

  it('rejects a corrupt record in an earlier segment, even at its very end', async () => {
    const files = await manySegments();
    const first = files[0] ?? '';
    const records = await recordsOf(first);
    const lastRecord = records.at(-1);
    if (lastRecord === undefined) throw new Error('empty segment');
    await flipByte(first, lastRecord.offset + lastRecord.bytes - 1);
    const s = await openStorage();
    await expect(s.load()).rejects.toThrow(`${first} at offset ${lastRecord.offset}: checksum mismatch`);
  });

  it('rejects a torn end of an earlier segment', async () => {
    const files = await manySegments();
    const second = files[1] ?? '';
    await truncate(second, (await stat(second)).size - 3);
    const s = await openStorage();
    await expect(s.load()).rejects.toThrow(new RegExp(`${second} at offset \\d+: record length`));
  });

  it('rejects a missing middle segment, naming it', async () => {
    const files = await manySegments();
    const middle = files[2] ?? '';
    await unlink(middle);
    const s = await openStorage();
    await expect(s.load()).rejects.toThrow(`${middle}: WAL segment missing`);
  });

  it('rejects a missing first segment when no snapshot covers its entries', async () => {
    const files = await manySegments();
    await unlink(files[0] ?? '');
    const s = await openStorage();
    await expect(s.load()).rejects.toThrow(/entries 1\.\.\d+ are missing/);
  });
});

describe('FileStorage: group commit', () => {
  it('200 concurrent saves resolve with far fewer fsyncs, and all are there after reopen', async () => {
    let s = await openStorage();
    await s.load();
    const before = s.stats();
    await Promise.all(range(1, 200, 1).map((e) => s.save(hs(1, 'n1', e.index - 1), [e])));
    const after = s.stats();
    expect(after.saves - before.saves).toBe(200);
    expect(after.fsyncs - before.fsyncs).toBeLessThan(50);
    expect(after.savesCoalesced - before.savesCoalesced).toBeGreaterThan(150);
    expect(after.records - before.records).toBe(400);
    s = await reopen(s);
    const stored = await s.load();
    expect(stored.entries).toEqual(range(1, 200, 1));
    expect(stored.hardState).toEqual(hs(1, 'n1', 199));
  });

  it('a batch bound keeps batches small, and saves still land in call order', async () => {
    let s = await openStorage({ maxBatchBytes: 200 });
    await s.load();
    await Promise.all(range(1, 50, 1).map((e) => s.save(undefined, [e])));
    expect(s.stats().batches).toBeGreaterThan(5);
    s = await reopen(s);
    expect((await s.load()).entries).toEqual(range(1, 50, 1));
  });

  it('close waits for pending saves, is idempotent, and later calls reject', async () => {
    const s = await openStorage();
    await s.load();
    const saves = range(1, 20, 1).map((e) => s.save(undefined, [e]));
    const closing = s.close();
    await expect(s.save(undefined, [entry(21, 1)])).rejects.toThrow(/closed/);
    await Promise.all(saves);
    await closing;
    await s.close();
    const again = await openStorage();
    expect((await again.load()).entries).toEqual(range(1, 20, 1));
  });
});

// A handle on the garbage collector, to measure what streaming keeps alive.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

describe('FileStorage: snapshots', () => {
  it('streams a 30 MiB snapshot in and out in bounded chunks, in bounded memory', async () => {
    const s = await openStorage();
    await s.load();
    const chunkBytes = 1024 * 1024;
    const count = 30;
    gc();
    const base = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const sample = (): void => {
      gc();
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
    };
    const written = createHash('sha256');
    async function* measured(): AsyncGenerator<Uint8Array> {
      for await (const chunk of generated(count, chunkBytes)) {
        written.update(chunk);
        sample();
        yield chunk;
      }
    }
    await s.saveSnapshot({ index: 0, term: 0 }, measured());
    const src = await s.openSnapshot();
    expect(src?.size).toBe(count * chunkBytes);
    const read = createHash('sha256');
    let chunks = 0;
    for await (const chunk of src?.chunks() ?? []) {
      expect(chunk.length).toBeLessThanOrEqual(chunkBytes);
      read.update(chunk);
      chunks++;
      sample();
    }
    expect(chunks).toBe(count);
    expect(read.digest('hex')).toBe(written.digest('hex'));
    // Holding the snapshot would take 30 MiB; streaming holds a few chunks (freed array buffers lag a little).
    expect(peak).toBeLessThan(12 * chunkBytes);
  });

  it('gathers small chunks, and reads the same bytes back however they were cut', async () => {
    const s = await openStorage({ snapshotChunkBytes: 1000 });
    await s.load();
    const parts = Array.from({ length: 500 }, (_, i) => `${i},`.repeat((i % 7) + 1));
    await s.saveSnapshot({ index: 0, term: 0 }, fromBytes(...parts, 'x'.repeat(5000), 'end'));
    const got = await readAll(s);
    expect(got?.data).toBe(parts.join('') + 'x'.repeat(5000) + 'end');
    const src = await s.openSnapshot();
    for await (const c of src?.chunks() ?? []) expect(c.length).toBeLessThanOrEqual(1000);
  });

  it('a second snapshot replaces the first atomically; leftovers of a crash are ignored and removed', async () => {
    let s = await openStorage();
    await s.load();
    await s.save(hs(1, 'n1', 8), range(1, 10, 1));
    await s.saveSnapshot({ index: 5, term: 1 }, fromBytes('five'));
    await s.saveSnapshot({ index: 8, term: 1 }, fromBytes('eight'));
    expect(await readdir(snapDir())).toEqual([snapshotName({ index: 8, term: 1 })]);
    expect(await readAll(s)).toEqual({ meta: { index: 8, term: 1 }, data: 'eight' });
    await s.close();

    // A crash mid-write leaves a temp file behind; one during a receive, a staged file.
    await writeFile(join(snapDir(), 'tmp-0000000000000009-0000000000000001-1.tmp'), 'half a snap');
    await writeFile(join(snapDir(), 'staged-0000000000000012-0000000000000002.tmp'), 'half a snap');
    const logged: Logged[] = [];
    s = await openStorage({}, logged);
    const stored = await s.load();
    expect(stored.snapshot).toEqual({ index: 8, term: 1 });
    expect(stored.entries).toEqual(range(9, 10, 1));
    expect(await readdir(snapDir())).toEqual([snapshotName({ index: 8, term: 1 })]);
    expect(logged.map((l) => l.msg)).toEqual([
      'storage: removing unfinished snapshot',
      'storage: removing unfinished snapshot',
    ]);
    expect(await readAll(s)).toEqual({ meta: { index: 8, term: 1 }, data: 'eight' });
  });

  it('refuses a snapshot older than the current one', async () => {
    const s = await openStorage();
    await s.load();
    await s.save(undefined, range(1, 10, 1));
    await s.saveSnapshot({ index: 8, term: 1 }, fromBytes('eight'));
    await expect(s.saveSnapshot({ index: 5, term: 1 }, fromBytes('five'))).rejects.toThrow(/older/);
    expect(await readdir(snapDir())).toEqual([snapshotName({ index: 8, term: 1 })]);
  });

  it('compact drops whole old segments, never the active one; reopen gives snapshot + the rest', async () => {
    const options = { segmentBytes: 250 };
    let s = await openStorage(options);
    await s.load();
    await s.save(hs(2, 'n2', 0), []);
    for (let i = 1; i <= 100; i++) await s.save(undefined, [entry(i, 2)]);
    const before = await segments();
    await s.compact(60); // no snapshot yet: nothing is covered
    expect(await segments()).toEqual(before);

    await s.saveSnapshot({ index: 60, term: 2 }, fromBytes('sixty'));
    await s.compact(1000); // only what the snapshot covers
    const after = await segments();
    expect(after.length).toBeLessThan(before.length);
    expect(after.at(-1)).toBe(before.at(-1));
    expect(after[0]).not.toBe(before[0]);
    // The first kept segment still holds an entry the snapshot does not cover.
    const firstKept = await recordsOf(join(walDir(), after[0] ?? ''));
    const indexes = firstKept.flatMap((r) => (r.record.type === 'entry' ? [r.record.entry.index] : []));
    expect(Math.max(...indexes)).toBeGreaterThan(60);

    s = await reopen(s, options);
    expect(await s.load()).toEqual({
      hardState: hs(2, 'n2', 0),
      snapshot: { index: 60, term: 2 },
      entries: range(61, 100, 2),
    });
    await s.save(undefined, [entry(101, 3)]);
    s = await reopen(s, options);
    expect((await s.load()).entries).toEqual([...range(61, 100, 2), entry(101, 3)]);
  });

  it('compacting everything up to the active segment leaves only it', async () => {
    let s = await openStorage({ segmentBytes: 200 });
    await s.load();
    for (let i = 1; i <= 30; i++) await s.save(hs(1, '', i), [entry(i, 1)]);
    await s.saveSnapshot({ index: 30, term: 1 }, fromBytes('all'));
    await s.compact(30);
    expect(s.stats().segments).toBe(1);
    s = await reopen(s);
    expect(await s.load()).toEqual({
      hardState: hs(1, '', 30),
      snapshot: { index: 30, term: 1 },
      entries: [],
    });
  });

  it('install of a staged snapshot whose last entry matches the log keeps the entries after it', async () => {
    let s = await openStorage();
    await s.load();
    await s.save(hs(1, 'n1', 3), range(1, 10, 1));
    await s.stageSnapshot({ index: 7, term: 1 }, fromBytes('seven'));
    expect(await readAll(s)).toBeNull(); // staging leaves the current snapshot alone
    await s.installStagedSnapshot({ index: 7, term: 1 });
    expect(await readAll(s)).toEqual({ meta: { index: 7, term: 1 }, data: 'seven' });
    await s.save(undefined, [entry(11, 1)]);
    s = await reopen(s);
    expect(await s.load()).toEqual({
      hardState: hs(1, 'n1', 3),
      snapshot: { index: 7, term: 1 },
      entries: range(8, 11, 1),
    });
    expect(await readdir(snapDir())).toEqual([snapshotName({ index: 7, term: 1 })]);
  });

  it('install of a staged snapshot that does not match the log empties the log after it', async () => {
    let s = await openStorage();
    await s.load();
    await s.save(hs(1, 'n1', 3), range(1, 10, 1));
    await s.stageSnapshot({ index: 7, term: 2 }, fromBytes('seven, term 2'));
    await s.installStagedSnapshot({ index: 7, term: 2 });
    await expect(s.save(undefined, [entry(9, 2)])).rejects.toThrow(/gap, have up to 7/);
    await s.save(hs(2, '', 7), [entry(8, 2)]);
    s = await reopen(s);
    expect(await s.load()).toEqual({
      hardState: hs(2, '', 7),
      snapshot: { index: 7, term: 2 },
      entries: [entry(8, 2)],
    });

    // A snapshot beyond the end of the log empties it too; the log resumes right after it.
    await s.stageSnapshot({ index: 50, term: 3 }, fromBytes('fifty'));
    await s.installStagedSnapshot({ index: 50, term: 3 });
    await s.save(undefined, [entry(51, 3)]);
    s = await reopen(s);
    expect(await s.load()).toEqual({
      hardState: hs(2, '', 7),
      snapshot: { index: 50, term: 3 },
      entries: [entry(51, 3)],
    });
  });

  it('a failing chunk stream leaves no staged file and the current snapshot intact', async () => {
    const s = await openStorage();
    await s.load();
    await s.save(undefined, range(1, 5, 1));
    await s.saveSnapshot({ index: 3, term: 1 }, fromBytes('three'));
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield* generated(3, 4096);
      throw new Error('stream broke');
    }
    await expect(s.stageSnapshot({ index: 9, term: 2 }, broken())).rejects.toThrow('stream broke');
    expect(await readdir(snapDir())).toEqual([snapshotName({ index: 3, term: 1 })]);
    await expect(s.saveSnapshot({ index: 4, term: 1 }, broken())).rejects.toThrow('stream broke');
    expect(await readdir(snapDir())).toEqual([snapshotName({ index: 3, term: 1 })]);
    await expect(s.installStagedSnapshot({ index: 9, term: 2 })).rejects.toThrow(
      /no staged snapshot at 9\/2/,
    );
    expect(await readAll(s)).toEqual({ meta: { index: 3, term: 1 }, data: 'three' });
    expect((await s.load()).entries).toEqual(range(4, 5, 1));
  });

  it('a corrupted snapshot file: a bad data byte makes the read throw, a bad header makes open throw', async () => {
    let s = await openStorage();
    await s.load();
    await s.saveSnapshot({ index: 0, term: 0 }, generated(3, 64 * 1024));
    const file = join(snapDir(), snapshotName({ index: 0, term: 0 }));
    await flipByte(file, 100_000);
    const src = await s.openSnapshot();
    const drain = async (): Promise<void> => {
      for await (const _ of src?.chunks() ?? []) void _;
    };
    await expect(drain()).rejects.toThrow(/snapshot data checksum mismatch/);
    await expect(drain()).rejects.toBeInstanceOf(StorageCorruptError);

    await flipByte(file, 10); // the index in the header
    await expect(s.openSnapshot()).rejects.toThrow(`${file} at offset`);
    await s.close();
    s = await openStorage();
    await expect(s.load()).rejects.toThrow(/header\/trailer checksum mismatch/);
  });

  it('finishes an install a crash interrupted between the snapshot rename and the WAL mark', async () => {
    for (const term of [1, 2]) {
      await rm(dir, { recursive: true, force: true });
      let s = await openStorage();
      await s.load();
      await s.save(hs(2, '', 4), range(1, 10, 1));
      await s.close();
      // The snapshot file in place, the mark never written.
      const meta = { index: 6, term };
      await writeSnapshotFile(join(snapDir(), snapshotName(meta)), meta, fromBytes('six'), {
        bufferBytes: 1024,
        counters: newCounters(),
      });
      const logged: Logged[] = [];
      s = await openStorage({}, logged);
      const expected = term === 1 ? range(7, 10, 1) : [];
      expect(await s.load()).toEqual({ hardState: hs(2, '', 4), snapshot: meta, entries: expected });
      expect(logged.map((l) => l.msg)).toEqual(['storage: finishing a snapshot install a crash interrupted']);
      s = await reopen(s, {}, logged);
      expect(await s.load()).toEqual({ hardState: hs(2, '', 4), snapshot: meta, entries: expected });
      expect(logged).toHaveLength(1);
      await s.close();
    }
  });

  it('rejects a WAL that names a snapshot the snap directory does not have', async () => {
    let s = await openStorage();
    await s.load();
    await s.save(undefined, range(1, 5, 1));
    await s.saveSnapshot({ index: 4, term: 1 }, fromBytes('four'));
    await s.close();
    await unlink(join(snapDir(), snapshotName({ index: 4, term: 1 })));
    s = await openStorage();
    await expect(s.load()).rejects.toThrow(/the WAL names snapshot 4\/1, snap\/ has none/);
  });

  it('a save may run while a snapshot is being written', async () => {
    const s = await openStorage();
    await s.load();
    await s.save(undefined, range(1, 5, 1));
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    async function* slow(): AsyncGenerator<Uint8Array> {
      yield text.encode('part one ');
      await gate;
      yield text.encode('part two');
    }
    const snapshotting = s.saveSnapshot({ index: 5, term: 1 }, slow());
    await s.save(hs(1, '', 5), [entry(6, 1)]);
    release();
    await snapshotting;
    const s2 = await reopen(s);
    expect(await s2.load()).toEqual({
      hardState: hs(1, '', 5),
      snapshot: { index: 5, term: 1 },
      entries: [entry(6, 1)],
    });
    expect(await readAll(s2)).toEqual({ meta: { index: 5, term: 1 }, data: 'part one part two' });
  });
});

/** A joint configuration with learners and a context: every field of a ConfState set. */
const joint: ConfState = {
  voters: ['n1', 'n2', 'n4'],
  outgoing: ['n1', 'n2', 'n3'],
  learners: ['n5'],
  context: '{"n4":"127.0.0.1:7004","n5":"127.0.0.1:7005"}',
};
const simple: ConfState = { voters: ['n1', 'n2', 'n3'], outgoing: [], learners: [], context: '' };

/**
 * A snapshot file written by hand from the format in snapfile.ts, so that the tests pin the bytes on disk, not just
 * the code's own round trip. `config` is the version 2 header's configuration bytes; null writes version 1.
 */
async function handWritten(
  meta: { index: number; term: number },
  config: Uint8Array | null,
  data: string,
): Promise<string> {
  const fixed = config === null ? 24 : 28;
  const header = Buffer.alloc(fixed + (config?.length ?? 0));
  header.write(config === null ? 'RFTSNAP1' : 'RFTSNAP2', 0, 'latin1');
  header.writeBigUInt64LE(BigInt(meta.index), 8);
  header.writeBigUInt64LE(BigInt(meta.term), 16);
  if (config !== null) {
    header.writeUInt32LE(config.length, 24);
    header.set(config, 28);
  }
  const body = Buffer.from(data);
  const trailer = Buffer.alloc(24);
  trailer.writeBigUInt64LE(BigInt(body.length), 0);
  trailer.writeUInt32LE(crc32(body), 8);
  trailer.writeUInt32LE(crc32(trailer.subarray(0, 12), crc32(header)), 12);
  trailer.write('RFTSEND1', 16, 'latin1');
  const file = join(snapDir(), snapshotName(meta));
  await writeFile(file, Buffer.concat([header, body, trailer]));
  return file;
}

/** What load() rejects with, or null. */
async function loadError(s: FileStorage): Promise<unknown> {
  return s.load().then(
    () => null,
    (e: unknown) => e,
  );
}

describe('FileStorage: the configuration in a snapshot (thesis §5.1)', () => {
  it('save → restart → load and openSnapshot give the configuration back exactly', async () => {
    let s = await openStorage();
    await s.load();
    await s.save(hs(3, 'n1', 8), range(1, 10, 3));
    const meta = { index: 8, term: 3, config: joint };
    await s.saveSnapshot(meta, fromBytes('state at 8'));
    expect((await s.openSnapshot())?.meta).toStrictEqual(meta);
    expect((await s.load()).snapshot).toStrictEqual(meta); // a second load re-reads the file
    s = await reopen(s);
    expect(await s.load()).toStrictEqual({
      hardState: hs(3, 'n1', 8),
      snapshot: meta,
      entries: range(9, 10, 3),
    });
    expect(await readAll(s)).toStrictEqual({ meta, data: 'state at 8' });

    // On disk: a version 2 header with the encoded configuration; the WAL mark names index and term only.
    const file = join(snapDir(), snapshotName(meta));
    const bytes = await readFile(file);
    expect(bytes.subarray(0, 8).toString('latin1')).toBe('RFTSNAP2');
    const config = encodeConfState(joint);
    expect(bytes.readUInt32LE(24)).toBe(config.length);
    expect(Buffer.from(bytes.subarray(28, 28 + config.length))).toEqual(Buffer.from(config));
    expect(await readSnapshotInfo(file)).toMatchObject({ meta, headerBytes: 28 + config.length, size: 10 });
    const marks = (await recordsOf(await lastSegment())).filter((r) => r.record.type === 'snapshotMark');
    expect(marks.map((r) => r.record)).toStrictEqual([{ type: 'snapshotMark', meta: { index: 8, term: 3 } }]);
  });

  it('a snapshot without a configuration stays without one (version 2, empty configuration)', async () => {
    let s = await openStorage();
    await s.load();
    await s.saveSnapshot({ index: 0, term: 0 }, fromBytes('none'));
    const file = join(snapDir(), snapshotName({ index: 0, term: 0 }));
    const bytes = await readFile(file);
    expect(bytes.subarray(0, 8).toString('latin1')).toBe('RFTSNAP2');
    expect(bytes.readUInt32LE(24)).toBe(0);
    s = await reopen(s);
    const { snapshot } = await s.load();
    expect(snapshot).toStrictEqual({ index: 0, term: 0 });
    expect(await readAll(s)).toStrictEqual({ meta: { index: 0, term: 0 }, data: 'none' });
  });

  it('stage → install keeps the staged configuration, through a restart', async () => {
    let s = await openStorage();
    await s.load();
    await s.save(hs(1, 'n1', 3), range(1, 10, 1));
    const meta = { index: 7, term: 1, config: simple };
    await s.stageSnapshot(meta, fromBytes('seven'));
    await s.installStagedSnapshot(meta);
    expect(await readAll(s)).toStrictEqual({ meta, data: 'seven' });
    s = await reopen(s);
    expect((await s.load()).snapshot).toStrictEqual(meta);

    // Named by index and term alone, the staged snapshot installs with its own configuration.
    const next = { index: 12, term: 2, config: joint };
    await s.stageSnapshot(next, fromBytes('twelve'));
    await s.installStagedSnapshot({ index: 12, term: 2 });
    expect((await s.openSnapshot())?.meta).toStrictEqual(next);
    s = await reopen(s);
    expect((await s.load()).snapshot).toStrictEqual(next);
  });

  it('refuses to install a staged snapshot under another configuration', async () => {
    const s = await openStorage();
    await s.load();
    await s.stageSnapshot({ index: 5, term: 1, config: simple }, fromBytes('five'));
    await expect(s.installStagedSnapshot({ index: 5, term: 1, config: joint })).rejects.toThrow(
      /staged snapshot 5\/1 holds another configuration/,
    );
    await s.stageSnapshot({ index: 6, term: 1 }, fromBytes('six, none'));
    await expect(s.installStagedSnapshot({ index: 6, term: 1, config: simple })).rejects.toThrow(
      /staged snapshot 6\/1 holds another configuration/,
    );
    expect(await readAll(s)).toBeNull();
    await s.installStagedSnapshot({ index: 5, term: 1, config: simple });
    expect((await s.openSnapshot())?.meta).toStrictEqual({ index: 5, term: 1, config: simple });
  });

  it('a version 1 file (24-byte header) still loads, with no configuration, and its data read right', async () => {
    let s = await openStorage();
    await s.load();
    await s.save(hs(2, 'n2', 6), range(1, 9, 2));
    await s.saveSnapshot({ index: 6, term: 2 }, fromBytes('written as v2'));
    await s.close();
    // The same snapshot as an older Rafting wrote it.
    const file = await handWritten({ index: 6, term: 2 }, null, 'state at 6, v1');
    expect((await stat(file)).size).toBe(24 + 14 + 24);
    expect(await readSnapshotInfo(file)).toStrictEqual({
      meta: { index: 6, term: 2 },
      headerBytes: 24,
      size: 14,
      dataCrc: crc32(text.encode('state at 6, v1')),
    });
    s = await openStorage();
    const stored = await s.load();
    expect(stored.snapshot).toStrictEqual({ index: 6, term: 2 });
    expect(stored.snapshot && 'config' in stored.snapshot).toBe(false);
    expect(stored.entries).toStrictEqual(range(7, 9, 2));
    expect(await readAll(s)).toStrictEqual({ meta: { index: 6, term: 2 }, data: 'state at 6, v1' });

    // The next snapshot is written in version 2.
    await s.saveSnapshot({ index: 8, term: 2, config: simple }, fromBytes('eight'));
    const next = await readFile(join(snapDir(), snapshotName({ index: 8, term: 2 })));
    expect(next.subarray(0, 8).toString('latin1')).toBe('RFTSNAP2');
    s = await reopen(s);
    expect((await s.load()).snapshot).toStrictEqual({ index: 8, term: 2, config: simple });
  });

  it('a version 2 file written by hand loads (the format is what snapfile.ts says)', async () => {
    let s = await openStorage();
    await s.load();
    await s.save(hs(1, '', 0), range(1, 4, 1));
    await s.saveSnapshot({ index: 3, term: 1 }, fromBytes('x'));
    await s.close();
    await handWritten({ index: 3, term: 1 }, encodeConfState(joint), 'by hand');
    s = await openStorage();
    expect((await s.load()).snapshot).toStrictEqual({ index: 3, term: 1, config: joint });
    expect(await readAll(s)).toStrictEqual({ meta: { index: 3, term: 1, config: joint }, data: 'by hand' });
  });

  it('refuses a configuration that does not decode, naming the file and the offset', async () => {
    for (const [config, reason] of [
      ['not json', /not JSON/],
      ['{"voters":"n1","outgoing":[],"learners":[]}', /"voters" must be a list of node ids/],
      ['{"voters":["n1","n1"],"outgoing":[],"learners":[]}', /"voters" lists a node twice/],
      ['{"voters":["n1"],"outgoing":[],"learners":["n1"]}', /n1 is both a learner and a voter/],
    ] as const) {
      await rm(dir, { recursive: true, force: true });
      let s = await openStorage();
      await s.load();
      await s.save(hs(1, '', 0), range(1, 4, 1));
      await s.saveSnapshot({ index: 3, term: 1 }, fromBytes('x'));
      await s.close();
      // A valid checksum over a configuration no writer should have produced.
      const file = await handWritten({ index: 3, term: 1 }, text.encode(config), 'data');
      s = await openStorage();
      const err = await loadError(s);
      expect(err, config).toBeInstanceOf(StorageCorruptError);
      expect((err as StorageCorruptError).file).toBe(file);
      expect((err as StorageCorruptError).offset).toBe(28);
      expect((err as StorageCorruptError).message).toMatch(
        new RegExp(`^${file} at offset 28: snapshot configuration does not decode: `),
      );
      expect((err as StorageCorruptError).message).toMatch(reason);
      await s.close();
    }
  });

  it('a damaged configuration byte or length is caught when the file is opened', async () => {
    let s = await openStorage();
    await s.load();
    const meta = { index: 0, term: 0, config: joint };
    await s.saveSnapshot(meta, fromBytes('data'));
    const file = join(snapDir(), snapshotName(meta));
    const original = await readFile(file);
    await s.close();

    await flipByte(file, 30); // inside the configuration
    s = await openStorage();
    await expect(s.load()).rejects.toThrow(/header\/trailer checksum mismatch/);
    await s.close();

    for (const [length, reason] of [
      [
        MAX_SNAPSHOT_CONFIG_BYTES + 1,
        /at offset 24: snapshot configuration of 1048577 bytes is over the limit/,
      ],
      [0xffff_ffff, /at offset 24: snapshot configuration of 4294967295 bytes is over the limit/],
      [original.length, /at offset 24: snapshot configuration of \d+ bytes runs past the data/],
      [3, /header\/trailer checksum mismatch/],
    ] as const) {
      const damaged = Buffer.from(original);
      damaged.writeUInt32LE(length, 24);
      await writeFile(file, damaged);
      s = await openStorage();
      const err = await loadError(s);
      expect(err, `length ${length}`).toBeInstanceOf(StorageCorruptError);
      expect(String(err)).toMatch(reason);
      await s.close();
    }
  });

  it('refuses to write a configuration over the size limit, leaving no file', async () => {
    const s = await openStorage();
    await s.load();
    const huge: ConfState = { ...simple, context: 'x'.repeat(MAX_SNAPSHOT_CONFIG_BYTES) };
    await expect(s.saveSnapshot({ index: 0, term: 0, config: huge }, fromBytes('d'))).rejects.toThrow(
      /configuration of snapshot 0\/0 encodes to \d+ bytes, more than the limit of 1048576/,
    );
    await expect(s.stageSnapshot({ index: 4, term: 1, config: huge }, fromBytes('d'))).rejects.toThrow(
      /more than the limit of 1048576/,
    );
    expect(await readdir(snapDir())).toEqual([]);
    // Just under the limit is fine.
    const fits: ConfState = { ...simple, context: 'x'.repeat(MAX_SNAPSHOT_CONFIG_BYTES - 200) };
    await s.saveSnapshot({ index: 0, term: 0, config: fits }, fromBytes('d'));
    expect((await s.openSnapshot())?.meta).toStrictEqual({ index: 0, term: 0, config: fits });
  });
});
