// Snapshot files: written from a stream of chunks and read back in bounded chunks, never whole in memory.
//
//   header  (28 + n bytes)  'RFTSNAP2' [u64 index][u64 term][u32 n][configuration, n bytes]
//   data    (size bytes, as the state machine produced them)
//   trailer (24 bytes)      [u64 size][u32 crc32 of data][u32 crc32 of header + size + data crc] 'RFTSEND1'
//
// The configuration is the cluster configuration in force at the snapshot's index (Raft paper §7: "the snapshot
// also includes the latest configuration in the log as of last included index"; thesis §5.1), encoded by
// encodeConfState (JSON); n = 0 means the snapshot carries none; n is at most MAX_SNAPSHOT_CONFIG_BYTES. Files
// are always written in this version 2.
//
// Version 1 files, written before membership changes existed, are still read: a fixed 24-byte header
// 'RFTSNAP1' [u64 index][u64 term], then the same data and trailer; their snapshots carry no configuration. The
// header's length therefore differs between versions: SnapshotFileInfo.headerBytes says where the data start.
//
// The header is written first and the trailer last, so a file cut short has no valid trailer. The crc of the whole
// header (configuration included) and the trailer's first 12 bytes is checked whenever the file is opened; the data
// crc as it is read.

import { open, stat, type FileHandle } from 'node:fs/promises';
import { decodeConfState, encodeConfState } from '../raft/confstate.js';
import type { ConfState } from '../raft/types.js';
import { crc32 } from '../util/crc32.js';
import { StorageCorruptError } from './errors.js';
import { datasync, isCode, removeFile, writeAll, type Counters } from './fsutil.js';
import type { SnapshotMeta } from './storage.js';
import { readU64, writeU64 } from './wal.js';

/** The header of a version 1 file (index and term only). */
export const SNAPSHOT_V1_HEADER_BYTES = 24;
/** The fixed part of a version 2 header, before the configuration's bytes. */
export const SNAPSHOT_V2_HEADER_BYTES = 28;
export const SNAPSHOT_TRAILER_BYTES = 24;
/** The largest encoded configuration a snapshot file may hold (thousands of members take far less). */
export const MAX_SNAPSHOT_CONFIG_BYTES = 1024 * 1024;
const HEAD_MAGIC_V1 = Buffer.from('RFTSNAP1', 'latin1');
const HEAD_MAGIC_V2 = Buffer.from('RFTSNAP2', 'latin1');
const TAIL_MAGIC = Buffer.from('RFTSEND1', 'latin1');
/** Where a version 2 header's configuration starts (after magic, index, term and its length). */
const CONFIG_OFFSET = SNAPSHOT_V2_HEADER_BYTES;

/** What the header and trailer of a snapshot file say. */
export interface SnapshotFileInfo {
  /** Index, term and (in version 2 files that carry one) the configuration. */
  readonly meta: SnapshotMeta;
  /** Bytes of header: the data start at this offset (24 in version 1 files, 28 + the configuration in version 2). */
  readonly headerBytes: number;
  /** Bytes of data (the file is headerBytes + size + trailer). */
  readonly size: number;
  readonly dataCrc: number;
}

const pad = (n: number): string => String(n).padStart(16, '0');
const SNAP_NAME = /^(\d{16})-(\d{16})\.snap$/;

/** The name of the current snapshot's file in snap/. */
export function snapshotName(meta: SnapshotMeta): string {
  return `${pad(meta.index)}-${pad(meta.term)}.snap`;
}

export function parseSnapshotName(name: string): SnapshotMeta | null {
  const m = SNAP_NAME.exec(name);
  if (m?.[1] === undefined || m[2] === undefined) return null;
  return { index: Number(m[1]), term: Number(m[2]) };
}

/** The name of a snapshot received from the leader and not yet installed. */
export function stagedName(meta: SnapshotMeta): string {
  return `staged-${pad(meta.index)}-${pad(meta.term)}.tmp`;
}

/** A snapshot of the local state machine being written; `seq` tells concurrent ones apart. */
export function tempName(meta: SnapshotMeta, seq: number): string {
  return `tmp-${pad(meta.index)}-${pad(meta.term)}-${seq}.tmp`;
}

/** Whether a file in snap/ is a leftover of a write that never finished (or a staged snapshot never installed). */
export function isLeftover(name: string): boolean {
  return (name.startsWith('tmp-') || name.startsWith('staged-')) && name.endsWith('.tmp');
}

/** A snapshot file being written is fdatasynced every this many bytes, and once more at the end. */
const syncEveryBytes = 1 << 20;

export interface WriteSnapshotOptions {
  /** Small chunks are gathered up to this many bytes before one write. */
  readonly bufferBytes: number;
  readonly counters: Counters;
}

