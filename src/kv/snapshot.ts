// The KV state machine's snapshot format (§7): a header, the keys, then the idempotency table, cut into chunks of a
// bounded size so that neither writing nor reading a snapshot needs it in one buffer. All integers are big-endian;
// indices are float64 holding safe integers, as in version 1.
//
//   header (16 bytes): "RKV2" | u32 flags, 0 | f64 lastApplied
//   the keys, one record each:
//     u32 key bytes | key | u32 value bytes | value | f64 index that last changed the key (1..lastApplied)
//   u32 0xFFFFFFFE (end of the keys)
//   the idempotency table, one record per remembered result, oldest (lowest index) first:
//     u32 idempotency key bytes (1..128) | idempotency key
//     | f64 index of the entry that produced the result (1..lastApplied, increasing from record to record)
//     | u8 kind | u32 key bytes | key | then by kind:
//       1 set applied                           u32 value bytes | value
//       2 delete applied, the key was absent    (nothing)
//       3 delete applied, the key was deleted   (nothing)
//       4 set, condition failed, key absent     (nothing)
//       5 set, condition failed, key present    u32 value bytes | current value | f64 the key's index (1..index-1)
//       6 delete, condition failed, key absent  (nothing)
//       7 delete, condition failed, key present as kind 5
//   trailer: u32 0xFFFFFFFF (end marker, so a truncated snapshot is detected)
//
// Version 1 ("RKV1", written before the idempotency table existed) is the same header and keys, then the trailer
// right after the keys; it still restores, with an empty table. Strings are UTF-8, checked strictly on reading.

import { ByteCursor } from './bytes.js';
import { maxIdempotencyKeyBytes } from './command.js';
import type { Remembered } from './idempotency.js';
import type { StoredValue, WriteResult } from './types.js';

const magicV1 = Buffer.from('RKV1', 'latin1').readUInt32BE(0);
const magicV2 = Buffer.from('RKV2', 'latin1').readUInt32BE(0);
const headerBytes = 16;
const endOfKeys = 0xfffffffe;
const endMarker = 0xffffffff;
export const snapshotChunkBytes = 1 << 20;

export class SnapshotFormatError extends Error {}

/** A point-in-time state to serialise. */
export interface SnapshotState {
  readonly lastApplied: number;
  /** The keys, and in `values` each one's value at the same position. */
  readonly keys: readonly string[];
  readonly values: readonly StoredValue[];
  /** Oldest first. */
  readonly remembered: Iterable<Remembered>;
}

/** Serialises `state` into chunks of exactly `chunkBytes` bytes, except the last, which may be shorter. */
export function* encodeSnapshot(
  state: SnapshotState,
  chunkBytes = snapshotChunkBytes,
): Generator<Uint8Array> {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) {
    throw new RangeError(`chunkBytes must be a positive integer, not ${chunkBytes}`);
  }
  const out = new ChunkWriter(chunkBytes);
  const header = Buffer.alloc(headerBytes);
  header.writeUInt32BE(magicV2, 0);
  header.writeUInt32BE(0, 4);
  header.writeDoubleBE(state.lastApplied, 8);
  out.push(header);
  const { keys, values } = state;
  if (keys.length !== values.length) throw new RangeError('a snapshot needs one value per key');
  for (let i = 0; i < keys.length; i++) {
    writeKeyRecord(out, keys[i]!, values[i]!);
    // Checked before delegating: a generator per key costs more than the record itself.
    if (out.hasFull) yield* out.full();
  }
  out.push(marker(endOfKeys));
  for (const remembered of state.remembered) {
    out.push(tableRecord(remembered));
    yield* out.full();
  }
  out.push(marker(endMarker));
  yield* out.full();
  const rest = out.rest();
  if (rest.length > 0) yield rest;
}

/**
 * A key record, written straight into the chunk when it has room for the longest the strings can be (3 bytes of
 * UTF-8 per UTF-16 unit): no intermediate buffers, and the strings are written first and their lengths filled in
 * after rather than measured first (Buffer.byteLength was half the cost of a record). A snapshot of a few hundred
 * thousand keys is mostly this. Otherwise (near the end of a chunk, or a record larger than one) through keyRecord.
 */
