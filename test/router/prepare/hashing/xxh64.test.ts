import fc from "fast-check";
import xxhash from "xxhash-wasm";
import { beforeAll, describe, expect, it } from "vitest";
import { createReferenceHasher, hashBlocksPlain, rootSeed, xxh64 } from "../../../../src/index.js";

let h64Raw: (input: Uint8Array, seed?: bigint) => bigint;
beforeAll(async () => {
  ({ h64Raw } = await xxhash());
});

describe("plain TypeScript XXH64", () => {
  it("matches xxhash-wasm on every length class (short, stripes, tails of 8, 4 and single bytes)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (bytes, seed) => {
        expect(xxh64(bytes, seed)).toBe(h64Raw(bytes, seed));
      }),
      { numRuns: 2000 },
    );
  });

  it("matches the published XXH64 test value for the empty input", () => {
    expect(xxh64(new Uint8Array(0), 0n)).toBe(0xef46db3751d8e999n);
  });

  it("chains blocks the same way as the reference hasher", async () => {
    const reference = await createReferenceHasher();
    const tokens = new Uint32Array(4099).map((_, i) => Math.imul(i, 2654435761) >>> 0);
    for (const bs of [1, 3, 16, 512]) {
      expect(hashBlocksPlain(tokens, bs, 99n)).toEqual(reference.hashBlocks(tokens, bs, 99n));
    }
  });
});

describe("rootSeed", () => {
  it("is stable and depends on every part", () => {
    const base = rootSeed({ model: "Qwen/Qwen3-0.6B" });
    expect(rootSeed({ model: "Qwen/Qwen3-0.6B", loraName: "", cacheSalt: "" })).toBe(base);
    expect(rootSeed({ model: "Qwen/Qwen3-0.6B", loraName: "a" })).not.toBe(base);
    expect(rootSeed({ model: "Qwen/Qwen3-0.6B", cacheSalt: "a" })).not.toBe(base);
    expect(rootSeed({ model: "Qwen/Qwen3-0.6B", loraName: "a" })).not.toBe(rootSeed({ model: "Qwen/Qwen3-0.6B", cacheSalt: "a" }));
  });

  it("cannot be made to collide by moving characters between parts", () => {
    expect(rootSeed({ model: "ab", loraName: "c" })).not.toBe(rootSeed({ model: "a", loraName: "bc" }));
  });

  it("is XXH64 (seed 0) of the length-prefixed UTF-8 parts", () => {
    const bytes = new Uint8Array([1, 0, 0, 0, 0x6d, 0, 0, 0, 0, 2, 0, 0, 0, 0xc3, 0xa9]); // "m", "", "é"
    expect(rootSeed({ model: "m", cacheSalt: "é" })).toBe(h64Raw(bytes, 0n));
  });

  it("rejects parts that are not strings", () => {
    expect(() => rootSeed({ model: 3 as unknown as string })).toThrow(/model must be a string/);
  });
});
