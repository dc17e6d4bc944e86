import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { crc32, crc32Portable } from './crc.js';

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
});
