// EngineCore's blockHasher option: XXH64 block hashes instead of SHA-256 change the hash values and
// nothing else the engine does.
import { expect, it } from "vitest";
import { createBlockHasher, EngineCore, rootSeed, type CoreOutput, type SimKvEvent } from "../../src/index.js";

function run(core: EngineCore): { outputs: CoreOutput[]; steps: number } {
  const outputs: CoreOutput[] = [];
  let steps = 0;
  // Prompts of 18 blocks (plus a partial one) sharing their first 6, through a 48-block cache: hits,
  // evictions and preemptions.
  for (let i = 0; i < 10; i++) {
    const prompt = Array.from({ length: 300 }, (_, k) => (k < 96 ? k + 7 : (Math.imul(k + i * 7919, 2654435761) >>> 0) % 150_000));
    core.add({ id: i, promptTokenIds: prompt, sampling: { maxTokens: 40, ignoreEos: true } });
    if (i % 3 === 2) {
      while (core.hasWork && ++steps < 10_000) outputs.push(...core.step().outputs);
    }
  }
  while (core.hasWork && ++steps < 10_000) outputs.push(...core.step().outputs);
  return { outputs, steps };
}

it("changes the block hashes and nothing else", async () => {
  const hasher = await createBlockHasher();
  const sha: SimKvEvent[] = [];
  const xxh: SimKvEvent[] = [];
  const options = { numBlocks: 48, maxModelLen: 512, maxNumBatchedTokens: 256, seed: 3 };
  const a = new EngineCore({ ...options, kvEventSink: (b) => sha.push(...b) });
  const b = new EngineCore({ ...options, blockHasher: hasher, kvEventSink: (e) => xxh.push(...e) });
  const ra = run(a);
  const rb = run(b);
  expect(rb).toEqual(ra);
  const { blocksStored, blocksRemoved, cachedTokens, preemptions } = a.metrics();
  expect(blocksRemoved).toBeGreaterThan(0);
  expect(cachedTokens).toBeGreaterThan(0);
  expect(preemptions).toBeGreaterThan(0);
  expect(b.metrics()).toMatchObject({ blocksStored, blocksRemoved, cachedTokens, preemptions });

  // The same events, hash for hash under a one-to-one renaming, with other values.
  const rename = new Map<bigint, bigint>();
  const same = (x: bigint | null, y: bigint | null) => {
    if (x === null || y === null) return x === y;
    if (!rename.has(x)) rename.set(x, y);
    return rename.get(x) === y;
  };
  expect(xxh).toHaveLength(sha.length);
  sha.forEach((e, i) => {
    const f = xxh[i]!;
    expect(f.type).toBe(e.type);
    if (e.type === "BlockStored" && f.type === "BlockStored") {
      expect(f.tokenIds).toEqual(e.tokenIds);
      expect(same(e.parentBlockHash, f.parentBlockHash)).toBe(true);
    }
    if (e.type !== "AllBlocksCleared" && f.type !== "AllBlocksCleared") e.blockHashes.forEach((h, k) => expect(same(h, f.blockHashes[k]!)).toBe(true));
  });
  expect(new Set(rename.values()).size).toBe(rename.size);
  for (const [x, y] of rename) expect(x).not.toBe(y);
  // Still not the router's hashes: the chain has the engine's own root.
  const first = xxh.find((e) => e.type === "BlockStored" && e.parentBlockHash === null) as Extract<SimKvEvent, { type: "BlockStored" }>;
  const router = hasher.hashBlocks(first.tokenIds, 16, rootSeed({ model: "Qwen/Qwen3-0.6B" }));
  expect(first.blockHashes[0]).not.toBe(router[0]);
});
