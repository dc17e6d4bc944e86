import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32, crc32Table } from './crc32.js';

describe('crc32', () => {
  const text = new TextEncoder().encode('123456789');

  it('gives the standard check value (CRC-32/ISO-HDLC of "123456789" is 0xCBF43926)', () => {
    expect(crc32Table(text)).toBe(0xcbf43926);
    expect(crc32(text)).toBe(0xcbf43926);
    expect(crc32Table(new Uint8Array(0))).toBe(0);
  });

  it('continues from a previous value, and the table version matches zlib', () => {
    const data = new Uint8Array(100_000).map((_, i) => (i * 2654435761) >>> 24);
    const whole = crc32Table(data);
    expect(crc32Table(data.subarray(40_000), crc32Table(data.subarray(0, 40_000)))).toBe(whole);
    expect(crc32(data)).toBe(whole);
    if (typeof (zlib as { crc32?: unknown }).crc32 === 'function') {
      expect(crc32).toBe((zlib as unknown as { crc32: unknown }).crc32); // the native one where there is one
    }
  });
});
