// The write-ahead log's record format and how a segment's bytes are read back. No I/O here: file.ts and
// writer.ts move the bytes, replay.ts turns records into a log.
//
// A record is
//
//   [u32 length][u32 crc][u8 type][payload]      (little-endian)
//
// where `length` counts the type byte and the payload (so a record takes 8 + length bytes) and `crc` is the CRC-32
// of the same bytes. Integers that can exceed 32 bits (indexes, terms) are written as u64 (two u32 halves); they
// must be safe integers. Payloads by type:
//
//   ENTRY          1  [u64 index][u64 term][u8 entry type][data...]
//   HARD_STATE     2  [u64 term][u64 commit][vote, UTF-8...]
//   TRUNCATE       3  [u64 from]            every entry at or after `from` written before is void
//   SNAPSHOT_MARK  4  [u64 index][u64 term] the snapshot now current; entries up to `index` are superseded
//
// A SNAPSHOT_MARK names the snapshot by index and term only: its configuration (SnapshotMeta.config) is kept in the
// snapshot file, which is where load() reads the meta from (file.ts explains why the mark needs no more).

import type { Entry, EntryType, HardState } from '../raft/types.js';
import { crc32 } from '../util/crc32.js';
import type { SnapshotMeta } from './storage.js';

export const RecordType = {
  Entry: 1,
  HardState: 2,
  Truncate: 3,
  SnapshotMark: 4,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

export type WalRecord =
  | { readonly type: 'entry'; readonly entry: Entry }
  | { readonly type: 'hardState'; readonly hardState: HardState }
  | { readonly type: 'truncate'; readonly from: number }
  | { readonly type: 'snapshotMark'; readonly meta: SnapshotMeta };

/** Bytes before the type byte: the length and the crc. */
export const RECORD_HEADER_BYTES = 8;
/** The largest `length` a record may have (the field is a u32). */
export const MAX_RECORD_LENGTH = 0xffff_ffff;

const U32 = 0x1_0000_0000;

export function writeU64(buf: Buffer, offset: number, value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new RangeError(`storage: ${what} must be a safe integer >= 0, got ${value}`);
  buf.writeUInt32LE(value >>> 0, offset);
  buf.writeUInt32LE(Math.floor(value / U32), offset + 4);
}

/** Reads a u64 written by writeU64; NaN when it is not a safe integer (only a corrupt record has that). */
export function readU64(buf: Buffer, offset: number): number {
  const lo = buf.readUInt32LE(offset);
  const hi = buf.readUInt32LE(offset + 4);
  if (hi > 0x1f_ffff) return NaN;
  return hi * U32 + lo;
}

/** Encodes one record, header included, into a fresh buffer. Throws RangeError for values it cannot represent. */
export function encodeRecord(record: WalRecord): Buffer {
  switch (record.type) {
    case 'entry': {
      const { entry } = record;
      if (!Number.isInteger(entry.type) || entry.type < 0 || entry.type > 0xff) {
        throw new RangeError(`wal: entry type must be a byte, got ${entry.type}`);
      }
      const buf = allocRecord(RecordType.Entry, 17 + entry.data.length);
      const p = RECORD_HEADER_BYTES + 1;
      writeU64(buf, p, entry.index, 'entry index');
      writeU64(buf, p + 8, entry.term, 'entry term');
      buf.writeUInt8(entry.type, p + 16);
      buf.set(entry.data, p + 17);
      return seal(buf);
    }
    case 'hardState': {
      const { hardState } = record;
      const vote = Buffer.from(hardState.vote, 'utf8');
      const buf = allocRecord(RecordType.HardState, 16 + vote.length);
      const p = RECORD_HEADER_BYTES + 1;
      writeU64(buf, p, hardState.term, 'hard state term');
      writeU64(buf, p + 8, hardState.commit, 'hard state commit');
      vote.copy(buf, p + 16);
      return seal(buf);
    }
    case 'truncate': {
      const buf = allocRecord(RecordType.Truncate, 8);
      writeU64(buf, RECORD_HEADER_BYTES + 1, record.from, 'truncate index');
      return seal(buf);
    }
    case 'snapshotMark': {
      const buf = allocRecord(RecordType.SnapshotMark, 16);
      writeU64(buf, RECORD_HEADER_BYTES + 1, record.meta.index, 'snapshot index');
      writeU64(buf, RECORD_HEADER_BYTES + 9, record.meta.term, 'snapshot term');
      return seal(buf);
    }
  }
}

function allocRecord(type: RecordType, payloadBytes: number): Buffer {
  const length = 1 + payloadBytes;
  if (length > MAX_RECORD_LENGTH) throw new RangeError(`wal: record of ${length} bytes is too large`);
  const buf = Buffer.allocUnsafe(RECORD_HEADER_BYTES + length);
  buf.writeUInt32LE(length, 0);
  buf.writeUInt8(type, RECORD_HEADER_BYTES);
  return buf;
}

function seal(buf: Buffer): Buffer {
  buf.writeUInt32LE(crc32(buf.subarray(RECORD_HEADER_BYTES)), 4);
  return buf;
}

/**
 * What is at one offset of a segment:
 * - `ok`: a whole record whose checksum matches; `bytes` is its size, header included.
 * - `torn`: the bytes end inside the record (a write that did not finish).
 * - `checksum`: the record is all there but its checksum does not match (a torn or rotten write).
 * - `invalid`: the checksum matches but the content makes no sense (an unknown type, a bad payload). This is never
 *   a torn write; it is a bug or a file from a newer version.
 */
export type ReadResult =
  | { readonly kind: 'ok'; readonly record: WalRecord; readonly bytes: number }
  | { readonly kind: 'torn' | 'checksum' | 'invalid'; readonly reason: string };

/** Reads the record at `offset` of `buf` (a segment's bytes). `offset` must be below `buf.length`. */
export function readRecord(buf: Buffer, offset: number): ReadResult {
  const left = buf.length - offset;
  if (left < RECORD_HEADER_BYTES + 1) {
    return { kind: 'torn', reason: `${left} bytes left, fewer than a record header` };
  }
  const length = buf.readUInt32LE(offset);
  if (length === 0) return { kind: 'checksum', reason: 'record length 0' };
  if (length > left - RECORD_HEADER_BYTES) {
    return {
      kind: 'torn',
      reason: `record length ${length} runs past the end (${left - RECORD_HEADER_BYTES} left)`,
    };
  }
  const body = buf.subarray(offset + RECORD_HEADER_BYTES, offset + RECORD_HEADER_BYTES + length);
  const stored = buf.readUInt32LE(offset + 4);
  const actual = crc32(body);
  if (stored !== actual) {
    return { kind: 'checksum', reason: `checksum mismatch (stored ${hex(stored)}, computed ${hex(actual)})` };
  }
  const record = decodeBody(body);
  if (typeof record === 'string') return { kind: 'invalid', reason: record };
  return { kind: 'ok', record, bytes: RECORD_HEADER_BYTES + length };
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

/** Decodes type + payload whose checksum matched; a string says why it cannot. */
function decodeBody(body: Buffer): WalRecord | string {
  const type = body.readUInt8(0);
  const payload = body.length - 1;
  switch (type) {
    case RecordType.Entry: {
      if (payload < 17) return `entry payload of ${payload} bytes is too short`;
      const index = readU64(body, 1);
      const term = readU64(body, 9);
      if (Number.isNaN(index) || Number.isNaN(term)) return 'entry index or term out of range';
      // A copy, so that the entry does not keep the whole segment buffer alive.
      const data = new Uint8Array(body.subarray(18));
      return { type: 'entry', entry: { index, term, type: body.readUInt8(17) as EntryType, data } };
    }
    case RecordType.HardState: {
      if (payload < 16) return `hard state payload of ${payload} bytes is too short`;
      const term = readU64(body, 1);
      const commit = readU64(body, 9);
      if (Number.isNaN(term) || Number.isNaN(commit)) return 'hard state term or commit out of range';
      return { type: 'hardState', hardState: { term, vote: body.toString('utf8', 17), commit } };
    }
    case RecordType.Truncate: {
      if (payload !== 8) return `truncate payload of ${payload} bytes, expected 8`;
      const from = readU64(body, 1);
      if (Number.isNaN(from)) return 'truncate index out of range';
      return { type: 'truncate', from };
    }
    case RecordType.SnapshotMark: {
      if (payload !== 16) return `snapshot mark payload of ${payload} bytes, expected 16`;
      const index = readU64(body, 1);
      const term = readU64(body, 9);
      if (Number.isNaN(index) || Number.isNaN(term)) return 'snapshot mark index or term out of range';
      return { type: 'snapshotMark', meta: { index, term } };
    }
    default:
      return `unknown record type ${type}`;
  }
}

/**
 * The offset of the first whole, checksum-valid record that starts after `from` (and before `startsBefore`), or
 * -1. Recovery uses it to tell a torn tail (nothing valid after the bad record: the last write did not finish) from
 * corruption in the middle.
 */
export function findValidRecordAfter(buf: Buffer, from: number, startsBefore = buf.length): number {
  for (let p = from; p < startsBefore && p + RECORD_HEADER_BYTES + 1 <= buf.length; p++) {
    const length = buf.readUInt32LE(p);
    if (length === 0 || length > buf.length - p - RECORD_HEADER_BYTES) continue;
    const type = buf.readUInt8(p + RECORD_HEADER_BYTES);
    if (type < RecordType.Entry || type > RecordType.SnapshotMark) continue;
    if (readRecord(buf, p).kind === 'ok') return p;
  }
  return -1;
}

const zeros = Buffer.alloc(64 * 1024);

/**
 * Where the run of zero bytes that ends `buf` begins (`buf.length` when its last byte is not zero). A segment is
 * created at its full size (writer.ts), so the part not written yet reads as zeros: a record never starts there
 * (its length field is at least 1), so replay stops when it reaches this offset. A record may end in zero bytes
 * itself; it is still read whole, as replay only checks this where a record would start.
 */
export function zeroTailStart(buf: Buffer): number {
  let end = buf.length;
  // Whole chunks first (a native compare), then byte by byte in the chunk that is not all zeros.
  while (end > 0) {
    const start = Math.max(0, end - zeros.length);
    if (!buf.subarray(start, end).equals(zeros.subarray(0, end - start))) break;
    end = start;
  }
  while (end > 0 && buf[end - 1] === 0) end--;
  return end;
}

const SEGMENT_NAME = /^(\d{16})\.log$/;

/** A segment's file name: its sequence number, zero-padded to 16 digits so that names sort in order. */
export function segmentName(seq: number): string {
  return `${String(seq).padStart(16, '0')}.log`;
}

/** The sequence number in a segment's file name, or null when the name is not a segment's. */
export function parseSegmentName(name: string): number | null {
  const m = SEGMENT_NAME.exec(name);
  return m?.[1] === undefined ? null : Number(m[1]);
}