function writeKeyRecord(out: ChunkWriter, key: string, stored: StoredValue): void {
  const chunk = out.room(4 + 3 * key.length + 4 + 3 * stored.value.length + 8);
  if (chunk === null) {
    out.push(keyRecord(key, stored));
    return;
  }
  const start = out.offset;
  const keyBytes = chunk.write(key, start + 4, 'utf8');
  chunk.writeUInt32BE(keyBytes, start);
  let at = start + 4 + keyBytes;
  const valueBytes = chunk.write(stored.value, at + 4, 'utf8');
  chunk.writeUInt32BE(valueBytes, at);
  at += 4 + valueBytes;
  chunk.writeDoubleBE(stored.index, at);
  out.wrote(at + 8 - start);
}

function keyRecord(key: string, { value, index }: StoredValue): Buffer {
  const k = Buffer.from(key, 'utf8');
  const v = Buffer.from(value, 'utf8');
  const record = new RecordWriter(4 + k.length + 4 + v.length + 8);
  record.bytes(k);
  record.bytes(v);
  record.f64(index);
  return record.done();
}

const kinds = {
  setApplied: 1,
  deleteAbsent: 2,
  deleteDeleted: 3,
  setFailedAbsent: 4,
  setFailedPresent: 5,
  deleteFailedAbsent: 6,
  deleteFailedPresent: 7,
} as const;

function kindOf(result: WriteResult): number {
  if (result.ok) {
    if (result.op === 'set') return kinds.setApplied;
    return result.deleted ? kinds.deleteDeleted : kinds.deleteAbsent;
  }
  if (result.op === 'set') return result.current === null ? kinds.setFailedAbsent : kinds.setFailedPresent;
  return result.current === null ? kinds.deleteFailedAbsent : kinds.deleteFailedPresent;
}

function tableRecord({ idempotencyKey, result }: Remembered): Buffer {
  const idem = Buffer.from(idempotencyKey, 'utf8');
  const key = Buffer.from(result.key, 'utf8');
  let value: Buffer | null = null;
  let currentIndex: number | null = null;
  if (result.ok && result.op === 'set') value = Buffer.from(result.value, 'utf8');
  if (!result.ok && result.current !== null) {
    value = Buffer.from(result.current.value, 'utf8');
    currentIndex = result.current.index;
  }
  const size =
    4 +
    idem.length +
    8 +
    1 +
    4 +
    key.length +
    (value === null ? 0 : 4 + value.length) +
    (currentIndex === null ? 0 : 8);
  const record = new RecordWriter(size);
  record.bytes(idem);
  record.f64(result.index);
  record.u8(kindOf(result));
  record.bytes(key);
  if (value !== null) record.bytes(value);
  if (currentIndex !== null) record.f64(currentIndex);
  return record.done();
}

function marker(value: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(value, 0);
  return b;
}

/** Receives a snapshot's contents as they are read. */
export interface SnapshotSink {
  /** Once per key. */
  readonly onEntry: (key: string, value: StoredValue) => void;
  /** Once per remembered result, oldest first (none for a version 1 snapshot). */
  readonly onRemembered: (remembered: Remembered) => void;
}

/**
 * Reads a snapshot back, streaming, from chunks cut at any points; returns its last applied index once the end
 * marker has been read. Throws SnapshotFormatError if the bytes are not a whole, well-formed snapshot.
 */
export async function decodeSnapshot(
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  sink: SnapshotSink,
): Promise<number> {
  const reader = new ByteReader();
  const parser = new SnapshotParser(sink);
  for await (const chunk of chunks) {
    if (parser.ended && chunk.length > 0) throw new SnapshotFormatError('data after the end marker');
    reader.push(chunk);
    while (!parser.ended) {
      const cursor = new ByteCursor(reader.peek(), cursorErrors);
      try {
        parser.step(cursor);
      } catch (e) {
        if (e === incomplete) break;
        throw e;
      }
      reader.take(cursor.offset);
    }
    if (parser.ended && reader.remaining() > 0) throw new SnapshotFormatError('data after the end marker');
  }
  if (!parser.ended) throw new SnapshotFormatError('the snapshot is truncated');
  return parser.lastApplied;
}