/**
 * Writes `chunks` to a new file at `path` (replacing any file there) with the header and trailer, and fdatasyncs
 * it. Memory: one buffer of `bufferBytes` plus the chunk in hand. If `chunks` throws or the disk fails, the file is
 * deleted and the error rethrown. The caller makes the file's name durable (rename + directory fsync).
 */
export async function writeSnapshotFile(
  path: string,
  meta: SnapshotMeta,
  chunks: AsyncIterable<Uint8Array>,
  options: WriteSnapshotOptions,
): Promise<SnapshotFileInfo> {
  // Before the file exists: a configuration that cannot be written leaves nothing behind.
  const header = encodeHeader(meta);
  const fh = await open(path, 'w');
  try {
    await writeAll(fh, header, 0);
    const buffer = Buffer.allocUnsafe(options.bufferBytes);
    let buffered = 0;
    let pos = header.length;
    let size = 0;
    let dataCrc = 0;
    let synced = 0;
    for await (const chunk of chunks) {
      dataCrc = crc32(chunk, dataCrc);
      size += chunk.length;
      if (buffered + chunk.length <= buffer.length) {
        buffer.set(chunk, buffered);
        buffered += chunk.length;
        continue;
      }
      await writeAll(fh, buffer.subarray(0, buffered), pos);
      pos += buffered;
      buffered = 0;
      // Flush as we go: one fdatasync of a whole large file at the end would hold up the WAL's synchronous writes
      // on the same disk for as long as it takes (tens of milliseconds for a few tens of MiB).
      if (pos - synced >= syncEveryBytes) {
        await datasync(fh, options.counters);
        synced = pos;
      }
      if (chunk.length * 2 <= buffer.length) {
        buffer.set(chunk, 0);
        buffered = chunk.length;
      } else {
        await writeAll(fh, chunk, pos);
        pos += chunk.length;
      }
    }
    await writeAll(fh, buffer.subarray(0, buffered), pos);
    pos += buffered;
    await writeAll(fh, encodeTrailer(header, size, dataCrc), pos);
    await datasync(fh, options.counters);
    await fh.close();
    return { meta, headerBytes: header.length, size, dataCrc };
  } catch (err) {
    await fh.close().catch(() => undefined);
    await removeFile(path);
    throw err;
  }
}

/** A version 2 header. Throws RangeError for a configuration over MAX_SNAPSHOT_CONFIG_BYTES. */
function encodeHeader(meta: SnapshotMeta): Buffer {
  const config = meta.config === undefined ? new Uint8Array(0) : encodeConfState(meta.config);
  if (config.length > MAX_SNAPSHOT_CONFIG_BYTES) {
    throw new RangeError(
      `storage: the configuration of snapshot ${meta.index}/${meta.term} encodes to ${config.length} bytes, ` +
        `more than the limit of ${MAX_SNAPSHOT_CONFIG_BYTES}`,
    );
  }
  const header = Buffer.alloc(SNAPSHOT_V2_HEADER_BYTES + config.length);
  HEAD_MAGIC_V2.copy(header, 0);
  writeU64(header, 8, meta.index, 'snapshot index');
  writeU64(header, 16, meta.term, 'snapshot term');
  header.writeUInt32LE(config.length, 24);
  header.set(config, CONFIG_OFFSET);
  return header;
}

function encodeTrailer(header: Buffer, size: number, dataCrc: number): Buffer {
  const trailer = Buffer.alloc(SNAPSHOT_TRAILER_BYTES);
  writeU64(trailer, 0, size, 'snapshot size');
  trailer.writeUInt32LE(dataCrc, 8);
  trailer.writeUInt32LE(crc32(trailer.subarray(0, 12), crc32(header)), 12);
  TAIL_MAGIC.copy(trailer, 16);
  return trailer;
}

/** Reads and checks a snapshot file's header and trailer (not its data). Throws StorageCorruptError. */
export async function readSnapshotInfo(path: string): Promise<SnapshotFileInfo> {
  const fh = await open(path, 'r');
  try {
    const { size: fileSize } = await fh.stat();
    if (fileSize < SNAPSHOT_V1_HEADER_BYTES + SNAPSHOT_TRAILER_BYTES) {
      throw new StorageCorruptError(
        path,
        0,
        `snapshot file of ${fileSize} bytes is shorter than its header+trailer`,
      );
    }
    const trailerAt = fileSize - SNAPSHOT_TRAILER_BYTES;
    const header = await readHeader(fh, path, trailerAt);
    const trailer = await readExactly(fh, path, trailerAt, SNAPSHOT_TRAILER_BYTES);
    if (!trailer.subarray(16).equals(TAIL_MAGIC)) {
      throw new StorageCorruptError(path, trailerAt, 'snapshot trailer missing (the file was cut short)');
    }
    if (trailer.readUInt32LE(12) !== crc32(trailer.subarray(0, 12), crc32(header))) {
      throw new StorageCorruptError(path, trailerAt, 'snapshot header/trailer checksum mismatch');
    }
    // Only now that the checksum vouches for the header are its fields trusted.
    const index = readU64(header, 8);
    const term = readU64(header, 16);
    const config = decodeConfig(header, path);
    const meta: SnapshotMeta = config === undefined ? { index, term } : { index, term, config };
    const size = readU64(trailer, 0);
    if (size !== trailerAt - header.length) {
      throw new StorageCorruptError(
        path,
        trailerAt,
        `snapshot says ${size} data bytes, file has ${trailerAt - header.length}`,
      );
    }
    return { meta, headerBytes: header.length, size, dataCrc: trailer.readUInt32LE(8) };
  } finally {
    await fh.close();
  }
}

