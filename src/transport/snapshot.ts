// The pieces of a snapshot transfer (proto/raft.proto, Raft.InstallSnapshot) that do not need the transport's state:
// the wire encoding of chunks, the sender's re-chunking, and the receiver's checked reading of the incoming call.

import type { Readable } from 'node:stream';
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { crc32 } from '../util/crc32.js';
import { SnapshotChunk, type SnapshotHeader } from './gen/raft.js';

/** The tag of SnapshotChunk.data: field 2, wire type 2 (length-delimited). */
const DATA_TAG = (2 << 3) | 2;

/** The header or trailer of a transfer, encoded as a SnapshotChunk. */
export function encodeControlChunk(part: Exclude<SnapshotChunk['part'], { $case: 'data' }>): Buffer {
  const bytes = SnapshotChunk.encode({ part }).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * `SnapshotChunk { data }`, encoded with one copy of `data` (SnapshotChunk.encode would copy it twice). The copy
 * is made now, so the caller may reuse `data`'s memory as soon as this returns.
 */
export function encodeDataChunk(data: Uint8Array): Buffer {
  const prefix = new BinaryWriter().uint32(DATA_TAG).uint32(data.length).finish();
  const out = Buffer.allocUnsafe(prefix.length + data.length);
  out.set(prefix, 0);
  out.set(data, prefix.length);
  return out;
}

/** The pieces of `source` cut to at most `maxBytes` each (views, not copies). Empty pieces are skipped. */
export async function* rechunk(
  source: AsyncIterable<Uint8Array>,
  maxBytes: number,
): AsyncGenerator<Uint8Array> {
  for await (const piece of source) {
    for (let offset = 0; offset < piece.length; offset += maxBytes) {
      yield piece.subarray(offset, Math.min(piece.length, offset + maxBytes));
    }
  }
}

/**
 * Lowers how many messages an incoming call's readable stream reads ahead of its consumer. grpc-js gives a
 * client-streaming call an object-mode Readable with Node's default high-water mark of 16 objects, so up to 16
 * chunks (16 MiB at the default chunk size) could pile up behind a slow consumer. Below the mark, the call stops
 * asking HTTP/2 for more, the stream's flow-control window closes, and the sender stops: so the receiver holds at
 * most `messages` chunks plus one window. Node keeps the mark as a plain field of the readable state; should that
 * ever change, this does nothing and the bound is 16 chunks.
 */
export function limitReadAhead(stream: Readable, messages: number): void {
  const state: unknown = (stream as { _readableState?: unknown })._readableState;
  if (typeof state !== 'object' || state === null) return;
  const descriptor = Object.getOwnPropertyDescriptor(state, 'highWaterMark');
  if (descriptor?.writable === true && typeof descriptor.value === 'number') {
    (state as { highWaterMark: number }).highWaterMark = Math.min(descriptor.value, messages);
  }
}

/**
 * Pulls the messages of an incoming call one at a time, only when asked, so that the call's backpressure reaches
 * the sender. `fail` makes the pending and all later reads throw (the call was cancelled, the node shuts down).
 */
export class CallReader<T> {
  private failure: Error | null = null;
  private ended = false;
  private waiter: (() => void) | null = null;

  constructor(private readonly stream: Readable) {
    const wake = (): void => this.wake();
    stream.on('readable', wake);
    stream.on('end', () => {
      this.ended = true;
      this.wake();
    });
  }

  /** The next message, or null when the sender half-closed the call. */
  async next(): Promise<T | null> {
    for (;;) {
      if (this.failure !== null) throw this.failure;
      const message = this.stream.read() as T | null;
      if (message !== null) return message;
      if (this.ended) return null;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
  }

  fail(error: Error): void {
    this.failure ??= error;
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }
}

/**
 * The data of one incoming snapshot, after its header: yields the chunks as they arrive, each only when the
 * consumer asks for it, and checks them against the header's size and the trailer's CRC-32 as they go. Anything
 * wrong (more data than announced, a missing or mismatching trailer, a broken call) makes the iteration throw, so
 * that the consumer (Storage.stageSnapshot) fails and discards what it wrote. It can be iterated once.
 */
export class IncomingSnapshot implements AsyncIterable<Uint8Array> {
  /** Data bytes received so far. */
  bytes = 0;
  /** The trailer arrived and everything matched. */
  complete = false;
  /** Why the iteration threw, if it did. */
  failure: Error | null = null;
  private crc = 0;
  private iterated = false;

  constructor(
    private readonly reader: CallReader<SnapshotChunk>,
    private readonly header: SnapshotHeader,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.iterated) {
      const error = new Error(`snapshot from ${this.header.from}: the data can be read only once`);
      return { next: () => Promise.reject(error) };
    }
    this.iterated = true;
    return this.read();
  }

  private async *read(): AsyncGenerator<Uint8Array> {
    const { from, size } = this.header;
    const fail = (reason: string): Error => {
      this.failure = new Error(`snapshot from ${from}: ${reason}`);
      return this.failure;
    };
    for (;;) {
      let message: SnapshotChunk | null;
      try {
        message = await this.reader.next();
      } catch (err) {
        throw fail(`transfer broken after ${this.bytes} of ${size} bytes: ${errorMessage(err)}`);
      }
      if (message === null) throw fail(`stream ended after ${this.bytes} of ${size} bytes without a trailer`);
      const part = message.part;
      switch (part?.$case) {
        case 'data': {
          const data = part.value;
          if (this.bytes + data.length > size) {
            throw fail(`more data than the ${size} bytes announced (${this.bytes + data.length} so far)`);
          }
          this.bytes += data.length;
          this.crc = crc32(data, this.crc);
          if (data.length > 0) yield data;
          break;
        }
        case 'trailer':
          if (this.bytes !== size) throw fail(`trailer after ${this.bytes} of the ${size} bytes announced`);
          if (part.value.crc32 !== this.crc) {
            throw fail(
              `checksum mismatch: trailer says crc32 ${hex(part.value.crc32)}, data has ${hex(this.crc)}`,
            );
          }
          this.complete = true;
          return;
        case 'header':
          throw fail('a second header in one transfer');
        case undefined:
          throw fail('a message of an unknown kind');
      }
    }
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
