// Hands tasks to a worker pool in batches: one message each way per batch instead of per task. A task
// costs the main thread a structured clone and its share of a batch's hand-off; the hand-off itself (a
// pool task, two thread wake-ups) is what dominates a short task, and a batch pays it once.
//
// Invariants:
// - At most `slots` batches are in flight; each holds at most `maxBatch` tasks, in arrival order.
// - Tasks that arrive while every slot is busy wait, and leave together when a slot frees. Tasks that
//   arrive while a slot is free leave at the end of the current event-loop turn (setImmediate), with
//   whatever else arrived in that turn.
// - Every task's promise settles exactly once: with its own result, with its own error, or with the
//   batch's error when the whole batch failed.

/** One task's outcome inside a batch: its result, or why it failed (the others are unaffected). */
export type BatchItem<R> = { ok: true; value: R } | { ok: false; error: string };

export interface BatcherOptions<T, R> {
  /** Batches in flight at once (the pool's threads). */
  slots: number;
  /** Most tasks in one batch. */
  maxBatch: number;
  /** Runs one batch; its results are in the order of its tasks. */
  run(tasks: T[], transferList: ArrayBuffer[]): Promise<BatchItem<R>[]>;
}

interface Waiting<T, R> {
  task: T;
  transfer: ArrayBuffer[];
  resolve(result: R): void;
  reject(error: Error): void;
}

export class Batcher<T, R> {
  readonly #o: BatcherOptions<T, R>;
  #queue: Waiting<T, R>[] = [];
  #inFlight = 0;
  #scheduled = false;

  constructor(options: BatcherOptions<T, R>) {
    if (!(Number.isInteger(options.slots) && options.slots >= 1)) throw new RangeError(`slots must be a positive integer, got ${options.slots}`);
    if (!(Number.isInteger(options.maxBatch) && options.maxBatch >= 1)) throw new RangeError(`maxBatch must be a positive integer, got ${options.maxBatch}`);
    this.#o = options;
  }

  /** Batches in flight now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Tasks waiting for a batch. */
  get waiting(): number {
    return this.#queue.length;
  }

  run(task: T, transfer: ArrayBuffer[] = []): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ task, transfer, resolve, reject });
      if (!this.#scheduled && this.#inFlight < this.#o.slots) {
        this.#scheduled = true;
        setImmediate(this.#dispatch);
      }
    });
  }

  readonly #dispatch = (): void => {
    this.#scheduled = false;
    while (this.#inFlight < this.#o.slots && this.#queue.length > 0) {
      // Spread what waits over the free slots, so that several threads share a burst.
      const free = this.#o.slots - this.#inFlight;
      const size = Math.min(this.#o.maxBatch, Math.ceil(this.#queue.length / free));
      this.#send(this.#queue.splice(0, size));
    }
  };

  #send(batch: Waiting<T, R>[]): void {
    this.#inFlight++;
    const tasks = batch.map((w) => w.task);
    const transfer = batch.flatMap((w) => w.transfer);
    let settled: Promise<BatchItem<R>[]>;
    try {
      settled = this.#o.run(tasks, transfer);
    } catch (err) {
      settled = Promise.reject(err);
    }
    settled.then(
      (items) => {
        for (let i = 0; i < batch.length; i++) {
          const item = items[i];
          if (item === undefined) batch[i]!.reject(new Error(`the batch came back with ${items.length} results for ${batch.length} tasks`));
          else if (item.ok) batch[i]!.resolve(item.value);
          else batch[i]!.reject(new Error(item.error));
        }
        this.#done();
      },
      (err: unknown) => {
        const error = err instanceof Error ? err : new Error(String(err));
        for (const w of batch) w.reject(error);
        this.#done();
      },
    );
  }

  #done(): void {
    this.#inFlight--;
    // What arrived while every slot was busy leaves now, together.
    this.#dispatch();
  }
}