/**
 * The whole header, of either version; its length is only checked against the file here (the checksum is checked
 * by the caller). `trailerAt` bounds it: a header never reaches into the trailer.
 */
async function readHeader(fh: FileHandle, path: string, trailerAt: number): Promise<Buffer> {
  const fixed = await readExactly(fh, path, 0, SNAPSHOT_V1_HEADER_BYTES);
  const magic = fixed.subarray(0, 8);
  if (magic.equals(HEAD_MAGIC_V1)) return fixed;
  if (!magic.equals(HEAD_MAGIC_V2)) throw new StorageCorruptError(path, 0, 'not a snapshot file');
  if (trailerAt < SNAPSHOT_V2_HEADER_BYTES) {
    throw new StorageCorruptError(
      path,
      0,
      `snapshot file of ${trailerAt + SNAPSHOT_TRAILER_BYTES} bytes is shorter than its header+trailer`,
    );
  }
  const length = (await readExactly(fh, path, 24, 4)).readUInt32LE(0);
  if (length > MAX_SNAPSHOT_CONFIG_BYTES) {
    throw new StorageCorruptError(
      path,
      24,
      `snapshot configuration of ${length} bytes is over the limit of ${MAX_SNAPSHOT_CONFIG_BYTES}`,
    );
  }
  if (SNAPSHOT_V2_HEADER_BYTES + length > trailerAt) {
    throw new StorageCorruptError(
      path,
      24,
      `snapshot configuration of ${length} bytes runs past the data into the trailer`,
    );
  }
  return readExactly(fh, path, 0, SNAPSHOT_V2_HEADER_BYTES + length);
}

/** The configuration a version 2 header carries (none when its length is 0, and never in version 1). */
function decodeConfig(header: Buffer, path: string): ConfState | undefined {
  if (header.length <= SNAPSHOT_V1_HEADER_BYTES) return undefined; // version 1
  const bytes = header.subarray(CONFIG_OFFSET);
  if (bytes.length === 0) return undefined;
  try {
    return decodeConfState(bytes);
  } catch (err) {
    throw new StorageCorruptError(
      path,
      CONFIG_OFFSET,
      `snapshot configuration does not decode: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

async function readExactly(fh: FileHandle, path: string, at: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, at + got);
    if (bytesRead === 0) throw new StorageCorruptError(path, at + got, 'snapshot file ends early');
    got += bytesRead;
  }
  return buf;
}

/**
 * Reads a snapshot's data in chunks of at most `chunkBytes` (each a fresh buffer the consumer may keep) and checks
 * the data crc at the end: the last step throws StorageCorruptError on a mismatch. `onMissing` makes the error for
 * a file that is gone (a newer snapshot replaced it).
 */
export async function* readSnapshotChunks(
  path: string,
  info: SnapshotFileInfo,
  chunkBytes: number,
  onMissing: () => Error,
): AsyncGenerator<Uint8Array> {
  const fh = await open(path, 'r').catch((err: unknown) => {
    throw isCode(err, 'ENOENT') ? onMissing() : err;
  });
  try {
    let crc = 0;
    let done = 0;
    while (done < info.size) {
      const want = Math.min(chunkBytes, info.size - done);
      const chunk = Buffer.allocUnsafe(want);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(chunk, got, want - got, info.headerBytes + done + got);
        if (bytesRead === 0) {
          throw new StorageCorruptError(path, info.headerBytes + done + got, 'snapshot data ends early');
        }
        got += bytesRead;
      }
      crc = crc32(chunk, crc);
      done += want;
      yield chunk;
    }
    if (crc !== info.dataCrc) {
      throw new StorageCorruptError(
        path,
        info.headerBytes,
        `snapshot data checksum mismatch over ${done} bytes`,
      );
    }
  } finally {
    await fh.close();
  }
}

/** Whether a file exists (a stat that fails only because it is absent). */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (isCode(err, 'ENOENT')) return false;
    throw err;
  }
}
