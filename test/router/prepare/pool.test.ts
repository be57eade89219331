// The preparation pool: real worker threads running the real tokenizer. It hands the tokenization cache
// size to its threads, stops tokenizing at the context length, keeps small prompts moving while big ones
// are tokenized, and drops the work of clients that left.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrefixIndex } from "../../../src/router/kv-index/prefix-index/index.js";
import { rootSeed } from "../../../src/router/prepare/hashing/index.js";
import { PreparePool, type PrepareResult } from "../../../src/router/prepare/index.js";
import { loadTokenizer } from "../../../src/router/prepare/tokenize/index.js";

const seed = rootSeed({ model: "m" });
/** A context no prompt here reaches: everything is tokenized in full. */
const UNLIMITED = { maxModelLen: 1 << 30 };

let pool: PreparePool;
beforeAll(async () => {
  pool = await PreparePool.start({ tokenizerDir: null, index: PrefixIndex.create({ capacity: 1024, maxEngines: 8 }).shared, threads: 1, tokenizeCacheMb: 2 });
}, 60_000);
afterAll(async () => {
  await pool.close();
});

/** About 1.6 million characters (some 400,000 tokens) of text no cache has seen. */
function bigText(tag: string): string {
  return Array.from({ length: 40_000 }, (_, i) => `${tag} ${i} routes ${(i * 7919) % 10007} blocks;`).join(" ");
}

/** Resolves when `test` holds of the pool's load (bounded). */
async function loadReaches(test: (load: PreparePool["load"]) => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !test(pool.load); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(test(pool.load)).toBe(true);
}

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
    const result = await pool.prepare({ kind: "chat", messages, templateKwargs: {} }, 16, seed, UNLIMITED);
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
  const chatResults = chats.map((messages) => pool.runInPool({ kind: "chat", messages, templateKwargs: {} }, 16, seed, UNLIMITED));
  const idResults = ids.map((tokens) => pool.runInPool({ kind: "tokens", tokens: tokens.slice() }, 16, seed, UNLIMITED));
  const bad = pool.runInPool({ kind: "tokens", tokens: Uint32Array.of(1, 2, 4_000_000_000) }, 16, seed, UNLIMITED);
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

describe("the context length", () => {
  it("stops tokenizing a text once it has as many tokens as the context, with the context-length error", async () => {
    const result = await pool.prepare({ kind: "text", text: bigText("a") }, 16, seed, { maxModelLen: 1000 });
    expect(result).toEqual({
      ok: false,
      param: "prompt",
      code: "context_length_exceeded",
      message:
        "This model's maximum context length is 1000 tokens. However, the prompt has at least 1000 tokens (tokenizing stopped there), leaving no room for the completion. Please reduce the length of the prompt or the completion.",
    });
  });

  it("stops a chat the same way, and takes one that fits", async () => {
    const messages = (content: string) => [{ role: "user", content }];
    const long = await pool.prepare({ kind: "chat", messages: messages(bigText("b")), templateKwargs: {} }, 16, seed, { maxModelLen: 4096 });
    expect(long).toMatchObject({ ok: false, code: "context_length_exceeded" });
    const short = await pool.prepare({ kind: "chat", messages: messages("Hello"), templateKwargs: {} }, 16, seed, { maxModelLen: 4096 });
    expect(short.ok).toBe(true);
  });

  it("refuses a token-id prompt at or over the context without hashing it, wherever it would be prepared", async () => {
    for (const length of [100, 100_000]) {
      const result = await pool.prepare({ kind: "tokens", tokens: new Uint32Array(length).fill(7) }, 16, seed, { maxModelLen: 100 });
      expect(result).toMatchObject({ ok: false, code: "context_length_exceeded", message: expect.stringContaining(`the prompt has ${length} tokens,`) });
    }
  });
});

