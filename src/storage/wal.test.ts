import { describe, expect, it } from 'vitest';
import { EntryType, type Entry } from '../raft/types.js';
import { crc32 } from '../util/crc32.js';
import { StorageCorruptError } from './errors.js';
import { LogReplay } from './replay.js';
import { TermRuns } from './terms.js';
import {
  encodeRecord,
  findValidRecordAfter,
  parseSegmentName,
  readRecord,
  RECORD_HEADER_BYTES,
  segmentName,
  zeroTailStart,
  type WalRecord,
} from './wal.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const entry = (index: number, term: number, data = `e${index}`): Entry => ({
  index,
  term,
  type: EntryType.Normal,
  data: bytes(data),
});

const samples: WalRecord[] = [
  { type: 'entry', entry: entry(1, 1) },
  {
    type: 'entry',
    entry: { index: 2 ** 40 + 3, term: 2 ** 33, type: EntryType.Noop, data: new Uint8Array(0) },
  },
  {
    type: 'entry',
    entry: { index: 7, term: 2, type: EntryType.Normal, data: new Uint8Array(5000).fill(0xab) },
  },
  { type: 'hardState', hardState: { term: 5, vote: 'n2', commit: 4 } },
  { type: 'hardState', hardState: { term: 0, vote: '', commit: 0 } },
  { type: 'hardState', hardState: { term: 9, vote: 'nœud-é', commit: Number.MAX_SAFE_INTEGER } },
  { type: 'truncate', from: 12 },
  { type: 'snapshotMark', meta: { index: 100, term: 7 } },
];

