// The preparation pool hands the tokenization cache size to its threads and reports what they loaded.
import { afterAll, beforeAll, expect, it } from "vitest";
import { PrefixIndex } from "../../../src/router/kv-index/prefix-index/index.js";
import { rootSeed } from "../../../src/router/prepare/hashing/index.js";
import { PreparePool } from "../../../src/router/prepare/index.js";
import { loadTokenizer } from "../../../src/router/prepare/tokenize/index.js";

let pool: PreparePool;
beforeAll(async () => {
  pool = await PreparePool.start({ tokenizerDir: null, index: PrefixIndex.create({ capacity: 1024, maxEngines: 8 }).shared, threads: 1, tokenizeCacheMb: 2 });
}, 60_000);
afterAll(async () => {
  await pool.close();
});

it("starts threads with the cache size asked for, and says which encoder they use", () => {
  expect(pool.tokenizer.cache).toEqual({ enabled: true, budgetBytes: 2 * 1024 * 1024, reason: null });
  expect(pool.tokenizer.encoder).toEqual({ kind: "byte-level-bpe", note: "Qwen2 scanner" });
});

it("prepares a chat with a repeated system prompt to the ids the tokenizer gives, request after request", async () => {
  const tokenizer = await loadTokenizer(undefined, { cacheBytes: 0 });
  const system = "You answer questions about routing. ".repeat(50);
  for (const question of ["What is a block?", "What is a prefix?", "What is a block?"]) {
    const messages = [
      { role: "system", content: system },
      { role: "user", content: question },
    ];
    const result = await pool.prepare({ kind: "chat", messages, templateKwargs: {} }, 16, rootSeed({ model: "m" }));
    expect(result.ok).toBe(true);
    if (result.ok) expect(Array.from(result.tokens)).toEqual(Array.from(tokenizer.encodeChat(messages)));
  }
}, 30_000);

it("prepares many prompts sent at once, each to its own ids (they leave in batches)", async () => {
  const tokenizer = await loadTokenizer(undefined, { cacheBytes: 0 });
  const seed = rootSeed({ model: "m" });
  const chats = Array.from({ length: 60 }, (_, i) => [
    { role: "system", content: `You answer questions about routing, variant ${i % 3}.` },
    { role: "user", content: `Question ${i}: which engine holds block ${i * 7}?` },
  ]);
  const ids = Array.from({ length: 40 }, (_, i) => Uint32Array.from({ length: 40 + i }, (_, j) => (i * 31 + j) % 1000));
  const chatResults = chats.map((messages) => pool.runInPool({ kind: "chat", messages, templateKwargs: {} }, 16, seed));
  const idResults = ids.map((tokens) => pool.runInPool({ kind: "tokens", tokens: tokens.slice() }, 16, seed));
  const bad = pool.runInPool({ kind: "tokens", tokens: Uint32Array.of(1, 2, 4_000_000_000) }, 16, seed);
  for (const [i, result] of (await Promise.all(chatResults)).entries()) {
    expect(result.ok).toBe(true);
    if (result.ok) expect(Array.from(result.tokens)).toEqual(Array.from(tokenizer.encodeChat(chats[i]!)));
  }
  for (const [i, result] of (await Promise.all(idResults)).entries()) {
    expect(result.ok).toBe(true);
    if (result.ok) {
      expect(Array.from(result.tokens)).toEqual(Array.from(ids[i]!));
      expect(result.blocks).toBe(Math.floor(ids[i]!.length / 16));
    }
  }
  // A bad prompt in the middle of a batch is refused on its own, with the reason.
  expect(await bad).toMatchObject({ ok: false, code: "invalid_token_id", message: expect.stringContaining("position 2") });
}, 30_000);

it("refuses a negative cache size", async () => {
  await expect(PreparePool.start({ tokenizerDir: null, index: PrefixIndex.create({ capacity: 1024, maxEngines: 8 }).shared, threads: 1, tokenizeCacheMb: -1 })).rejects.toThrow(/0 or more MiB/);
});

it("returns each prompt's block hashes in an array of its own, inline and from a thread", async () => {
  const { createBlockHasher } = await import("../../../src/router/prepare/hashing/index.js");
  const hasher = await createBlockHasher();
  const seed = rootSeed({ model: "m" });
  const a = Uint32Array.from({ length: 100 }, (_, i) => i + 1);
  const b = Uint32Array.from({ length: 40 }, (_, i) => 1000 + i);
  const expectedA = hasher.hashBlocks(a, 16, seed).slice();
  const expectedB = hasher.hashBlocks(b, 16, seed).slice();
  const first = pool.runInline({ kind: "tokens", tokens: a.slice() }, 16, seed);
  // A second prompt prepared on the same thread must not overwrite the first one's hashes.
  const second = pool.runInline({ kind: "tokens", tokens: b.slice() }, 16, seed);
  const pooled = await pool.runInPool({ kind: "tokens", tokens: a.slice() }, 16, seed);
  if (!first.ok || !second.ok || !pooled.ok) throw new Error("preparation failed");
  expect(first.hashes).toEqual(expectedA);
  expect(second.hashes).toEqual(expectedB);
  expect(pooled.hashes).toEqual(expectedA);
  expect(first.hashes.length).toBe(first.blocks);
});
