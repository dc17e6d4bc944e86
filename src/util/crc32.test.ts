import { randomBytes } from 'node:crypto';
import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32, crc32IsNative, crc32Portable } from './crc32.js';

describe('crc32', () => {
  it('gives the standard check value for "123456789"', () => {
    const check = new TextEncoder().encode('123456789');
    expect(crc32(check)).toBe(0xcbf43926);
    expect(crc32Portable(check)).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  it('the portable version agrees with the one in use, whole and in pieces', () => {
    for (const size of [1, 7, 64, 1000, 65537]) {
      const data = randomBytes(size);
      const whole = crc32(data);
      expect(crc32Portable(data)).toBe(whole);
      const cut = Math.floor(size / 3);
      expect(crc32(data.subarray(cut), crc32(data.subarray(0, cut)))).toBe(whole);
      expect(crc32Portable(data.subarray(cut), crc32Portable(data.subarray(0, cut)))).toBe(whole);
    }
  });

  it('the portable version of an empty input is 0, and 100 kB split anywhere matches', () => {
    expect(crc32Portable(new Uint8Array(0))).toBe(0);
    const data = new Uint8Array(100_000).map((_, i) => (i * 2654435761) >>> 24);
    const whole = crc32Portable(data);
    expect(crc32Portable(data.subarray(40_000), crc32Portable(data.subarray(0, 40_000)))).toBe(whole);
    expect(crc32(data)).toBe(whole);
  });

  it('uses the native zlib.crc32 where Node has one', () => {
    expect(crc32IsNative).toBe(typeof (zlib as { crc32?: unknown }).crc32 === 'function');
  });
});
