// The simulated engine's real KV-event stream into the KV-event thread: after requests that make the engine
// evict, the router's index must say, for every prompt, exactly what the engine's prefix cache holds.
import { afterEach, describe, expect, it } from "vitest";
import {
  createBlockHasher,
  EngineClient,
  KvEventThread,
  PrefixIndex,
  rootSeed,
  startSimulator,
  type EngineEvent,
  type KvEventsLayout,
  type SimulatorHandle,
} from "../../../../src/index.js";
import { hashBlock, rootDigest } from "../../../../src/mock-engine/block-hash.js";

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function run(stream: AsyncIterable<EngineEvent>): Promise<void> {
  for await (const event of stream) void event;
}

/** Leading blocks of `prompt` the simulator caches, by its own (SHA-256) block hashes. */
function enginePrefix(sim: SimulatorHandle, prompt: number[]): number {
  const cached = sim.core.cachedBlockHashes();
  const size = sim.info.blockSize;
  let parent = rootDigest(0, null, null);
  let n = 0;
  for (; (n + 1) * size <= prompt.length; n++) {
    const block = hashBlock(parent, prompt, n * size, size);
    if (!cached.has(block.hash)) break;
    parent = block.digest;
  }
  return n;
}

describe("the simulator's KV events drive the router's index", () => {
  for (const layout of ["array", "map"] as KvEventsLayout[]) {
    it(`${layout} layout: overlaps match the engine's cache after evictions`, async () => {
      const sim = await startSimulator({ numBlocks: 64, maxModelLen: 1024, kvEventsLayout: layout });
      closers.push(() => sim.close());
      const writer = await KvEventThread.start({ capacity: 4096, maxEngines: 4 });
      closers.push(() => writer.close());
      await writer.addEngine({ id: 1, model: sim.info.model, blockSize: sim.info.blockSize, endpoint: sim.kvEventsEndpoint!, replayEndpoint: sim.replayEndpoint! });
      const client = new EngineClient(sim.url);
      closers.push(() => client.close());
      await client.connect();

      // Twelve 300-token prompts through a 64-block cache, each sharing its first 160 tokens with the one
      // before: the engine evicts, and stored blocks have parents the index must resolve.
      const prompts: number[][] = [];
      for (let i = 0; i < 12; i++) {
        const own = Array.from({ length: 300 }, (_, k) => (Math.imul(k + 1 + i * 7919, 2654435761) >>> 0) % 150_000);
        prompts.push(i === 0 ? own : [...prompts[i - 1]!.slice(0, 160), ...own.slice(160)]);
        await run(client.generate({ promptTokenIds: prompts[i]!, sampling: { maxTokens: 8 } }));
      }
      const last = sim.metrics().kvEventBatches - 1;
      const deadline = Date.now() + 10_000;
      let stats = await writer.stats();
      while (stats.engines[0]!.ranks[0]!.lastSequence < last && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        stats = await writer.stats();
      }
      expect(stats.engines[0]!.ranks[0]!.lastSequence).toBe(last);
      expect(stats).toMatchObject({ payloadsRejected: 0, unknownParent: 0, sequenceGaps: 0 });
      expect(stats.eventsBlockRemoved).toBeGreaterThan(0);

      const index = PrefixIndex.attach(writer.shared);
      const hasher = await createBlockHasher();
      const seed = rootSeed({ model: sim.info.model });
      const overlaps = prompts.map((p) => index.overlaps(hasher.hashBlocks(p, sim.info.blockSize, seed))[1]!);
      expect(overlaps).toEqual(prompts.map((p) => enginePrefix(sim, p)));
      // Some prompts are still cached and some were evicted, so the comparison means something.
      expect(Math.max(...overlaps)).toBe(Math.floor(300 / sim.info.blockSize));
      expect(Math.min(...overlaps)).toBeLessThan(Math.floor(300 / sim.info.blockSize));
    });
  }
});
