// Small async file helpers shared by the WAL and the snapshot files. Every disk wait goes through libuv's thread
// pool (fs/promises, or fs.writev for WAL writes), so none blocks the event loop, except the WAL writes a follower
// asks to make blocking (writeAllv's `blocking`).

import { writev, writevSync } from 'node:fs';
import { open, readdir, unlink, type FileHandle } from 'node:fs/promises';

/** Counters FileStorage exposes through stats(); the WAL writer and the snapshot code add to the same object. */
export interface Counters {
  /** fdatasync/fsync calls on files and directories, and synchronous (O_DSYNC) WAL batch writes. */
  fsyncs: number;
  /** WAL records written. */
  records: number;
  /** WAL bytes written. */
  bytes: number;
  /** save() calls that resolved (or failed). */
  saves: number;
  /** Group-commit batches: one synchronous write of the active segment each. */
  batches: number;
  /** save() calls that shared a batch with an earlier one (and so cost no fsync of their own). */
  savesCoalesced: number;
}

export function newCounters(): Counters {
  return { fsyncs: 0, records: 0, bytes: 0, saves: 0, batches: 0, savesCoalesced: 0 };
}

/** The most buffers one writev call takes (Linux's IOV_MAX). */
const MAX_IOV = 1024;

/**
 * Writes all of `bufs` at `position`, looping over short writes. Returns the bytes written. With `blocking`, the
 * writes are made on the calling thread (writevSync), which waits for them; otherwise on libuv's thread pool.
 */
export async function writeAllv(
  fh: FileHandle,
  bufs: readonly Buffer[],
  position: number,
  blocking = false,
): Promise<number> {
  let pos = position;
  for (let i = 0; i < bufs.length; i += MAX_IOV) {
    let group = bufs.slice(i, i + MAX_IOV);
    let want = group.reduce((n, b) => n + b.length, 0);
    while (want > 0) {
      const bytesWritten = blocking ? writevSync(fh.fd, group, pos) : await writevCallback(fh.fd, group, pos);
      pos += bytesWritten;
      want -= bytesWritten;
      if (want > 0) group = dropBytes(group, bytesWritten);
    }
  }
  return pos - position;
}

/**
 * fs.writev on the thread pool, as one promise. FileHandle.writev does the same with more machinery per call (a
 * promise from the binding, the handle's reference counting): measurably more garbage on the leader's write path.
 */
function writevCallback(fd: number, bufs: Buffer[], pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    writev(fd, bufs, pos, (err, n) => (err === null ? resolve(n) : reject(err)));
  });
}

function dropBytes(bufs: Buffer[], n: number): Buffer[] {
  let skip = n;
  const out: Buffer[] = [];
  for (const b of bufs) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}

/** Writes all of `data` at `position`, looping over short writes. */
export async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/** Makes a directory's entries (files created, renamed or deleted in it) durable. */
export async function syncDir(path: string, counters: Counters): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
    counters.fsyncs++;
  } finally {
    await fh.close();
  }
}

export async function datasync(fh: FileHandle, counters: Counters): Promise<void> {
  await fh.datasync();
  counters.fsyncs++;
}

export async function listDir(path: string): Promise<string[]> {
  return (await readdir(path)).sort();
}

/** Deletes a file; a file that is already gone is fine. */
export async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (!isCode(err, 'ENOENT')) throw err;
  }
}

export function isCode(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}
