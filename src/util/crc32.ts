// CRC-32 (IEEE 802.3, the one zlib, gzip and PNG use) for WAL records, snapshot files and snapshot transfers.
// Node has `zlib.crc32` from v20.15 / v22.2; the package allows Node >= 20.10, so a table-driven version stands in
// when the native one is missing. Both give identical results (crc.test.ts checks them against each other).

import * as zlib from 'node:zlib';

type Crc32 = (data: Uint8Array, value?: number) => number;

const TABLE: Uint32Array = makeTable();

function makeTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

/** The portable CRC-32: continues from `value` (the CRC of the bytes before `data`), 0 to start. */
export function crc32Portable(data: Uint8Array, value = 0): number {
  let c = ~value >>> 0;
  for (let i = 0; i < data.length; i++) {
    // Both lookups are in range: the index is masked to a byte.
    c = (TABLE[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  }
  return ~c >>> 0;
}

const native = (zlib as Partial<{ crc32: Crc32 }>).crc32;

/** CRC-32 of `data`, continuing from `value` (0 to start): `crc32(b, crc32(a)) === crc32(a ++ b)`. */
export const crc32: Crc32 =
  typeof native === 'function' ? (data, value = 0) => native(data, value) : crc32Portable;

/** Whether `crc32` is Node's native implementation (for tests and diagnostics). */
export const crc32IsNative: boolean = typeof native === 'function';