describe('WAL records', () => {
  it('every record type decodes to what was encoded', () => {
    for (const record of samples) {
      const buf = encodeRecord(record);
      const r = readRecord(buf, 0);
      expect(r).toEqual({ kind: 'ok', record, bytes: buf.length });
      expect(buf.readUInt32LE(0)).toBe(buf.length - RECORD_HEADER_BYTES);
    }
  });

  it('records read back one after another from one buffer', () => {
    const buf = Buffer.concat(samples.map(encodeRecord));
    const out: WalRecord[] = [];
    for (let offset = 0; offset < buf.length;) {
      const r = readRecord(buf, offset);
      if (r.kind !== 'ok') throw new Error(r.reason);
      out.push(r.record);
      offset += r.bytes;
    }
    expect(out).toEqual(samples);
  });

  it('a decoded entry does not share memory with the segment buffer', () => {
    const buf = encodeRecord({ type: 'entry', entry: entry(1, 1, 'abc') });
    const r = readRecord(buf, 0);
    if (r.kind !== 'ok' || r.record.type !== 'entry') throw new Error('not an entry');
    expect(r.record.entry.data.buffer).not.toBe(buf.buffer);
    expect(r.record.entry.data).toBeInstanceOf(Uint8Array);
  });

  it('a record cut anywhere short is torn', () => {
    const buf = encodeRecord({ type: 'entry', entry: entry(3, 1, 'hello') });
    for (let keep = 1; keep < buf.length; keep++) {
      expect(readRecord(buf.subarray(0, keep), 0).kind).toBe('torn');
    }
  });

  it('any flipped bit after the length is a checksum mismatch', () => {
    const good = encodeRecord({ type: 'hardState', hardState: { term: 3, vote: 'n1', commit: 2 } });
    for (let i = 4; i < good.length; i++) {
      const bad = Buffer.from(good);
      bad[i] = (bad[i] as number) ^ 0x10;
      expect(readRecord(bad, 0).kind).toBe('checksum');
    }
  });

  it('a well-checksummed record of an unknown type or bad size is invalid, not torn', () => {
    const odd = encodeRecord({ type: 'truncate', from: 1 });
    odd[RECORD_HEADER_BYTES] = 99; // an unknown type, with a checksum to match
    odd.writeUInt32LE(crc32(odd.subarray(RECORD_HEADER_BYTES)), 4);
    expect(readRecord(odd, 0)).toMatchObject({ kind: 'invalid', reason: 'unknown record type 99' });
  });

  it('rejects values it cannot store', () => {
    expect(() => encodeRecord({ type: 'truncate', from: -1 })).toThrow(RangeError);
    expect(() => encodeRecord({ type: 'truncate', from: 1.5 })).toThrow(RangeError);
    expect(() => encodeRecord({ type: 'entry', entry: { ...entry(1, 1), type: 300 as EntryType } })).toThrow(
      RangeError,
    );
  });

  it('findValidRecordAfter finds the next good record past garbage, or -1', () => {
    const a = encodeRecord({ type: 'entry', entry: entry(1, 1) });
    const b = encodeRecord({ type: 'entry', entry: entry(2, 1) });
    const garbage = Buffer.from([1, 2, 3, 0, 0, 0, 0, 0, 9]);
    const buf = Buffer.concat([a, garbage, b]);
    expect(findValidRecordAfter(buf, 1)).toBe(a.length + garbage.length);
    expect(findValidRecordAfter(Buffer.concat([a, garbage]), 1)).toBe(-1);
  });

  it('findValidRecordAfter looks only at starts before its limit', () => {
    const a = encodeRecord({ type: 'entry', entry: entry(1, 1) });
    const b = encodeRecord({ type: 'entry', entry: entry(2, 1) });
    const buf = Buffer.concat([a, Buffer.from([5, 5, 5]), b]);
    expect(findValidRecordAfter(buf, 1, a.length + 4)).toBe(a.length + 3);
    expect(findValidRecordAfter(buf, 1, a.length + 3)).toBe(-1);
  });

  it('zeroTailStart finds where the trailing zeros begin, across chunk boundaries', () => {
    const a = encodeRecord({ type: 'entry', entry: entry(1, 1) });
    expect(zeroTailStart(Buffer.alloc(0))).toBe(0);
    expect(zeroTailStart(Buffer.alloc(200_000))).toBe(0);
    expect(zeroTailStart(a)).toBe(a.length);
    for (const zeros of [1, 65_535, 65_536, 65_537, 300_000]) {
      expect(zeroTailStart(Buffer.concat([a, Buffer.alloc(zeros)])), `${zeros}`).toBe(a.length);
    }
    // A lone non-zero byte deep in the zeros, on either side of a chunk edge.
    for (const at of [65_535, 65_536, 131_071]) {
      const buf = Buffer.alloc(200_000);
      buf[at] = 1;
      expect(zeroTailStart(buf), `${at}`).toBe(at + 1);
    }
    // A record whose own last bytes are zero: the run starts inside it (replay still reads it whole).
    const zeroEnded = encodeRecord({
      type: 'entry',
      entry: { ...entry(2, 1), data: new Uint8Array([7, 0, 0]) },
    });
    expect(zeroTailStart(Buffer.concat([zeroEnded, Buffer.alloc(10)]))).toBe(zeroEnded.length - 2);
  });

  it('segment names sort in sequence order and parse back', () => {
    expect(segmentName(1)).toBe('0000000000000001.log');
    expect(parseSegmentName(segmentName(123456))).toBe(123456);
    expect(parseSegmentName('0000000000000001.log.tmp')).toBeNull();
    expect(segmentName(9) < segmentName(10)).toBe(true);
  });
});

