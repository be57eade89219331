import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { blockTokens, createPromptSynthesizer, openTrace, QWEN3_VOCAB_SIZE, readAll, type TraceRecord } from "../../../src/index.js";
import { packageRoot } from "../../../src/util/package-root.js";

const record = (line: number, inputLength: number, hashIds?: number[]): TraceRecord => ({
  line,
  timestampMs: 0,
  inputLength,
  outputLength: 1,
  ...(hashIds ? { hashIds } : {}),
});

const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

describe("prompt synthesis", () => {
  it("is the same function in every run and on every machine: fixed first tokens of block 0 and block 2^40", () => {
    // These values are part of the contract: changing them would make replays of one trace produce other
    // prompts than before, and caches warmed by earlier runs would no longer match.
    expect(Array.from(blockTokens(0).subarray(0, 6))).toEqual(Array.from(blockTokens(0, { blockSize: 6 })));
    expect(Array.from(blockTokens(0, { blockSize: 6 }))).toMatchInlineSnapshot(`
      [
        79610,
        131650,
        6381,
        112737,
        97098,
        43394,
      ]
    `);
    expect(Array.from(blockTokens(2 ** 40, { blockSize: 4 }))).toMatchInlineSnapshot(`
      [
        117061,
        78471,
        9478,
        23717,
      ]
    `);
    expect(Array.from(createPromptSynthesizer()(record(7, 4)))).toMatchInlineSnapshot(`
      [
        83774,
        20934,
        116080,
        48821,
      ]
    `);
  });

  it("makes a prompt from the blocks of its ids, the last one cut to the input length", () => {
    const synth = createPromptSynthesizer({ blockSize: 16 });
    const prompt = synth(record(1, 40, [5, 9, 11]));
    expect(prompt).toHaveLength(40);
    expect(prompt.subarray(0, 16)).toEqual(blockTokens(5, { blockSize: 16 }));
    expect(prompt.subarray(16, 32)).toEqual(blockTokens(9, { blockSize: 16 }));
    expect(prompt.subarray(32, 40)).toEqual(blockTokens(11, { blockSize: 16 }).subarray(0, 8));
  });

  it("gives equal tokens for equal ids, whatever the record, and different tokens for different ids", () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 2 ** 45 }), { minLength: 2, maxLength: 6 }), fc.integer({ min: 2, max: 64 }), (blockIds, blockSize) => {
        const a = createPromptSynthesizer({ blockSize });
        const b = createPromptSynthesizer({ blockSize });
        const n = blockIds.length * blockSize;
        const full = a(record(1, n, blockIds));
        // A second synthesiser, another line, a shorter prompt on the same ids: same tokens on the shared part.
        const shorter = b(record(99, n - 1, blockIds));
        expect(shorter).toEqual(full.subarray(0, n - 1));
        for (let i = 0; i < blockIds.length; i++) {
          for (let j = 0; j < blockIds.length; j++) {
            const same = blockIds[i] === blockIds[j];
            const x = full.subarray(i * blockSize, (i + 1) * blockSize);
            const y = full.subarray(j * blockSize, (j + 1) * blockSize);
            if (same) expect(x).toEqual(y);
            else if (blockSize >= 4) expect(x).not.toEqual(y);
          }
        }
      }),
      { numRuns: 60 },
    );
  });

  it("keeps token ids inside the vocabulary and away from the ids below the lowest allowed", () => {
    const qwen = createPromptSynthesizer({ blockSize: 512 })(record(1, 512 * 200, ids(200)));
    expect(Math.max(...qwen)).toBeLessThan(QWEN3_VOCAB_SIZE);
    expect(Math.max(...qwen)).toBeGreaterThan(QWEN3_VOCAB_SIZE - 100); // the whole range is used
    const narrow = createPromptSynthesizer({ blockSize: 64, vocabSize: 1000, lowestTokenId: 990 })(record(1, 64 * 50, ids(50)));
    expect(new Set(narrow)).toEqual(new Set(ids(10, 990)));
  });

  it("gives records without ids prompts of their own that share no prefix", () => {
    const synth = createPromptSynthesizer();
    const a = synth(record(2, 1000));
    const b = synth(record(3, 1000));
    expect(a).toHaveLength(1000);
    expect(a[0] === b[0] && a[1] === b[1] && a[2] === b[2]).toBe(false);
    expect(synth(record(2, 1000))).toEqual(a);
    // Not the tokens of block id 2 either: the two kinds of key are kept apart.
    expect(a.subarray(0, 512)).not.toEqual(blockTokens(2));
  });

  it("a seed changes every prompt, the same seed gives the same prompts", () => {
    const r = record(5, 600, [1, 2]);
    const base = createPromptSynthesizer()(r);
    expect(createPromptSynthesizer({ seed: 0 })(r)).toEqual(base);
    const seeded = createPromptSynthesizer({ seed: 1 })(r);
    expect(seeded).toEqual(createPromptSynthesizer({ seed: 1 })(r));
    expect(seeded.subarray(0, 8)).not.toEqual(base.subarray(0, 8));
  });

  it("matches the prefix reuse of the real trace: equal leading ids, equal leading tokens", async () => {
    const records = await readAll(await openTrace(join(packageRoot(), "test", "fixtures", "traces", "mooncake-conversation-200.jsonl")));
    const synth = createPromptSynthesizer({ blockSize: 512 });
    const [a, b] = [records[0]!, records[1]!];
    let shared = 0;
    while (a.hashIds![shared] === b.hashIds![shared]) shared++;
    expect(shared).toBeGreaterThan(0); // both start with the same system block
    const pa = synth(a);
    const pb = synth(b);
    expect(pa.subarray(0, shared * 512)).toEqual(pb.subarray(0, shared * 512));
    expect(pa.subarray(shared * 512, shared * 512 + 16)).not.toEqual(pb.subarray(shared * 512, shared * 512 + 16));
  });

  it("rejects ids that disagree with the input length, and bad options, naming them", () => {
    const synth = createPromptSynthesizer({ blockSize: 16 });
    expect(() => synth(record(12, 40, [1, 2]))).toThrow(/line 12 has 2 block ids, but input length 40 at block size 16 needs 3/);
    expect(() => synth(record(13, 16, [-1]))).toThrow(/block id \(line 13\) must be an integer/);
    expect(() => createPromptSynthesizer({ vocabSize: 1 })).toThrow(/vocabSize/);
    expect(() => createPromptSynthesizer({ lowestTokenId: 10, vocabSize: 11 })).toThrow(/lowestTokenId/);
    expect(() => createPromptSynthesizer({ blockSize: 0 })).toThrow(/blockSize/);
    expect(() => createPromptSynthesizer({ seed: -1 })).toThrow(/seed/);
  });
});
