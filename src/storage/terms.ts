/**
 * The term of every stored entry after the snapshot, kept as runs (one per term change) so that it costs memory per
 * term, not per entry. FileStorage keeps this instead of the entries themselves: it is enough to check a save
 * (`last`) and to apply §7's rule when a snapshot is installed (`termAt`).
 */
export class TermRuns {
  /** Runs in index order: entries `runs[i].start ..` (up to the next run's start - 1, or `last`) have `runs[i].term`. */
  #runs: { start: number; term: number }[] = [];
  /** The snapshot's index and term: nothing at or below `floor` is kept. Invariant: floor <= last. */
  #floor = 0;
  #floorTerm = 0;
  #last = 0;

  /** The index of the last entry, or the floor when there is none after it. */
  get last(): number {
    return this.#last;
  }

  get floor(): number {
    return this.#floor;
  }

  /** No entries after `index`, whose term is `term` (a snapshot covering the whole log, or a fresh log at 0/0). */
  reset(index: number, term: number): void {
    this.#runs = [];
    this.#floor = index;
    this.#floorTerm = term;
    this.#last = index;
  }

  append(index: number, term: number): void {
    if (index !== this.#last + 1) throw new Error(`term runs: append ${index} after ${this.#last}`);
    if (this.#runs.at(-1)?.term !== term) this.#runs.push({ start: index, term });
    this.#last = index;
  }

  /** Forgets the entries at and after `from`. */
  truncate(from: number): void {
    if (from <= this.#floor) throw new Error(`term runs: truncate at ${from} below the floor ${this.#floor}`);
    while ((this.#runs.at(-1)?.start ?? 0) >= from) this.#runs.pop();
    this.#last = Math.min(this.#last, from - 1);
  }

  /** Forgets the entries up to `index` (covered by a snapshot whose last entry is the one at `index`). */
  dropThrough(index: number): void {
    const term = this.termAt(index);
    if (term === undefined) throw new Error(`term runs: no entry at ${index} to drop through`);
    while (this.#runs.length > 1 && (this.#runs[1]?.start ?? Infinity) <= index + 1) this.#runs.shift();
    const first = this.#runs[0];
    if (first !== undefined && first.start <= index) {
      if (index === this.#last) this.#runs.shift();
      else first.start = index + 1;
    }
    this.#floor = index;
    this.#floorTerm = term;
  }

  /** The term at `index`, or undefined when it is neither stored nor the floor. */
  termAt(index: number): number | undefined {
    if (index === this.#floor) return this.#floorTerm;
    if (index < this.#floor || index > this.#last) return undefined;
    let lo = 0;
    let hi = this.#runs.length - 1;
    // Find the last run that starts at or before `index`.
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((this.#runs[mid]?.start ?? Infinity) <= index) lo = mid;
      else hi = mid - 1;
    }
    return this.#runs[lo]?.term;
  }
}