describe('LogReplay', () => {
  const at = { file: 'seg.log', offset: 0 };
  const replay = (records: WalRecord[]): LogReplay => {
    const r = new LogReplay();
    records.forEach((rec, i) => r.apply(rec, { file: 'seg.log', offset: i * 10 }));
    return r;
  };

  it('keeps the last hard state and the entries in order', () => {
    const r = replay([
      { type: 'hardState', hardState: { term: 1, vote: 'a', commit: 0 } },
      { type: 'entry', entry: entry(1, 1) },
      { type: 'entry', entry: entry(2, 1) },
      { type: 'hardState', hardState: { term: 2, vote: '', commit: 1 } },
    ]);
    expect(r.hardState).toEqual({ term: 2, vote: '', commit: 1 });
    expect(r.entriesAfter(0, 'x')).toEqual([entry(1, 1), entry(2, 1)]);
  });

  it('a truncate voids the suffix it names', () => {
    const r = replay([
      { type: 'entry', entry: entry(1, 1) },
      { type: 'entry', entry: entry(2, 1) },
      { type: 'entry', entry: entry(3, 1) },
      { type: 'truncate', from: 2 },
      { type: 'entry', entry: entry(2, 2) },
    ]);
    expect(r.entriesAfter(0, 'x')).toEqual([entry(1, 1), entry(2, 2)]);
  });

  it('a snapshot mark drops what it covers, and lets the log resume after it', () => {
    const r = replay([
      { type: 'entry', entry: entry(1, 1) },
      { type: 'entry', entry: entry(2, 1) },
      { type: 'entry', entry: entry(3, 1) },
      { type: 'snapshotMark', meta: { index: 2, term: 1 } },
    ]);
    expect(r.entriesAfter(2, 'x')).toEqual([entry(3, 1)]);
    const beyond = replay([
      { type: 'entry', entry: entry(1, 1) },
      { type: 'snapshotMark', meta: { index: 10, term: 3 } },
      { type: 'entry', entry: entry(11, 3) },
    ]);
    expect(beyond.entriesAfter(10, 'x')).toEqual([entry(11, 3)]);
  });

  it('starting mid-log (compacted) is fine when the entries reach back to the snapshot', () => {
    const r = replay([
      { type: 'hardState', hardState: { term: 3, vote: 'b', commit: 6 } },
      { type: 'snapshotMark', meta: { index: 5, term: 2 } },
      { type: 'entry', entry: entry(6, 2) },
      { type: 'entry', entry: entry(7, 3) },
    ]);
    expect(r.entriesAfter(5, 'x')).toEqual([entry(6, 2), entry(7, 3)]);
  });

  it('a hole before the first entry is reported with the file and offset', () => {
    const r = replay([
      { type: 'snapshotMark', meta: { index: 5, term: 2 } },
      { type: 'entry', entry: entry(9, 2) },
    ]);
    expect(() => r.entriesAfter(5, 'x')).toThrow(/seg\.log at offset 10: entries 6\.\.8 are missing/);
  });

  it('rejects a log that is not contiguous, a mark going back, a truncate past the end', () => {
    const gap = (): LogReplay =>
      replay([
        { type: 'entry', entry: entry(1, 1) },
        { type: 'entry', entry: entry(3, 1) },
      ]);
    expect(gap).toThrow(StorageCorruptError);
    expect(gap).toThrow(/seg\.log at offset 10: entry 3 follows entry 1/);
    const r = replay([{ type: 'snapshotMark', meta: { index: 5, term: 1 } }]);
    expect(() => r.apply({ type: 'snapshotMark', meta: { index: 4, term: 1 } }, at)).toThrow(/goes back/);
    const t = replay([{ type: 'entry', entry: entry(1, 1) }]);
    expect(() => t.apply({ type: 'truncate', from: 5 }, at)).toThrow(/past the last entry/);
  });
});

describe('TermRuns', () => {
  it('answers terms by index across runs, truncation and dropping a prefix', () => {
    const t = new TermRuns();
    t.reset(0, 0);
    const terms = [1, 1, 1, 2, 2, 3, 3, 3, 3, 5];
    terms.forEach((term, i) => t.append(i + 1, term));
    expect(t.last).toBe(10);
    terms.forEach((term, i) => expect(t.termAt(i + 1)).toBe(term));
    expect(t.termAt(0)).toBe(0);
    expect(t.termAt(11)).toBeUndefined();

    t.truncate(7);
    expect(t.last).toBe(6);
    expect(t.termAt(6)).toBe(3);
    expect(t.termAt(7)).toBeUndefined();
    t.append(7, 4);
    expect(t.termAt(7)).toBe(4);

    t.dropThrough(4);
    expect(t.floor).toBe(4);
    expect(t.termAt(4)).toBe(2);
    expect(t.termAt(3)).toBeUndefined();
    expect(t.termAt(5)).toBe(2);
    expect(t.termAt(6)).toBe(3);
    t.dropThrough(7);
    expect(t.termAt(7)).toBe(4);
    expect(t.last).toBe(7);
    t.append(8, 4);
    expect(t.termAt(8)).toBe(4);
    expect(() => t.truncate(7)).toThrow();
    expect(() => t.append(10, 4)).toThrow();
  });
});
