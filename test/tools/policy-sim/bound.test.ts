// The hit-ratio bounds (one unbounded shared cache, one LRU cache of the fleet's blocks), against examples worked out by hand.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { createBlockHasher, rootSeed } from "../../../src/router/prepare/hashing/index.js";
import { SharedCacheBound } from "../../../src/tools/policy-sim/bound.js";
import { H100_8B } from "../../../src/tools/policy-sim/engine-settings.js";
import { simulate } from "../../../src/tools/policy-sim/simulate.js";

const scratch = mkdtempSync(join(tmpdir(), "kvroute-bound-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

it("counts the leading blocks an earlier prompt had, never the last token's block", async () => {
  const hasher = await createBlockHasher();
  const bound = new SharedCacheBound(4);
  const add = (tokens: number[]) => bound.add(hasher.hashBlocks(tokens, 4, rootSeed({ model: "m" })), tokens.length);
  // 10 tokens: blocks [1..4] [5..8], nothing seen before.
  expect(add(range(1, 11))).toBe(0);
  // 13 tokens: its first two blocks were seen, its third ([99..102]) was not.
  expect(add([...range(1, 9), 99, 100, 101, 102, 103])).toBe(8);
  // 8 tokens, both blocks seen; the second holds the last token, which is always computed.
  expect(add(range(1, 9))).toBe(4);
  // The same first block with another token in it: nothing shared.
  expect(add([1, 2, 3, 5, 5, 6, 7, 8, 9])).toBe(0);
  expect(bound.result()).toEqual({ blockSize: 4, capacityBlocks: null, promptTokens: 40, cachedTokens: 12, hitRatio: 12 / 40 });
  expect(() => bound.add(new BigUint64Array(3), 8)).toThrow(RangeError);
});

it("with a fleet's capacity, keeps the most recent blocks, a prompt's first block the most recent of its own", async () => {
  const hasher = await createBlockHasher();
  const lru = new SharedCacheBound(4, 3);
  const unbounded = new SharedCacheBound(4);
  const add = (tokens: number[]) => {
    const hashes = hasher.hashBlocks(tokens, 4, rootSeed({ model: "m" }));
    return [lru.add(hashes, tokens.length), unbounded.add(hashes, tokens.length)];
  };
  expect(add(range(1, 9))).toEqual([0, 0]); // a1 a2: cache (oldest first) a2 a1
  expect(add(range(9, 17))).toEqual([0, 0]); // b1 b2: a2 is evicted; a1 b2 b1
  // A again with a ninth token: a1 is still held, a2 is not.
  expect(add([...range(1, 9), 100])).toEqual([4, 8]);
  expect(lru.result()).toMatchObject({ capacityBlocks: 3, cachedTokens: 4, promptTokens: 25 });
  expect(unbounded.result()).toMatchObject({ capacityBlocks: null, cachedTokens: 8 });
});

it("is reported beside the policies, over the prompts the simulation routes", async () => {
  // Hash ids of 16-token blocks, engines with 16-token blocks:
  //   A [1, 2] 32 tokens: nothing seen                         0
  //   B [1, 2, 3] 40 tokens: both full blocks seen             32
  //   C [1, 4] 20 tokens: one full block, seen                 16
  //   D [1, 2] 32 tokens: both seen, the last one not counted  16
  const file = join(scratch, "trace.jsonl");
  const lines = [
    { timestamp: 0, input_length: 32, output_length: 4, hash_ids: [1, 2] },
    { timestamp: 10, input_length: 40, output_length: 4, hash_ids: [1, 2, 3] },
    { timestamp: 20, input_length: 20, output_length: 4, hash_ids: [1, 4] },
    { timestamp: 30, input_length: 32, output_length: 4, hash_ids: [1, 2] },
  ];
  writeFileSync(file, `${lines.map((l) => JSON.stringify(l)).join("\n")}\n`);
  const bound = async (engine: typeof H100_8B, maxRequests?: number) =>
    (await simulate({ file, blockSize: 16 }, { engines: 2, engine, policies: ["kv", "random"], ...(maxRequests ? { maxRequests } : {}) })).bound;
  expect(await bound(H100_8B)).toEqual({ block_size: 16, capacity_blocks: null, prompt_tokens: 124, cached_tokens: 64, hit_ratio: 64 / 124 });
  // Engines with 8-token blocks split each id's block in two: 32 + 16 + 24.
  expect(await bound({ ...H100_8B, blockSize: 8 })).toMatchObject({ block_size: 8, cached_tokens: 72 });
  // Requests the router refuses (B: 40 prompt tokens and 4 to generate over a 36-token context; A just
  // fits) are left out, and maxRequests stops early.
  expect(await bound({ ...H100_8B, maxModelLen: 36 }, 3)).toMatchObject({ prompt_tokens: 52, cached_tokens: 16 });
});
