// Piecewise encoding: exact at every slice size, stops as soon as the limit is passed (before merging a
// word that cannot fit), stops when cancelled, and leaves a real worker thread free between slices.
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { loadTokenizer, runPiecewise, TextTokenizer } from "../../../../src/router/prepare/tokenize/index.js";
import { packageRoot } from "../../../../src/util/package-root.js";
import { expectSameIds, llama3Style } from "./test-tokenizers.js";
import { text } from "./texts.js";

const tokenizers: Record<string, TextTokenizer> = {};
beforeAll(async () => {
  tokenizers.qwen3 = await loadTokenizer(undefined, { cacheBytes: 1 << 20 });
  tokenizers["llama3-style"] = new TextTokenizer(llama3Style(), { cacheBytes: 0 });
}, 60_000);

/** Runs an encoding to its end synchronously, counting steps. */
function drive(tok: TextTokenizer, t: string, options: Parameters<TextTokenizer["startEncoding"]>[1]) {
  const encoding = tok.startEncoding(t, options);
  let steps = 1;
  while (!encoding.step()) steps++;
  return { result: encoding.result!, steps };
}

describe.each(["qwen3", "llama3-style"])("piecewise encoding on %s", (name) => {
  it("gives the ids of encoding the whole text, whatever the slice size", () => {
    const tok = tokenizers[name]!;
    fc.assert(
      fc.property(fc.array(text, { maxLength: 3 }).map((ts) => ts.join("<|im_end|>")), fc.integer({ min: 1, max: 200 }), fc.boolean(), (t, sliceChars, addSpecialTokens) => {
        const { result } = drive(tok, t, { maxTokens: 1e9, sliceChars, addSpecialTokens });
        expect(result.status).toBe("ok");
        const expected = tok.encodeWithReference(t, addSpecialTokens);
        if (result.status === "ok") expectSameIds(result.tokens, expected);
      }),
      { numRuns: 150 },
    );
  });

  it("is over the limit exactly when the whole text is, and never counts more than the text has", () => {
    const tok = tokenizers[name]!;
    fc.assert(
      fc.property(text, fc.integer({ min: 1, max: 50 }), fc.integer({ min: -3, max: 3 }), (t, sliceChars, delta) => {
        const total = tok.encode(t).length;
        const maxTokens = Math.max(0, total + delta);
        const { result } = drive(tok, t, { maxTokens, sliceChars, addSpecialTokens: true });
        if (total <= maxTokens) {
          expect(result.status).toBe("ok");
        } else {
          expect(result.status).toBe("too_long");
          if (result.status === "too_long") {
            expect(result.countedTokens).toBeGreaterThan(maxTokens);
            expect(result.countedTokens).toBeLessThanOrEqual(total);
          }
        }
      }),
      { numRuns: 150 },
    );
  });
});

describe("stopping early", () => {
  it("stops within the first slice when a long prompt passes the limit there", () => {
    const tok = tokenizers.qwen3!;
    const { result, steps } = drive(tok, "The quick brown fox jumps over the lazy dog. ".repeat(100_000), { maxTokens: 1000, sliceChars: 65_536 });
    expect(result).toMatchObject({ status: "too_long" });
    expect(steps).toBe(1);
  });

  it("refuses a giant word without merging it when its bytes alone need more tokens than allowed", () => {
    const tok = tokenizers.qwen3!;
    const { result, steps } = drive(tok, `hello ${"a".repeat(3_000_000)}`, { maxTokens: 10_000, sliceChars: 65_536 });
    expect(result).toMatchObject({ status: "too_long" });
    if (result.status === "too_long") expect(result.countedTokens).toBeGreaterThan(10_000);
    expect(steps).toBe(1);
  });

  it("merges a word longer than a slice over several steps, with the same ids", () => {
    const tok = tokenizers.qwen3!;
    const word = "abcdefghij".repeat(3_000);
    const { result, steps } = drive(tok, `x ${word} y`, { maxTokens: 1e9, sliceChars: 4_000 });
    expect(steps).toBeGreaterThan(2);
    expect(result.status).toBe("ok");
    if (result.status === "ok") expectSameIds(result.tokens, tok.encodeWithReference(`x ${word} y`, true));
  });

  it("stops when cancelled between steps", async () => {
    const tok = tokenizers.qwen3!;
    let checks = 0;
    const result = await runPiecewise(tok.startEncoding("word ".repeat(200_000), { maxTokens: 1e9, sliceChars: 1000 }), () => ++checks > 3);
    expect(result).toEqual({ status: "cancelled" });
    expect(checks).toBe(4);
  });

  it("refuses bad limits with a clear error", () => {
    const tok = tokenizers.qwen3!;
    expect(() => tok.startEncoding("x", { maxTokens: -1 })).toThrow(/maxTokens must be a non-negative integer/);
    expect(() => tok.startEncoding("x", { maxTokens: 10, sliceChars: 0 })).toThrow(/sliceChars must be a positive integer/);
  });
});

describe("in a worker thread", () => {
  it("answers messages between slices, stops at the limit, and stops when another thread cancels", async () => {
    const worker = new Worker(join(packageRoot(), "test", "router", "prepare", "tokenize", "piecewise-worker.mjs"));
    const messages: { kind: string; counted?: number | null; result?: { status: string; length?: number } }[] = [];
    let notify: () => void = () => {};
    worker.on("message", (m) => {
      messages.push(m);
      notify();
    });
    const next = async (kind: string) => {
      for (;;) {
        const i = messages.findIndex((m) => m.kind === kind);
        if (i >= 0) return messages.splice(i, 1)[0]!;
        await new Promise<void>((resolve) => (notify = resolve));
      }
    };
    try {
      await next("ready");
      const big = "Routing by prefix keeps the cache warm; 你好，世界！ 12345\n".repeat(25_000); // about 1.4 million characters

      // Whole encoding, pinged throughout: pongs arrive while the encoding is under way.
      const cancel = new SharedArrayBuffer(4);
      worker.postMessage({ kind: "encode", text: big, maxTokens: 1e9, sliceChars: 16_384, cancel });
      let pongsDuring = 0;
      const pinger = setInterval(() => worker.postMessage({ kind: "ping" }), 2);
      const done = await next("result");
      clearInterval(pinger);
      for (const m of messages.splice(0)) if (m.kind === "pong" && m.counted !== null && m.counted! > 0) pongsDuring++;
      expect(done.result).toMatchObject({ status: "ok" });
      expect(pongsDuring).toBeGreaterThan(0);

      // The limit.
      worker.postMessage({ kind: "encode", text: big, maxTokens: 5000, sliceChars: 16_384, cancel });
      expect((await next("result")).result).toMatchObject({ status: "too_long" });

      // Cancelled from this thread once the worker has started.
      worker.postMessage({ kind: "encode", text: big, maxTokens: 1e9, sliceChars: 4096, cancel });
      for (;;) {
        worker.postMessage({ kind: "ping" });
        const pong = await next("pong");
        if (pong.counted !== null && pong.counted! > 0) break;
      }
      Atomics.store(new Int32Array(cancel), 0, 1);
      expect((await next("result")).result).toEqual({ status: "cancelled" });
    } finally {
      await worker.terminate();
    }
  }, 60_000);
});
