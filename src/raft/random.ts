/**
 * The core's only source of randomness (randomized election timeouts, §5.2). It is passed in, so a simulator
 * that seeds it replays a run exactly; the runtime seeds it from the operating system.
 */
export interface Random {
  /** A uniformly distributed integer in [min, max). */
  int(min: number, max: number): number;
}

/**
 * A small, fast, seedable generator (the "sfc32" construction: a 128-bit state of four 32-bit words).
 * Good enough for timeouts and simulation schedules; not for cryptography.
 */
export class SeededRandom implements Random {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = seed >>> 0;
    // Mix the seed in so that nearby seeds give unrelated sequences.
    for (let i = 0; i < 16; i++) this.next();
  }

  /** A uniformly distributed 32-bit unsigned integer. */
  next(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /** A float in [0, 1). */
  float(): number {
    return this.next() / 0x1_0000_0000;
  }

  int(min: number, max: number): number {
    if (!(max > min)) throw new Error(`random.int: empty range [${min}, ${max})`);
    return min + Math.floor(this.float() * (max - min));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[this.int(0, items.length)];
    if (item === undefined) throw new Error('random.pick: empty list');
    return item;
  }
}