/** Thrown by the cursor when the buffered bytes end inside an item: wait for the next chunk. */
const incomplete = new Error('incomplete snapshot item');
const cursorErrors = {
  short: () => incomplete,
  invalid: (message: string) => new SnapshotFormatError(message),
};

/** Reads one item (the header, a record or a marker) per step; a step that throws `incomplete` is retried whole. */
class SnapshotParser {
  readonly #sink: SnapshotSink;
  #section: 'header' | 'keys' | 'table' | 'ended' = 'header';
  #version: 1 | 2 = 2;
  #lastApplied = 0;
  /** The index of the last table record read; records must be in increasing index order. */
  #lastTableIndex = 0;

  constructor(sink: SnapshotSink) {
    this.#sink = sink;
  }

  get ended(): boolean {
    return this.#section === 'ended';
  }

  get lastApplied(): number {
    return this.#lastApplied;
  }

  step(c: ByteCursor): void {
    switch (this.#section) {
      case 'header':
        return this.#header(c);
      case 'keys':
        return this.#keyRecord(c);
      case 'table':
        return this.#tableRecord(c);
      case 'ended':
        throw new Error('kv: parsing past the end of a snapshot');
    }
  }

  #header(c: ByteCursor): void {
    const magic = c.u32('magic');
    if (magic !== magicV1 && magic !== magicV2)
      throw new SnapshotFormatError('not a KV snapshot (bad magic)');
    const flags = c.u32('flags');
    const lastApplied = c.index('lastApplied', 0, Number.MAX_SAFE_INTEGER);
    if (magic === magicV2 && flags !== 0) throw new SnapshotFormatError(`unknown snapshot flags ${flags}`);
    this.#version = magic === magicV1 ? 1 : 2;
    this.#lastApplied = lastApplied;
    this.#section = 'keys';
  }

  #keyRecord(c: ByteCursor): void {
    const keyBytes = c.u32('key length');
    if (keyBytes === endMarker && this.#version === 1) {
      this.#section = 'ended';
      return;
    }
    if (keyBytes === endOfKeys && this.#version === 2) {
      this.#section = 'table';
      return;
    }
    const key = c.utf8(keyBytes, 'key');
    const value = c.utf8(c.u32('value length'), 'value');
    const index = c.index('key index', 1, this.#lastApplied);
    this.#sink.onEntry(key, { value, index });
  }

  #tableRecord(c: ByteCursor): void {
    const idemBytes = c.u32('idempotency key length');
    if (idemBytes === endMarker) {
      this.#section = 'ended';
      return;
    }
    if (idemBytes < 1 || idemBytes > maxIdempotencyKeyBytes) {
      throw new SnapshotFormatError(`idempotency key of ${idemBytes} bytes`);
    }
    const idempotencyKey = c.utf8(idemBytes, 'idempotency key');
    const index = c.index('remembered index', this.#lastTableIndex + 1, this.#lastApplied);
    const kind = c.u8('result kind');
    const key = c.utf8(c.u32('key length'), 'key');
    const result = readResult(c, { kind, key, index });
    this.#lastTableIndex = index;
    this.#sink.onRemembered({ idempotencyKey, result });
  }
}

