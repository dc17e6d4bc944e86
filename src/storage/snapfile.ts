// Snapshot files: written from a stream of chunks and read back in bounded chunks, never whole in memory.
//
//   header  (24 bytes)  'RFTSNAP1' [u64 index][u64 term]
//   data    (size bytes, as the state machine produced them)
//   trailer (24 bytes)  [u64 size][u32 crc32 of data][u32 crc32 of header + size + data crc] 'RFTSEND1'
//
// The header is written first and the trailer last, so a file cut short has no valid trailer. The crc of the
// header and the trailer's first 12 bytes is checked whenever the file is opened; the data crc as it is read.

import { open, stat } from 'node:fs/promises';
import { crc32 } from '../util/crc32.js';
import { StorageCorruptError } from './errors.js';
import { datasync, isCode, removeFile, writeAll, type Counters } from './fsutil.js';
import type { SnapshotMeta } from './storage.js';
import { readU64, writeU64 } from './wal.js';

export const SNAPSHOT_HEADER_BYTES = 24;
export const SNAPSHOT_TRAILER_BYTES = 24;
const HEAD_MAGIC = Buffer.from('RFTSNAP1', 'latin1');
const TAIL_MAGIC = Buffer.from('RFTSEND1', 'latin1');

/** What the header and trailer of a snapshot file say. */
export interface SnapshotFileInfo {
  readonly meta: SnapshotMeta;
  /** Bytes of data (the file is header + size + trailer). */
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
  const fh = await open(path, 'w');
  try {
    const header = encodeHeader(meta);
    await writeAll(fh, header, 0);
    const buffer = Buffer.allocUnsafe(options.bufferBytes);
    let buffered = 0;
    let pos = SNAPSHOT_HEADER_BYTES;
    let size = 0;
    let dataCrc = 0;
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
    return { meta, size, dataCrc };
  } catch (err) {
    await fh.close().catch(() => undefined);
    await removeFile(path);
    throw err;
  }
}

function encodeHeader(meta: SnapshotMeta): Buffer {
  const header = Buffer.alloc(SNAPSHOT_HEADER_BYTES);
  HEAD_MAGIC.copy(header, 0);
  writeU64(header, 8, meta.index, 'snapshot index');
  writeU64(header, 16, meta.term, 'snapshot term');
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
    if (fileSize < SNAPSHOT_HEADER_BYTES + SNAPSHOT_TRAILER_BYTES) {
      throw new StorageCorruptError(
        path,
        0,
        `snapshot file of ${fileSize} bytes is shorter than its header+trailer`,
      );
    }
    const header = Buffer.alloc(SNAPSHOT_HEADER_BYTES);
    const trailer = Buffer.alloc(SNAPSHOT_TRAILER_BYTES);
    const trailerAt = fileSize - SNAPSHOT_TRAILER_BYTES;
    await fh.read(header, 0, header.length, 0);
    await fh.read(trailer, 0, trailer.length, trailerAt);
    if (!header.subarray(0, 8).equals(HEAD_MAGIC))
      throw new StorageCorruptError(path, 0, 'not a snapshot file');
    if (!trailer.subarray(16).equals(TAIL_MAGIC)) {
      throw new StorageCorruptError(path, trailerAt, 'snapshot trailer missing (the file was cut short)');
    }
    if (trailer.readUInt32LE(12) !== crc32(trailer.subarray(0, 12), crc32(header))) {
      throw new StorageCorruptError(path, trailerAt, 'snapshot header/trailer checksum mismatch');
    }
    const meta = { index: readU64(header, 8), term: readU64(header, 16) };
    const size = readU64(trailer, 0);
    if (size !== trailerAt - SNAPSHOT_HEADER_BYTES) {
      throw new StorageCorruptError(
        path,
        trailerAt,
        `snapshot says ${size} data bytes, file has ${trailerAt - SNAPSHOT_HEADER_BYTES}`,
      );
    }
    return { meta, size, dataCrc: trailer.readUInt32LE(8) };
  } finally {
    await fh.close();
  }
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
        const { bytesRead } = await fh.read(chunk, got, want - got, SNAPSHOT_HEADER_BYTES + done + got);
        if (bytesRead === 0) {
          throw new StorageCorruptError(path, SNAPSHOT_HEADER_BYTES + done + got, 'snapshot data ends early');
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
        SNAPSHOT_HEADER_BYTES,
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
