// The commands of the replicated key-value store and their compact binary form in log entries.
//
//   byte 0      low 4 bits: op — 1 set, 2 delete, 3 get (a read that goes through the log, until ReadIndex exists)
//               high 4 bits: flags, for set and delete only (a get carries none):
//                 0x10 an idempotency key follows       0x20 a prevValue condition follows
//                 0x40 a prevIndex condition follows    0x80 reserved, must be 0
//                 (0x20 and 0x40 exclude each other: a command carries at most one condition)
//   bytes 1..4  key length in bytes, unsigned big-endian
//   then        the key (UTF-8)
//   then, in this order, each only when its flag is set:
//               0x10: u8 idempotency key length (1..128) | the idempotency key (UTF-8)
//               0x20: u32 prevValue length | prevValue (UTF-8)
//               0x40: u64 prevIndex, big-endian, at most 2^53 - 1
//   then        for `set` the value (UTF-8) to the end of the entry; `delete` and `get` end here
//
// A command without condition or idempotency key has flags 0 and is byte for byte the first version of the format,
// so log entries written before conditions existed decode unchanged. Decoding is strict: every string must be
// valid UTF-8 and every length must fit; anything else is a CommandDecodeError.

import { ByteCursor } from './bytes.js';

/**
 * A compare-and-set condition on a set or delete. `prevValue`: the key exists and holds exactly this value.
 * `prevIndex`: the key was last changed by the entry at this index; 0 means the key does not exist.
 */
export type Condition =
  | { readonly prevValue: string; readonly prevIndex?: never }
  | { readonly prevIndex: number; readonly prevValue?: never };

/** Optional parts of a write (set or delete). Undefined is the same as absent; decodeCommand leaves absent out. */
export interface WriteOptions {
  /** Apply only if this holds when the entry applies; otherwise the command changes nothing. */
  readonly condition?: Condition | undefined;
  /**
   * A client-chosen key (1..maxIdempotencyKeyBytes bytes of UTF-8) that makes retries exactly-once (thesis §6.3):
   * the first command applied with it is remembered, and a later one with the same key returns that result.
   */
  readonly idempotencyKey?: string | undefined;
}

export type Command =
  | ({ readonly op: 'set'; readonly key: string; readonly value: string } & WriteOptions)
  | ({ readonly op: 'delete'; readonly key: string } & WriteOptions)
  | { readonly op: 'get'; readonly key: string };

/** The longest idempotency key, in bytes of UTF-8. */
export const maxIdempotencyKeyBytes = 128;

const opCodes = { set: 1, delete: 2, get: 3 } as const;
const opNames: Readonly<Record<number, Command['op']>> = { 1: 'set', 2: 'delete', 3: 'get' };
const opMask = 0x0f;
const flags = { idempotencyKey: 0x10, prevValue: 0x20, prevIndex: 0x40, reserved: 0x80 } as const;
const headerBytes = 5;

/**
 * The log entry for `command`. Throws RangeError for a command no replica may apply: an idempotency key that is
 * empty or longer than `maxIdempotencyKeyBytes`, or a prevIndex that is not a non-negative safe integer. Callers
 * that take these from clients check them first.
 */
export function encodeCommand(command: Command): Uint8Array {
  const key = Buffer.from(command.key, 'utf8');
  const parts: Buffer[] = [];
  let flagBits = 0;
  if (command.op !== 'get') {
    if (command.idempotencyKey !== undefined) {
      flagBits |= flags.idempotencyKey;
      parts.push(encodeIdempotencyKey(command.idempotencyKey));
    }
    if (command.condition !== undefined) {
      const [flag, bytes] = encodeCondition(command.condition);
      flagBits |= flag;
      parts.push(bytes);
    }
    if (command.op === 'set') parts.push(Buffer.from(command.value, 'utf8'));
  }
  const header = Buffer.allocUnsafe(headerBytes);
  header[0] = opCodes[command.op] | flagBits;
  header.writeUInt32BE(key.length, 1);
  return Buffer.concat([header, key, ...parts]);
}

