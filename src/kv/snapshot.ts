// The KV state machine's snapshot format (§7): a header, then one record per key, cut into bounded chunks so that
// neither writing nor reading a snapshot needs it in one buffer.
//
//   header:  "RKV1" | u32 version-specific flags (0) | f64 lastApplied
//   record:  u32 key bytes | key | u32 value bytes | value | f64 index that last changed the key
//   trailer: u32 0xFFFFFFFF (end marker, so a truncated snapshot is detected)

import type { StoredValue } from './store.js';

const magic = Buffer.from('RKV1', 'latin1');
const endMarker = 0xffffffff;
export const snapshotChunkBytes = 1 << 20;

export class SnapshotFormatError extends Error {}

/** Serialises `entries` (a point-in-time copy) into chunks of about `chunkBytes`. */
export function* encodeSnapshot(
  lastApplied: number,
  entries: Iterable<[string, StoredValue]>,
  chunkBytes = snapshotChunkBytes,
): Generator<Uint8Array> {
  let parts: Buffer[] = [];
  let size = 0;
  const push = (b: Buffer) => {
    parts.push(b);
    size += b.length;
  };
  const header = Buffer.alloc(16);
  magic.copy(header, 0);
  header.writeUInt32BE(0, 4);
  header.writeDoubleBE(lastApplied, 8);
  push(header);
  for (const [key, { value, index }] of entries) {
    const k = Buffer.from(key, 'utf8');
    const v = Buffer.from(value, 'utf8');
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32BE(k.length, 0);
    const mid = Buffer.allocUnsafe(4);
    mid.writeUInt32BE(v.length, 0);
    const tail = Buffer.allocUnsafe(8);
    tail.writeDoubleBE(index, 0);
    push(head);
    push(k);
    push(mid);
    push(v);
    push(tail);
    if (size >= chunkBytes) {
      yield Buffer.concat(parts, size);
      parts = [];
      size = 0;
    }
  }
  const end = Buffer.allocUnsafe(4);
  end.writeUInt32BE(endMarker, 0);
  push(end);
  yield Buffer.concat(parts, size);
}

/** Reads a snapshot back, streaming: yields the last applied index first, then every key. */
export async function decodeSnapshot(
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  onEntry: (key: string, value: StoredValue) => void,
): Promise<number> {
  const reader = new ByteReader();
  let lastApplied: number | undefined;
  let ended = false;
  for await (const chunk of chunks) {
    if (ended) throw new SnapshotFormatError('data after the end marker');
    reader.push(chunk);
    if (lastApplied === undefined) {
      const header = reader.take(16);
      if (header === undefined) continue;
      if (!header.subarray(0, 4).equals(magic))
        throw new SnapshotFormatError('not a KV snapshot (bad magic)');
      lastApplied = header.readDoubleBE(8);
    }
    for (;;) {
      const keyLength = reader.peekUInt32();
      if (keyLength === undefined) break;
      if (keyLength === endMarker) {
        reader.take(4);
        ended = true;
        break;
      }
      const record = readRecord(reader, keyLength);
      if (record === undefined) break;
      onEntry(record[0], record[1]);
    }
  }
  if (lastApplied === undefined || !ended || reader.remaining() > 0) {
    throw new SnapshotFormatError('the snapshot is truncated');
  }
  return lastApplied;
}

function readRecord(reader: ByteReader, keyLength: number): [string, StoredValue] | undefined {
  const valueLengthAt = 4 + keyLength;
  const valueLength = reader.peekUInt32(valueLengthAt);
  if (valueLength === undefined) return undefined;
  const record = reader.take(valueLengthAt + 4 + valueLength + 8);
  if (record === undefined) return undefined;
  const key = record.toString('utf8', 4, valueLengthAt);
  const value = record.toString('utf8', valueLengthAt + 4, valueLengthAt + 4 + valueLength);
  return [key, { value, index: record.readDoubleBE(valueLengthAt + 4 + valueLength) }];
}

/** Bytes arriving in chunks, consumed from the front. Holds at most one record plus one chunk. */
class ByteReader {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Uint8Array): void {
    const b = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    this.#buf = this.#buf.length === 0 ? b : Buffer.concat([this.#buf, b]);
  }

  remaining(): number {
    return this.#buf.length;
  }

  peekUInt32(at = 0): number | undefined {
    return this.#buf.length >= at + 4 ? this.#buf.readUInt32BE(at) : undefined;
  }

  take(n: number): Buffer | undefined {
    if (this.#buf.length < n) return undefined;
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }
}
