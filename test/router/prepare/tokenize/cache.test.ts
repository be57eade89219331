// The exact tokenization cache: encoding through it gives the ids of encoding the whole text, on the
// shipped tokenizer and on a --tokenizer DIR folder; it stays within its byte budget; and it turns itself
// off for tokenizers where cutting at added tokens could change the ids.
import { rm } from "node:fs/promises";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PieceCache } from "../../../../src/router/prepare/tokenize/piece-cache.js";
import { loadTokenizer, TextTokenizer, type TokenizerFiles } from "../../../../src/router/prepare/tokenize/index.js";
import { expectSameIds, gpt2Style, llama3Style, withJson, writeTokenizerDir } from "./test-tokenizers.js";
import { SPECIAL_STRINGS, text } from "./texts.js";

/** Texts built from a few shared pieces, so that sections repeat and come back from the cache. */
const repeating = fc
  .tuple(fc.array(text, { minLength: 1, maxLength: 4 }), fc.array(fc.tuple(fc.nat(), fc.constantFrom(...SPECIAL_STRINGS, "<|im_start|>", "<|im_end|>\n")), { maxLength: 12 }))
  .map(([pieces, picks]) => picks.map(([i, special]) => pieces[i % pieces.length]! + special).join(""));

let dir: string;
const tokenizers: Record<string, TextTokenizer> = {};
beforeAll(async () => {
  tokenizers.qwen3 = await loadTokenizer(undefined, { cacheBytes: 1 << 20 });
  dir = await writeTokenizerDir(llama3Style());
  tokenizers["--tokenizer DIR (llama3-style)"] = await loadTokenizer(dir, { cacheBytes: 1 << 20 });
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.each(["qwen3", "--tokenizer DIR (llama3-style)"])("the cache on %s", (name) => {
  it("is on, and encoding through it gives the ids of the whole text, first time and from the cache", () => {
    const tok = tokenizers[name]!;
    expect(tok.cache).toEqual({ enabled: true, budgetBytes: 1 << 20, reason: null });
    fc.assert(
      fc.property(repeating, (t) => {
        const reference = tok.encodeWithReference(t, true);
        expectSameIds(tok.encode(t), reference);
        expectSameIds(tok.encode(t), reference);
        expectSameIds(tok.encodeText(t, false), tok.encodeWithReference(t, false));
      }),
      { numRuns: 150 },
    );
    const stats = tok.stats().sections!;
    expect(stats.hits).toBeGreaterThan(stats.misses);
    expect(stats.bytes).toBeLessThanOrEqual(stats.budgetBytes);
  });

  it("serves a repeated system prompt from the cache in a chat", () => {
    const tok = tokenizers[name]!;
    const system = "You are a careful assistant. ".repeat(200);
    const before = tok.stats().sections!.hits;
    for (const question of ["What is a KV cache?", "Und auf Deutsch?", "用中文呢？"]) {
      const messages = [
        { role: "system", content: system },
        { role: "user", content: question },
      ];
      expectSameIds(tok.encodeChat(messages), tok.encodeWithReference(tok.renderChat(messages), false));
    }
    expect(tok.stats().sections!.hits - before).toBeGreaterThanOrEqual(2);
  });
});

describe("turning the cache off", () => {
  it("a budget of 0 turns it off", () => {
    const tok = new TextTokenizer(gpt2Style(), { cacheBytes: 0 });
    expect(tok.cache).toEqual({ enabled: false, budgetBytes: 0, reason: "turned off (budget 0)" });
    expect(tok.stats().sections).toBeNull();
  });

  it("a token that strips the whitespace around it turns it off by itself, with the reason, and ids stay exact", () => {
    const tok = new TextTokenizer(withJson(gpt2Style(), (j) => ((j.added_tokens as Record<string, unknown>[])[0]!.rstrip = true)), { cacheBytes: 1 << 20 });
    expect(tok.cache.enabled).toBe(false);
    expect(tok.cache.reason).toMatch(/"<\|endoftext\|>" strips whitespace/);
    for (const t of ["a <|endoftext|>  b", "x\n<|endoftext|>\n\ny", "<|endoftext|> <|endoftext|>"]) expectSameIds(tok.encode(t), tok.encodeWithReference(t, true));
  });

  it("a Metaspace pre-tokenizer that prepends to the first section only turns it off by itself", () => {
    const files: TokenizerFiles = {
      source: "metaspace test tokenizer",
      tokenizerJson: {
        added_tokens: [{ id: 5, content: "<sep>", special: true, normalized: false }],
        normalizer: null,
        pre_tokenizer: { type: "Metaspace", replacement: "▁", prepend_scheme: "first", split: false },
        post_processor: null,
        decoder: null,
        model: { type: "BPE", vocab: { "▁": 0, a: 1, b: 2, "▁a": 3, "<unk>": 4 }, merges: ["▁ a"], unk_token: "<unk>" },
      },
      tokenizerConfig: {},
      chatTemplate: null,
    };
    const tok = new TextTokenizer(files, { cacheBytes: 1 << 20 });
    expect(tok.encoder.kind).toBe("huggingface");
    expect(tok.cache.enabled).toBe(false);
    expect(tok.cache.reason).toMatch(/prepend_scheme first/);
    for (const t of ["a<sep>a", "ab<sep> a b", "<sep>a"]) expectSameIds(tok.encode(t), tok.encodeWithReference(t, true));
  });

  it("stays on, and exact, with the library encoding the sections (a normalizer the fast encoder lacks)", () => {
    const tok = new TextTokenizer(
      withJson(gpt2Style(), (j) => {
        j.normalizer = { type: "Lowercase" };
        (j.added_tokens as Record<string, unknown>[])[0]!.normalized = false;
      }),
      { cacheBytes: 1 << 20 },
    );
    expect(tok.encoder.kind).toBe("huggingface");
    expect(tok.cache.enabled).toBe(true);
    fc.assert(
      fc.property(repeating, (t) => {
        const reference = tok.encodeWithReference(t, true);
        expectSameIds(tok.encode(t), reference);
        expectSameIds(tok.encode(t), reference);
      }),
      { numRuns: 30 },
    );
    expect(tok.stats().sections!.hits).toBeGreaterThan(0);
  });
});

describe("PieceCache", () => {
  const ids = (n: number) => Uint32Array.from({ length: n }, (_, i) => i);

  it("keeps its entries within the byte budget, dropping the oldest not used since it was stored", () => {
    const cache = new PieceCache(4000);
    cache.set("a".repeat(100), ids(100)); // 200 + 400 + 160 = 760 bytes
    cache.set("b".repeat(100), ids(100));
    cache.set("c".repeat(100), ids(100));
    expect(cache.get("a".repeat(100))).toBeDefined(); // now the most recently used
    for (const c of "defg") cache.set(c.repeat(100), ids(100));
    const stats = cache.stats();
    expect(stats.bytes).toBeLessThanOrEqual(4000);
    expect(stats.entries).toBe(5);
    expect(stats.evictions).toBe(2);
    expect(cache.get("b".repeat(100))).toBeUndefined();
    expect(cache.get("c".repeat(100))).toBeUndefined();
    expect(cache.get("a".repeat(100))).toBeDefined();
  });

  it("does not keep a piece costing more than a quarter of the budget", () => {
    const cache = new PieceCache(4000);
    cache.set("x".repeat(400), ids(100)); // 800 + 400 + 160 > 1000
    expect(cache.stats().entries).toBe(0);
  });

  it("holds any random workload within budget", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string({ maxLength: 300 }), fc.nat({ max: 200 })), { maxLength: 200 }), fc.integer({ min: 500, max: 20_000 }), (ops, budget) => {
        const cache = new PieceCache(budget);
        for (const [key, n] of ops) {
          if (cache.get(key) === undefined) cache.set(key, ids(n));
          expect(cache.stats().bytes).toBeLessThanOrEqual(budget);
        }
      }),
    );
  });

  it("tells apart long texts that share a fingerprint, and files at most eight under one", () => {
    const cache = new PieceCache(1 << 20);
    // Same length, same ends, same sampled characters: only position 500 differs.
    const texts = Array.from({ length: 12 }, (_, k) => `${"a".repeat(500)}${String.fromCharCode(98 + k)}${"a".repeat(499)}`);
    texts.forEach((t, k) => cache.set(t, ids(k + 1)));
    texts.forEach((t, k) => expect(cache.get(t)?.length).toBe(k < 8 ? k + 1 : undefined));
    expect(cache.stats().entries).toBe(8);
  });

  it("refuses a budget that is not a positive number", () => {
    expect(() => new PieceCache(0)).toThrow(/positive number of bytes/);
    expect(() => new PieceCache(Number.NaN)).toThrow(/positive number of bytes/);
  });
});