function encodeIdempotencyKey(idempotencyKey: string): Buffer {
  const bytes = Buffer.from(idempotencyKey, 'utf8');
  if (bytes.length < 1 || bytes.length > maxIdempotencyKeyBytes) {
    throw new RangeError(
      `an idempotency key is 1..${maxIdempotencyKeyBytes} bytes of UTF-8, not ${bytes.length} bytes`,
    );
  }
  return Buffer.concat([Buffer.from([bytes.length]), bytes]);
}

function encodeCondition(condition: Condition): [number, Buffer] {
  if (condition.prevValue !== undefined && condition.prevIndex !== undefined) {
    throw new RangeError('a condition is prevValue or prevIndex, not both');
  }
  if (condition.prevValue !== undefined) {
    const value = Buffer.from(condition.prevValue, 'utf8');
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32BE(value.length, 0);
    return [flags.prevValue, Buffer.concat([length, value])];
  }
  const { prevIndex } = condition;
  if (!Number.isSafeInteger(prevIndex) || prevIndex < 0) {
    throw new RangeError(`prevIndex must be a non-negative safe integer, not ${prevIndex}`);
  }
  const out = Buffer.allocUnsafe(8);
  out.writeBigUInt64BE(BigInt(prevIndex), 0);
  return [flags.prevIndex, out];
}

export class CommandDecodeError extends Error {}

const cursorErrors = {
  short: (what: string) => new CommandDecodeError(`${what} overruns the command`),
  invalid: (message: string) => new CommandDecodeError(message),
};

/** The command in a log entry; throws CommandDecodeError (and nothing else) for malformed input. */
export function decodeCommand(data: Uint8Array): Command {
  if (data.length < headerBytes) throw new CommandDecodeError(`command of ${data.length} bytes is too short`);
  const buf = Buffer.from(data.buffer, data.byteOffset, data.length);
  const first = buf.readUInt8(0);
  const opCode = first & opMask;
  const flagBits = first & ~opMask;
  const op = opNames[opCode];
  if (op === undefined) throw new CommandDecodeError(`unknown op ${opCode}`);
  checkFlags(op, flagBits);
  const cursor = new ByteCursor(buf, cursorErrors);
  cursor.u8('op');
  const key = cursor.utf8(cursor.u32('key length'), 'key');
  if (op === 'get') {
    checkEnd(cursor);
    return { op, key };
  }
  const options = decodeWriteOptions(cursor, flagBits);
  if (op === 'delete') {
    checkEnd(cursor);
    return { op, key, ...options };
  }
  return { op, key, value: cursor.utf8(cursor.remaining(), 'value'), ...options };
}

function checkFlags(op: 'set' | 'delete' | 'get', flagBits: number): void {
  if ((flagBits & flags.reserved) !== 0) throw new CommandDecodeError('reserved flag 0x80 is set');
  if (op === 'get' && flagBits !== 0) {
    throw new CommandDecodeError('a get carries no condition or idempotency key');
  }
  if ((flagBits & flags.prevValue) !== 0 && (flagBits & flags.prevIndex) !== 0) {
    throw new CommandDecodeError('a command carries at most one condition');
  }
}

function decodeWriteOptions(cursor: ByteCursor, flagBits: number): WriteOptions {
  let idempotencyKey: string | undefined;
  if ((flagBits & flags.idempotencyKey) !== 0) {
    const length = cursor.u8('idempotency key length');
    if (length < 1 || length > maxIdempotencyKeyBytes) {
      throw new CommandDecodeError(
        `idempotency key of ${length} bytes; it must be 1..${maxIdempotencyKeyBytes}`,
      );
    }
    idempotencyKey = cursor.utf8(length, 'idempotency key');
  }
  let condition: Condition | undefined;
  if ((flagBits & flags.prevValue) !== 0) {
    condition = { prevValue: cursor.utf8(cursor.u32('prevValue length'), 'prevValue') };
  } else if ((flagBits & flags.prevIndex) !== 0) {
    condition = { prevIndex: cursor.u64('prevIndex') };
  }
  // Absent options are left out rather than set to undefined (exactOptionalPropertyTypes).
  return {
    ...(condition === undefined ? {} : { condition }),
    ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
  };
}

function checkEnd(cursor: ByteCursor): void {
  const extra = cursor.remaining();
  if (extra !== 0) throw new CommandDecodeError(`${extra} unexpected bytes after the command`);
}
