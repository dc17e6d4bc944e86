// CRC-32 (IEEE 802.3, the polynomial of zlib, gzip and PNG) for snapshot transfers. Node has zlib.crc32 from
// 20.15 on; package.json allows Node 20.10, so older versions get the table-driven version below, which gives the
// same results (checked by crc32.test.ts).

import * as zlib from 'node:zlib';

/** The CRC-32 of `data`, continuing from `value`, the CRC-32 of the bytes before it (0 to start). */
export type Crc32 = (data: Uint8Array, value?: number) => number;

let table: Uint32Array | null = null;

/** A byte at a time with a 256-entry table (the reflected polynomial 0xEDB88320). */
export const crc32Table: Crc32 = (data, value = 0) => {
  table ??= makeTable();
  let crc = ~value >>> 0;
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
};

function makeTable(): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}

const native = (zlib as { crc32?: Crc32 }).crc32;

export const crc32: Crc32 = typeof native === 'function' ? native : crc32Table;
