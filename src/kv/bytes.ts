// Bounds-checked reading of the KV module's binary formats (log commands and snapshots). Internal to src/kv.
//
// Every read checks the bounds first, so a malformed input never reads past its end; what happens then is the
// caller's choice (a command is rejected, a snapshot waits for its next chunk).

// `fatal` rejects malformed UTF-8 instead of replacing it; `ignoreBOM` keeps a leading U+FEFF as part of the
// string, as Buffer.from(string) wrote it.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const maxSafeInteger = BigInt(Number.MAX_SAFE_INTEGER);

export interface ReaderErrors {
  /** The input ends before `what`. */
  readonly short: (what: string) => Error;
  /** `what` is present but not acceptable (bad UTF-8, an index out of range...). */
  readonly invalid: (message: string) => Error;
}

export class ByteCursor {
  readonly #buf: Buffer;
  readonly #errors: ReaderErrors;
  #at = 0;

  constructor(buf: Buffer, errors: ReaderErrors) {
    this.#buf = buf;
    this.#errors = errors;
  }

  /** Bytes read so far. */
  get offset(): number {
    return this.#at;
  }

  remaining(): number {
    return this.#buf.length - this.#at;
  }

  u8(what: string): number {
    this.#need(1, what);
    const v = this.#buf.readUInt8(this.#at);
    this.#at += 1;
    return v;
  }

  u32(what: string): number {
    this.#need(4, what);
    const v = this.#buf.readUInt32BE(this.#at);
    this.#at += 4;
    return v;
  }

  /** An unsigned 64-bit integer that must fit a JavaScript number exactly (at most 2^53 - 1). */
  u64(what: string): number {
    this.#need(8, what);
    const v = this.#buf.readBigUInt64BE(this.#at);
    this.#at += 8;
    if (v > maxSafeInteger) throw this.#errors.invalid(`${what} ${v} is too large`);
    return Number(v);
  }

  /** A log index stored as a float64: must be a safe integer within [min, max]. */
  index(what: string, min: number, max: number): number {
    this.#need(8, what);
    const v = this.#buf.readDoubleBE(this.#at);
    this.#at += 8;
    if (!Number.isSafeInteger(v) || v < min || v > max) {
      throw this.#errors.invalid(`${what} ${v} is not an index in ${min}..${max}`);
    }
    return v;
  }

  /** `n` bytes of strict UTF-8. */
  utf8(n: number, what: string): string {
    this.#need(n, what);
    const bytes = this.#buf.subarray(this.#at, this.#at + n);
    this.#at += n;
    try {
      return utf8.decode(bytes);
    } catch {
      throw this.#errors.invalid(`${what} is not valid UTF-8`);
    }
  }

  #need(n: number, what: string): void {
    if (this.#at + n > this.#buf.length) throw this.#errors.short(what);
  }
}