function readResult(
  c: ByteCursor,
  { kind, key, index }: { kind: number; key: string; index: number },
): WriteResult {
  const current = (): StoredValue => {
    const value = c.utf8(c.u32('current value length'), 'current value');
    return { value, index: c.index('current index', 1, index - 1) };
  };
  switch (kind) {
    case kinds.setApplied:
      return { op: 'set', ok: true, key, value: c.utf8(c.u32('value length'), 'value'), index };
    case kinds.deleteAbsent:
    case kinds.deleteDeleted:
      return { op: 'delete', ok: true, key, deleted: kind === kinds.deleteDeleted, index };
    case kinds.setFailedAbsent:
    case kinds.deleteFailedAbsent:
    case kinds.setFailedPresent:
    case kinds.deleteFailedPresent: {
      const op = kind === kinds.setFailedAbsent || kind === kinds.setFailedPresent ? 'set' : 'delete';
      const present = kind === kinds.setFailedPresent || kind === kinds.deleteFailedPresent;
      return { op, ok: false, reason: 'condition_failed', key, current: present ? current() : null, index };
    }
    default:
      throw new SnapshotFormatError(`unknown result kind ${kind}`);
  }
}

/** Fills one record of a known size: lengths are written before each byte string. */
class RecordWriter {
  readonly #buf: Buffer;
  #at = 0;

  constructor(size: number) {
    this.#buf = Buffer.allocUnsafe(size);
  }

  u8(v: number): void {
    this.#at = this.#buf.writeUInt8(v, this.#at);
  }

  f64(v: number): void {
    this.#at = this.#buf.writeDoubleBE(v, this.#at);
  }

  /** A u32 length, then the bytes. */
  bytes(b: Buffer): void {
    this.#at = this.#buf.writeUInt32BE(b.length, this.#at);
    this.#at += b.copy(this.#buf, this.#at);
  }

  done(): Buffer {
    if (this.#at !== this.#buf.length)
      throw new Error(`kv: record of ${this.#buf.length} bytes filled to ${this.#at}`);
    return this.#buf;
  }
}

/** Collects bytes into chunks of exactly `chunkBytes`. Holds one chunk being filled and the full ones not taken. */
class ChunkWriter {
  readonly #chunkBytes: number;
  #chunk: Buffer;
  #at = 0;
  #full: Uint8Array[] = [];

  constructor(chunkBytes: number) {
    this.#chunkBytes = chunkBytes;
    this.#chunk = Buffer.allocUnsafe(chunkBytes);
  }

  /** Copies `b` in, across chunk boundaries. */
  push(b: Buffer): void {
    let from = 0;
    while (from < b.length) {
      const n = Math.min(b.length - from, this.#chunkBytes - this.#at);
      b.copy(this.#chunk, this.#at, from, from + n);
      from += n;
      this.#at += n;
      if (this.#at === this.#chunkBytes) this.#next();
    }
  }

  /** The chunk being filled, if `size` more bytes fit in it (write them at `offset`, then call `wrote`). */
  room(size: number): Buffer | null {
    return size <= this.#chunkBytes - this.#at ? this.#chunk : null;
  }

  get offset(): number {
    return this.#at;
  }

  wrote(size: number): void {
    this.#at += size;
    if (this.#at === this.#chunkBytes) this.#next();
  }

  #next(): void {
    this.#full.push(this.#chunk);
    this.#chunk = Buffer.allocUnsafe(this.#chunkBytes);
    this.#at = 0;
  }

  /** Whether a chunk is full and waiting for full(). */
  get hasFull(): boolean {
    return this.#full.length > 0;
  }

  /** Every full chunk collected so far. */
  *full(): Generator<Uint8Array> {
    if (this.#full.length === 0) return;
    const full = this.#full;
    this.#full = [];
    yield* full;
  }

  /** What is left: less than one chunk. */
  rest(): Uint8Array {
    const rest = this.#chunk.subarray(0, this.#at);
    this.#at = 0;
    return rest;
  }
}

/** Bytes arriving in chunks, consumed from the front. Holds at most one item plus one chunk. */
class ByteReader {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Uint8Array): void {
    const b = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    this.#buf = this.#buf.length === 0 ? b : Buffer.concat([this.#buf, b]);
  }

  remaining(): number {
    return this.#buf.length;
  }

  peek(): Buffer {
    return this.#buf;
  }

  take(n: number): void {
    this.#buf = this.#buf.subarray(n);
  }
}
