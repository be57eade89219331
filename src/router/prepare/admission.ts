// Admission of preparation tasks into the pool's threads, in two lanes.
//
// Each pool thread runs several tasks at once, switching between them at slice boundaries (preparer.ts), so
// a small task never waits behind a whole big one; but if big tasks could fill every place, a small one
// would wait for a big one to end. So big tasks get at most `bigCapacity` of the `capacity` places, and a
// free place goes to the oldest waiting small task first.
//
// Invariants: at most `capacity` tasks are admitted at once, at most `bigCapacity` of them big; a waiter
// whose signal aborts leaves the queue at once (nothing of it stays referenced here), and is told so.

import type { AbortSignalLike } from "../../util/abort.js";

interface Waiter {
  big: boolean;
  admit: (admitted: boolean) => void;
}

export class Admission {
  readonly #small: Waiter[] = [];
  readonly #big: Waiter[] = [];
  #running = 0;
  #bigRunning = 0;

  constructor(
    readonly capacity: number,
    readonly bigCapacity: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    if (!Number.isInteger(bigCapacity) || bigCapacity < 1 || bigCapacity > capacity) {
      throw new RangeError(`bigCapacity must be an integer from 1 to capacity (${capacity}), got ${bigCapacity}`);
    }
  }

  /** Tasks admitted and not yet released, and how many of them are big. */
  get running(): { all: number; big: number } {
    return { all: this.#running, big: this.#bigRunning };
  }

  /** Tasks waiting for a place. */
  get waiting(): number {
    return this.#small.length + this.#big.length;
  }

  /**
   * Resolves true once the task may run (it must then call `release`), or false when `signal` aborted
   * first. Admits at once when a place is free and no task of the same lane waits.
   */
  enter(big: boolean, signal?: AbortSignalLike): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false);
    if (this.#canAdmit(big) && (big ? this.#big.length === 0 && this.#small.length === 0 : this.#small.length === 0)) {
      this.#take(big);
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const queue = big ? this.#big : this.#small;
      const onAbort = () => {
        const i = queue.indexOf(waiter);
        if (i >= 0) queue.splice(i, 1);
        resolve(false);
      };
      const waiter: Waiter = {
        big,
        admit: (admitted) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(admitted);
        },
      };
      queue.push(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** A task admitted by `enter` has ended. */
  release(big: boolean): void {
    this.#running--;
    if (big) this.#bigRunning--;
    this.#pump();
  }

  #canAdmit(big: boolean): boolean {
    return this.#running < this.capacity && (!big || this.#bigRunning < this.bigCapacity);
  }

  #take(big: boolean): void {
    this.#running++;
    if (big) this.#bigRunning++;
  }

  #pump(): void {
    for (;;) {
      const next = this.#small.length > 0 && this.#canAdmit(false) ? this.#small.shift() : this.#big.length > 0 && this.#canAdmit(true) ? this.#big.shift() : undefined;
      if (next === undefined) return;
      this.#take(next.big);
      next.admit(true);
    }
  }
}
