import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { createBlockHasher, createReferenceHasher, rootSeed, type BlockHasher } from "../../../../src/index.js";

let kernel: BlockHasher;
let reference: BlockHasher;

beforeAll(async () => {
  kernel = await createBlockHasher({ kernel: "require" });
  reference = await createReferenceHasher();
});

/** Token ids across the whole u32 range, with the extremes over-represented. */
function randomTokens(length: number, seed: number): Uint32Array {
  const out = new Uint32Array(length);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; // xorshift32
    const pick = s & 15;
    out[i] = pick === 0 ? 0 : pick === 1 ? 0xffffffff : pick === 2 ? 0x80000000 : s;
  }
  return out;
}

// The kernel takes long prompts a chunk of whole blocks (up to 65,536 tokens) at a time; 7 and 48 do not
// divide 65,536, so their chunks are shorter than that.
const BLOCK_SIZES = [1, 7, 16, 32, 48, 64, 128, 512];

describe("WASM kernel agrees with xxhash-wasm h64Raw block by block", () => {
  for (const blockSize of BLOCK_SIZES) {
    it(`block size ${blockSize}`, () => {
      const chunkEdge = Math.floor(65_536 / blockSize) * blockSize;
      const edgeLengths = [0, 1, blockSize - 1, blockSize, blockSize + 1, 3 * blockSize - 1, chunkEdge, chunkEdge + blockSize, 200_000];
      fc.assert(
        fc.property(
          fc.oneof(fc.constantFrom(...edgeLengths), fc.integer({ min: 0, max: 200_000 })),
          fc.integer({ min: 1, max: 0x7fffffff }),
          fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
          (length, tokenSeed, seed) => {
            const tokens = randomTokens(length, tokenSeed);
            const got = kernel.hashBlocks(tokens, blockSize, seed);
            const want = reference.hashBlocks(tokens, blockSize, seed);
            expect(got.length).toBe(Math.floor(length / blockSize));
            expect(got).toEqual(want);
          },
        ),
        { numRuns: 15 },
      );
    });
  }

  it("takes plain arrays as well as Uint32Array, with the same result", () => {
    const tokens = randomTokens(5000, 7);
    const seed = rootSeed({ model: "m" });
    expect(kernel.hashBlocks(Array.from(tokens), 16, seed)).toEqual(kernel.hashBlocks(tokens, 16, seed));
  });

  it("hashes a subarray view from its own offset", () => {
    const tokens = randomTokens(1000, 9);
    const seed = 42n;
    expect(kernel.hashBlocks(tokens.subarray(100, 900), 16, seed)).toEqual(
      reference.hashBlocks(tokens.slice(100, 900), 16, seed),
    );
  });

  it("chains: a block's hash names its whole prefix", () => {
    const a = randomTokens(64, 1);
    const b = a.slice();
    b[0] = (b[0]! + 1) >>> 0; // differ only in block 0
    const ha = kernel.hashBlocks(a, 16, 0n);
    const hb = kernel.hashBlocks(b, 16, 0n);
    for (let i = 0; i < 4; i++) expect(ha[i]).not.toBe(hb[i]);
    // Equal prefixes give equal hashes, whatever follows.
    const c = a.slice();
    c[63] = (c[63]! + 1) >>> 0;
    expect(Array.from(kernel.hashBlocks(c, 16, 0n).subarray(0, 3))).toEqual(Array.from(ha.subarray(0, 3)));
  });

  it("handles 1M-token prompts (typed and plain) and smaller ones after them", () => {
    const big = randomTokens(1_000_000, 3);
    const seed = rootSeed({ model: "big" });
    const got = kernel.hashBlocks(big, 16, seed);
    expect(got.length).toBe(62_500);
    expect(got).toEqual(reference.hashBlocks(big, 16, seed));
    expect(kernel.hashBlocks(Array.from(big), 16, seed)).toEqual(got);
    const small = randomTokens(33, 5);
    expect(kernel.hashBlocks(small, 16, seed)).toEqual(reference.hashBlocks(small, 16, seed));
  });
});

describe("bad input throws a RangeError naming the problem", () => {
  const cases: [string, unknown[], RegExp][] = [
    ["negative", [1, 2, -1], /index 2 is -1/],
    ["fractional", [1.5], /index 0 is 1\.5/],
    ["above 2^32-1", [0, 2 ** 32], /index 1 is 4294967296/],
    ["NaN", [3, NaN], /index 1 is NaN/],
    ["a string", ["7"], /index 0 is "7"/],
  ];
  for (const [what, tokens, message] of cases) {
    it(`token id ${what}`, () => {
      for (const hasher of [kernel, reference]) {
        expect(() => hasher.hashBlocks(tokens as number[], 1, 0n)).toThrow(RangeError);
        expect(() => hasher.hashBlocks(tokens as number[], 1, 0n)).toThrow(message);
      }
    });
  }

  it("a bad id in the trailing partial block is still rejected", () => {
    expect(kernel.hashBlocks([1, 2, 3], 2, 0n).length).toBe(1);
    expect(() => kernel.hashBlocks([1, 2, -3], 2, 0n)).toThrow(/index 2 is -3/);
  });

  for (const blockSize of [0, -16, 1.5, NaN, 2 ** 21]) {
    it(`block size ${blockSize}`, () => {
      expect(() => kernel.hashBlocks([1, 2, 3], blockSize, 0n)).toThrow(RangeError);
      expect(() => kernel.hashBlocks([1, 2, 3], blockSize, 0n)).toThrow(/block size must be an integer/);
    });
  }

  it("root seed out of range or not a bigint", () => {
    expect(() => kernel.hashBlocks([1], 1, -1n)).toThrow(/root seed/);
    expect(() => kernel.hashBlocks([1], 1, 1n << 64n)).toThrow(RangeError);
    expect(() => kernel.hashBlocks([1], 1, 5 as unknown as bigint)).toThrow(/root seed/);
  });

  it("tokens that are not an array", () => {
    expect(() => kernel.hashBlocks(null as unknown as number[], 1, 0n)).toThrow(TypeError);
    expect(() => kernel.hashBlocks(12 as unknown as number[], 1, 0n)).toThrow(/tokens must be/);
  });
});
