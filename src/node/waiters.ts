// Requests waiting for something the node will see happen: an index applied, a leader known. Each waits at most
// its own deadline; the lists are bounded by the node's request limits.

import { TimeoutError } from './errors.js';

interface Waiter<T> {
  readonly resolve: (value: T) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** Waiters keyed by a number, settled by `settle(key, …)` or their timeout. */
export class WaiterMap<T> {
  readonly #waiters = new Map<number, Waiter<T>>();

  get size(): number {
    return this.#waiters.size;
  }

  wait(key: number, timeoutMs: number, timeoutMessage: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(key);
        reject(new TimeoutError(timeoutMessage));
      }, timeoutMs);
      this.#waiters.set(key, { resolve, reject, timer });
    });
  }

  resolve(key: number, value: T): void {
    const w = this.#take(key);
    w?.resolve(value);
  }

  reject(key: number, error: Error): void {
    this.#take(key)?.reject(error);
  }

  rejectAll(error: Error): void {
    for (const key of [...this.#waiters.keys()]) this.reject(key, error);
  }

  #take(key: number): Waiter<T> | undefined {
    const w = this.#waiters.get(key);
    if (w === undefined) return undefined;
    this.#waiters.delete(key);
    clearTimeout(w.timer);
    return w;
  }
}

/** Waiters for a number (an applied index) to reach a threshold. */
interface Threshold {
  readonly at: number;
  readonly w: Waiter<void>;
}

export class ThresholdWaiters {
  #waiters: Threshold[] = [];

  get size(): number {
    return this.#waiters.length;
  }

  wait(at: number, current: number, timeoutMs: number, timeoutMessage: string): Promise<void> {
    if (current >= at) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const entry: Threshold = {
        at,
        w: {
          resolve,
          reject,
          timer: setTimeout(() => {
            this.#waiters = this.#waiters.filter((x) => x !== entry);
            reject(new TimeoutError(timeoutMessage));
          }, timeoutMs),
        },
      };
      this.#waiters.push(entry);
    });
  }

  /** Resolves every waiter whose threshold `current` has reached. */
  reached(current: number): void {
    if (this.#waiters.length === 0) return;
    const still: Threshold[] = [];
    for (const entry of this.#waiters) {
      if (entry.at <= current) {
        clearTimeout(entry.w.timer);
        entry.w.resolve();
      } else {
        still.push(entry);
      }
    }
    this.#waiters = still;
  }

  rejectAll(error: Error): void {
    for (const { w } of this.#waiters) {
      clearTimeout(w.timer);
      w.reject(error);
    }
    this.#waiters = [];
  }
}
