// The batcher against a simple reference: every task gets its own result, batches respect the slot and size
// limits and the arrival order, and failures reach exactly the tasks they belong to. Batches run on timers
// of random length here; the pool's own test runs them on real threads.
import fc from "fast-check";
import { expect, it } from "vitest";
import { Batcher, type BatchItem } from "../../../src/router/prepare/batcher.js";

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

it("gives every task its own result, within the slot and batch limits, in arrival order", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 3 }),
      fc.integer({ min: 1, max: 8 }),
      // Tasks arrive in groups, one group per event-loop turn.
      fc.array(fc.integer({ min: 0, max: 12 }), { minLength: 1, maxLength: 8 }),
      fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 8 }),
      async (slots, maxBatch, groups, delays) => {
        const batches: number[][] = [];
        let inFlight = 0;
        let maxInFlight = 0;
        const batcher = new Batcher<number, string>({
          slots,
          maxBatch,
          run: async (tasks) => {
            batches.push(tasks);
            maxInFlight = Math.max(maxInFlight, ++inFlight);
            await sleep(delays[batches.length % delays.length]!);
            inFlight--;
            return tasks.map((t) => ({ ok: true as const, value: `result ${t}` }));
          },
        });
        const results: Promise<string>[] = [];
        let next = 0;
        for (const size of groups) {
          for (let i = 0; i < size; i++) results.push(batcher.run(next++));
          await turn();
        }
        const values = await Promise.all(results);
        expect(values).toEqual(Array.from({ length: next }, (_, t) => `result ${t}`));
        expect(maxInFlight).toBeLessThanOrEqual(slots);
        for (const b of batches) expect(b.length).toBeLessThanOrEqual(maxBatch);
        // Every task went exactly once, batches in arrival order.
        expect(batches.flat()).toEqual(Array.from({ length: next }, (_, t) => t));
        expect(batcher.inFlight).toBe(0);
        expect(batcher.waiting).toBe(0);
      },
    ),
    { numRuns: 60 },
  );
});

it("sends what arrives in one turn as one batch, and what arrives while busy as the next", async () => {
  const batches: number[][] = [];
  let release: () => void = () => undefined;
  const batcher = new Batcher<number, number>({
    slots: 1,
    maxBatch: 64,
    run: (tasks) => {
      batches.push(tasks);
      return new Promise<BatchItem<number>[]>((resolve) => (release = () => resolve(tasks.map((t) => ({ ok: true, value: t * 2 })))));
    },
  });
  const first = [1, 2, 3].map((t) => batcher.run(t));
  await turn();
  expect(batches).toEqual([[1, 2, 3]]);
  const second = [4, 5].map((t) => batcher.run(t));
  await turn();
  expect(batches).toEqual([[1, 2, 3]]); // the only slot is busy
  release();
  expect(await Promise.all(first)).toEqual([2, 4, 6]);
  expect(batches).toEqual([[1, 2, 3], [4, 5]]);
  release();
  expect(await Promise.all(second)).toEqual([8, 10]);
});

it("fails only the task whose item failed, and every task of a batch that failed as a whole", async () => {
  let call = 0;
  const batcher = new Batcher<number, number>({
    slots: 1,
    maxBatch: 2,
    run: async (tasks) => {
      call++;
      if (call === 2) throw new Error("the worker died");
      return tasks.map((t) => (t === 1 ? { ok: false as const, error: "bad task 1" } : { ok: true as const, value: t }));
    },
  });
  const settled = await Promise.allSettled([0, 1, 2, 3, 4].map((t) => batcher.run(t)));
  expect(settled.map((s) => (s.status === "fulfilled" ? s.value : (s.reason as Error).message))).toEqual([0, "bad task 1", "the worker died", "the worker died", 4]);
});

it("rejects a batch whose runner throws at once, or answers with too few results, and goes on", async () => {
  let call = 0;
  const batcher = new Batcher<number, number>({
    slots: 1,
    maxBatch: 2,
    run: (tasks) => {
      call++;
      if (call === 1) throw new Error("cannot post");
      if (call === 2) return Promise.resolve([{ ok: true as const, value: tasks[0]! }]);
      return Promise.resolve(tasks.map((t) => ({ ok: true as const, value: t })));
    },
  });
  const settled = await Promise.allSettled([0, 1, 2, 3, 4].map((t) => batcher.run(t)));
  expect(settled.map((s) => (s.status === "fulfilled" ? s.value : (s.reason as Error).message))).toEqual([
    "cannot post",
    "cannot post",
    2,
    "the batch came back with 1 results for 2 tasks",
    4,
  ]);
});

it("refuses limits that are not positive integers", () => {
  const run = () => Promise.resolve([]);
  expect(() => new Batcher({ slots: 0, maxBatch: 1, run })).toThrow(/slots must be a positive integer, got 0/);
  expect(() => new Batcher({ slots: 1, maxBatch: 1.5, run })).toThrow(/maxBatch must be a positive integer, got 1.5/);
});
