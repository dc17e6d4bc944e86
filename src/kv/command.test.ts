import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CommandDecodeError,
  decodeCommand,
  encodeCommand,
  maxIdempotencyKeyBytes,
  type Command,
  type Condition,
} from './command.js';

const text = fc.string({ unit: 'binary', maxLength: 20 });
const condition = fc.oneof(
  fc.record({ prevValue: text }),
  fc.record({ prevIndex: fc.oneof(fc.nat({ max: 20 }), fc.constant(Number.MAX_SAFE_INTEGER)) }),
);
const idempotencyKey = fc
  .string({ unit: 'binary', minLength: 1, maxLength: 40 })
  .filter((s) => Buffer.byteLength(s) <= maxIdempotencyKeyBytes);

/** Commands as clients make them: strings without lone surrogates (those cannot be UTF-8). */
const command: fc.Arbitrary<Command> = fc.oneof(
  fc
    .tuple(
      text,
      text,
      fc.option(condition, { nil: undefined }),
      fc.option(idempotencyKey, { nil: undefined }),
    )
    .map(([key, value, c, k]) => ({ op: 'set' as const, key, value, ...withOptions(c, k) })),
  fc
    .tuple(text, fc.option(condition, { nil: undefined }), fc.option(idempotencyKey, { nil: undefined }))
    .map(([key, c, k]) => ({ op: 'delete' as const, key, ...withOptions(c, k) })),
  fc.record({ op: fc.constant('get' as const), key: text }),
);

function withOptions(condition: Condition | undefined, idempotencyKey: string | undefined) {
  return {
    ...(condition === undefined ? {} : { condition }),
    ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
  };
}

function bytes(...parts: (number[] | string)[]): Uint8Array {
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));
}

/** Decodes, and requires that a failure is a CommandDecodeError matching `message`. */
function rejects(data: Uint8Array, message: RegExp): void {
  let thrown: unknown;
  try {
    decodeCommand(data);
  } catch (e) {
    thrown = e;
  }
  expect(thrown).toBeInstanceOf(CommandDecodeError);
  expect((thrown as Error).message).toMatch(message);
}

describe('command encoding', () => {
  it('round-trips every command, with and without condition and idempotency key', () => {
    fc.assert(
      fc.property(command, (c) => {
        expect(decodeCommand(encodeCommand(c))).toEqual(c);
      }),
    );
  });

  it('writes a command without condition or idempotency key exactly as the first format did', () => {
    expect(Buffer.from(encodeCommand({ op: 'set', key: 'a', value: '1' }))).toEqual(
      Buffer.from(bytes([1, 0, 0, 0, 1], 'a1')),
    );
    expect(Buffer.from(encodeCommand({ op: 'delete', key: 'ab' }))).toEqual(
      Buffer.from(bytes([2, 0, 0, 0, 2], 'ab')),
    );
    expect(Buffer.from(encodeCommand({ op: 'get', key: '' }))).toEqual(Buffer.from(bytes([3, 0, 0, 0, 0])));
  });

  it('lays out the flags, then the idempotency key, the condition and the value', () => {
    const set = encodeCommand({
      op: 'set',
      key: 'k',
      value: 'v',
      condition: { prevValue: 'p' },
      idempotencyKey: 'id',
    });
    expect(Buffer.from(set)).toEqual(
      Buffer.from(bytes([0x31, 0, 0, 0, 1], 'k', [2], 'id', [0, 0, 0, 1], 'p', 'v')),
    );
    const del = encodeCommand({ op: 'delete', key: 'k', condition: { prevIndex: 258 } });
    expect(Buffer.from(del)).toEqual(Buffer.from(bytes([0x42, 0, 0, 0, 1], 'k', [0, 0, 0, 0, 0, 0, 1, 2])));
  });

  it('refuses to encode an idempotency key or a prevIndex no replica could accept', () => {
    const set = { op: 'set', key: 'k', value: 'v' } as const;
    expect(() => encodeCommand({ ...set, idempotencyKey: '' })).toThrow(RangeError);
    expect(() => encodeCommand({ ...set, idempotencyKey: 'x'.repeat(129) })).toThrow(RangeError);
    expect(() => encodeCommand({ ...set, idempotencyKey: 'é'.repeat(65) })).toThrow(/130 bytes/);
    expect(encodeCommand({ ...set, idempotencyKey: 'x'.repeat(128) }).length).toBe(5 + 1 + 1 + 128 + 1);
    expect(() => encodeCommand({ ...set, condition: { prevIndex: -1 } })).toThrow(RangeError);
    expect(() => encodeCommand({ ...set, condition: { prevIndex: 1.5 } })).toThrow(RangeError);
    expect(() => encodeCommand({ ...set, condition: { prevIndex: 2 ** 53 } })).toThrow(RangeError);
    const both = { prevValue: 'a', prevIndex: 1 } as unknown as Condition;
    expect(() => encodeCommand({ ...set, condition: both })).toThrow(/not both/);
  });
});