describe("big prompts", () => {
  it("answer a small chat while two big texts are being tokenized on the only thread", async () => {
    const order: string[] = [];
    const track = (name: string, p: Promise<PrepareResult> | PrepareResult) => Promise.resolve(p).then((r) => (order.push(name), r));
    const bigA = track("bigA", pool.prepare({ kind: "text", text: bigText("c") }, 16, seed, UNLIMITED));
    const bigB = track("bigB", pool.prepare({ kind: "text", text: bigText("d") }, 16, seed, UNLIMITED));
    await loadReaches((l) => l.big === 2);
    // Both are handed to the thread within two turns of the event loop (pool.ts): by now the thread has
    // them ahead of the small chat.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const small = track("small", pool.prepare({ kind: "chat", messages: [{ role: "user", content: "Hi there" }], templateKwargs: {} }, 16, seed, UNLIMITED));
    const results = await Promise.all([bigA, bigB, small]);
    expect(results.every((r) => r.ok)).toBe(true);
    // One task at a time per thread would answer the small chat last.
    expect(order[0]).toBe("small");
  }, 60_000);

  it("stop at their next slice when their client leaves", async () => {
    const order: string[] = [];
    const leaving = new AbortController();
    const left = pool.prepare({ kind: "text", text: bigText("e") }, 16, seed, { ...UNLIMITED, signal: leaving.signal });
    const staying = Promise.resolve(pool.prepare({ kind: "text", text: bigText("f") }, 16, seed, UNLIMITED)).then((r) => (order.push("staying"), r));
    await loadReaches((l) => l.big === 2);
    leaving.abort();
    const cancelled = await left;
    order.push("left");
    expect(cancelled).toMatchObject({ ok: false, code: "cancelled" });
    expect((await staying).ok).toBe(true);
    // Cancelled while the other, started at the same time and as big, was still being tokenized.
    expect(order).toEqual(["left", "staying"]);
    await loadReaches((l) => l.running === 0);
  }, 60_000);

  it("waiting for a place, are dropped without reaching a thread when their client leaves", async () => {
    const running = [pool.prepare({ kind: "text", text: bigText("g") }, 16, seed, UNLIMITED), pool.prepare({ kind: "text", text: bigText("h") }, 16, seed, UNLIMITED)];
    await loadReaches((l) => l.big === 2);
    const leaving = new AbortController();
    const waiting = pool.prepare({ kind: "text", text: bigText("i") }, 16, seed, { ...UNLIMITED, signal: leaving.signal });
    await loadReaches((l) => l.waiting === 1);
    leaving.abort();
    expect(await waiting).toMatchObject({ ok: false, code: "cancelled" });
    expect(pool.load).toMatchObject({ big: 2, waiting: 0 });
    expect((await Promise.all(running)).every((r) => r.ok)).toBe(true);
  }, 60_000);
});

it("returns each prompt's block hashes in an array of its own, inline and from a thread", async () => {
  const { createBlockHasher } = await import("../../../src/router/prepare/hashing/index.js");
  const hasher = await createBlockHasher();
  const seed = rootSeed({ model: "m" });
  const a = Uint32Array.from({ length: 100 }, (_, i) => i + 1);
  const b = Uint32Array.from({ length: 40 }, (_, i) => 1000 + i);
  const expectedA = hasher.hashBlocks(a, 16, seed).slice();
  const expectedB = hasher.hashBlocks(b, 16, seed).slice();
  const first = pool.runInline({ kind: "tokens", tokens: a.slice() }, 16, seed, UNLIMITED.maxModelLen);
  // A second prompt prepared on the same thread must not overwrite the first one's hashes.
  const second = pool.runInline({ kind: "tokens", tokens: b.slice() }, 16, seed, UNLIMITED.maxModelLen);
  const pooled = await pool.runInPool({ kind: "tokens", tokens: a.slice() }, 16, seed, UNLIMITED);
  if (!first.ok || !second.ok || !pooled.ok) throw new Error("preparation failed");
  expect(first.hashes).toEqual(expectedA);
  expect(second.hashes).toEqual(expectedB);
  expect(pooled.hashes).toEqual(expectedA);
  expect(first.hashes.length).toBe(first.blocks);
});
