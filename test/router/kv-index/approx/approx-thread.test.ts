// Approximate mode in the KV-event thread: predictions cross from the main thread in batches, land in the
// shared index every thread reads, run out at the TTL without anything new arriving, and go with their
// engine. A real worker thread and a real shared index.
import { afterEach, expect, it } from "vitest";
import { KvEventThread } from "../../../../src/router/kv-index/kv-events/index.js";
import { PrefixIndex } from "../../../../src/router/kv-index/prefix-index/index.js";
import { createBlockHasher, rootSeed } from "../../../../src/router/prepare/hashing/index.js";

let thread: KvEventThread | null = null;
afterEach(async () => {
  await thread?.close();
  thread = null;
});

async function until(what: string, probe: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

it("records predictions for engines in approximate mode, forgets them at the TTL and with their engine", async () => {
  thread = await KvEventThread.start({ capacity: 4096, maxEngines: 32, approxTtlMs: 400 });
  const index = PrefixIndex.attach(thread.shared);
  const hasher = await createBlockHasher();
  const hashes = (first: number, tokens: number) => hasher.hashBlocks(Uint32Array.from({ length: tokens }, (_, i) => first + i), 16, rootSeed({ model: "m" })).slice();
  await thread.addApproxEngine(2, 100);
  await thread.addApproxEngine(3, 4);
  const a = hashes(1, 160);
  const b = hashes(5000, 96);
  const start = performance.now();
  // Three predictions in one turn: one batch; one for an engine not in approximate mode is ignored.
  thread.recordApprox(2, a);
  thread.recordApprox(3, b);
  thread.recordApprox(7, b);
  // The caller keeps its array: it is copied into the batch, not taken.
  expect(a.length).toBe(10);
  await until("the predictions in the index", () => index.overlaps(a)[2] === 10 && index.overlaps(b)[3] === 4);
  expect(index.overlaps(b)[7]).toBe(0);
  const stats = await thread.stats();
  expect(stats.approx).toMatchObject({ predictions: 2, evicted: 0, ttlMs: 400 });
  expect(stats.approx.engines).toEqual([
    { engine: 2, blocks: 10, capacity: 100, indexBlocks: 10 },
    { engine: 3, blocks: 4, capacity: 4, indexBlocks: 4 },
  ]);
  // Nothing is predicted again: the thread's own timer forgets them a little after the TTL.
  await until("the predictions expired", () => index.overlaps(a)[2] === 0 && index.overlaps(b)[3] === 0);
  expect(performance.now() - start).toBeGreaterThanOrEqual(400);
  expect((await thread.stats()).approx.expired).toBe(14);
  // Removing the engine drops what was predicted since, and later predictions for it are ignored.
  thread.recordApprox(2, a);
  await until("a predicted again", () => index.overlaps(a)[2] === 10);
  await thread.removeEngine(2);
  expect(index.overlaps(a)[2]).toBe(0);
  thread.recordApprox(2, a);
  await new Promise((r) => setTimeout(r, 50));
  expect(index.overlaps(a)[2]).toBe(0);
});