describe('command decoding is strict', () => {
  it('rejects truncated and unknown commands', () => {
    rejects(new Uint8Array([1, 0]), /too short/);
    rejects(new Uint8Array([1, 0, 0, 0, 9, 65]), /key overruns/);
    rejects(new Uint8Array([9, 0, 0, 0, 0]), /unknown op 9/);
    rejects(new Uint8Array([0x10, 0, 0, 0, 0]), /unknown op 0/);
  });

  it('rejects flags it does not know or that do not go together', () => {
    rejects(bytes([0x81, 0, 0, 0, 0]), /reserved/);
    rejects(bytes([0x13, 0, 0, 0, 0, 1], 'i'), /get carries no/);
    rejects(bytes([0x43, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), /get carries no/);
    rejects(bytes([0x61, 0, 0, 0, 0, 0, 0, 0, 0]), /at most one condition/);
  });

  it('rejects an idempotency key that is empty, too long or cut short', () => {
    rejects(bytes([0x11, 0, 0, 0, 1], 'k'), /idempotency key length overruns/);
    rejects(bytes([0x11, 0, 0, 0, 1], 'k', [0], 'v'), /idempotency key of 0 bytes/);
    rejects(bytes([0x12, 0, 0, 0, 1], 'k', [129], 'x'.repeat(129)), /idempotency key of 129 bytes/);
    rejects(bytes([0x12, 0, 0, 0, 1], 'k', [3], 'ab'), /idempotency key overruns/);
  });

  it('rejects a condition that is cut short or out of range', () => {
    rejects(bytes([0x22, 0, 0, 0, 1], 'k', [0, 0]), /prevValue length overruns/);
    rejects(bytes([0x22, 0, 0, 0, 1], 'k', [0, 0, 0, 3], 'ab'), /prevValue overruns/);
    rejects(bytes([0x42, 0, 0, 0, 1], 'k', [0, 0, 0, 0, 0, 0, 1]), /prevIndex overruns/);
    rejects(
      bytes([0x42, 0, 0, 0, 1], 'k', [0, 0x20, 0, 0, 0, 0, 0, 0]),
      /prevIndex 9007199254740992 is too large/,
    );
    rejects(bytes([0x42, 0, 0, 0, 1], 'k', [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), /too large/);
    expect(
      decodeCommand(bytes([0x42, 0, 0, 0, 1], 'k', [0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])),
    ).toEqual({
      op: 'delete',
      key: 'k',
      condition: { prevIndex: Number.MAX_SAFE_INTEGER },
    });
  });

  it('rejects bytes after a delete or a get', () => {
    rejects(bytes([2, 0, 0, 0, 1], 'kx'), /1 unexpected bytes/);
    rejects(bytes([3, 0, 0, 0, 1], 'k', [0]), /1 unexpected bytes/);
    rejects(bytes([0x42, 0, 0, 0, 1], 'k', [0, 0, 0, 0, 0, 0, 0, 1, 7]), /1 unexpected bytes/);
  });

  it('rejects malformed UTF-8 in every string', () => {
    const bad = [0xc3]; // the first byte of a two-byte sequence, alone
    rejects(bytes([1, 0, 0, 0, 1], bad, 'v'), /key is not valid UTF-8/);
    rejects(bytes([1, 0, 0, 0, 1], 'k', bad), /value is not valid UTF-8/);
    rejects(bytes([0x12, 0, 0, 0, 1], 'k', [1], bad), /idempotency key is not valid UTF-8/);
    rejects(bytes([0x22, 0, 0, 0, 1], 'k', [0, 0, 0, 1], bad), /prevValue is not valid UTF-8/);
  });

  it('keeps a leading byte order mark, as it was written', () => {
    const c: Command = { op: 'set', key: '\ufeffk', value: '\ufeffv', idempotencyKey: '\ufeff' };
    expect(decodeCommand(encodeCommand(c))).toEqual(c);
  });

  it('throws nothing but CommandDecodeError on any input, and accepts only what it would write itself', () => {
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 40 }),
      // Valid commands, cut short or with one byte changed: near misses find more paths than noise.
      fc.tuple(command, fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 })).map(([c, cut, at, byte]) => {
        const b = Buffer.from(encodeCommand(c)).subarray(0, 5 + (cut % 60));
        if (b.length > 0) b[at % b.length] = byte;
        return b;
      }),
    );
    fc.assert(
      fc.property(input, (data) => {
        let decoded: Command;
        try {
          decoded = decodeCommand(data);
        } catch (e) {
          expect(e).toBeInstanceOf(CommandDecodeError);
          return;
        }
        expect(Buffer.from(encodeCommand(decoded))).toEqual(Buffer.from(data));
      }),
      { numRuns: 2000 },
    );
  });
});
