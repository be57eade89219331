// The generate frame's own id writer against msgpackr: byte for byte the frame encodeFrame makes of the same
// message (prompt ids last), for any fields and any ids, and the decoded message is the one sent.
import fc from "fast-check";
import { expect, it } from "vitest";
import { generateFields, toGenerateMessage } from "../../src/engine-protocol/build.js";
import { decodeBody, encodeFrame, encodeGenerateFrame } from "../../src/engine-protocol/codec.js";
import { FRAME_HEADER_BYTES } from "../../src/engine-protocol/frame.js";
import type { GenerateRequest } from "../../src/engine-protocol/types.js";

const u32 = fc.oneof(
  fc.constantFrom(0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffff, 0xffffffff),
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.integer({ min: 0, max: 200_000 }),
);

const request: fc.Arbitrary<Omit<GenerateRequest, "promptTokenIds">> = fc.record(
  {
    sampling: fc.record(
      {
        maxTokens: fc.integer({ min: 1, max: 0xffffffff }),
        temperature: fc.double({ min: 0, max: 2, noNaN: true }),
        topP: fc.double({ min: 0.01, max: 1, noNaN: true }),
        topK: fc.integer({ min: -1, max: 1000 }),
        seed: fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
        stop: fc.array(fc.string({ unit: "grapheme", minLength: 1 }), { maxLength: 4 }),
        stopTokenIds: fc.array(u32, { maxLength: 4 }),
        ignoreEos: fc.boolean(),
        minTokens: fc.integer({ min: 0, max: 100 }),
      },
      { requiredKeys: [] },
    ),
    overlapBlocks: fc.integer({ min: 0, max: 100_000 }),
    loraName: fc.string({ unit: "grapheme" }),
    cacheSalt: fc.string({ unit: "grapheme", minLength: 1 }),
    requestId: fc.string(),
    dataParallelRank: fc.integer({ min: 0, max: 64 }),
    kvTransferParams: fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer(), fc.boolean())),
  },
  { requiredKeys: [] },
);

function viaMsgpackr(id: number, r: GenerateRequest): Buffer {
  return encodeFrame(Object.assign(generateFields(id, r), { prompt_token_ids: Array.from(r.promptTokenIds) }));
}

it("writes the frame msgpackr writes, for any fields and ids", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), request, fc.array(u32, { maxLength: 300 }), (id, fields, ids) => {
      const r: GenerateRequest = { ...fields, promptTokenIds: Uint32Array.from(ids) };
      const frame = encodeGenerateFrame(generateFields(id, r), r.promptTokenIds);
      expect(frame.equals(viaMsgpackr(id, r))).toBe(true);
      expect(frame.readUInt32BE(0)).toBe(frame.length - FRAME_HEADER_BYTES);
      expect(decodeBody(frame.subarray(FRAME_HEADER_BYTES))).toEqual(decodeBody(encodeFrame(toGenerateMessage(id, r)).subarray(FRAME_HEADER_BYTES)));
    }),
    { numRuns: 300 },
  );
});

it("writes arrays of 16 and of 65,536 ids or more with their longer headers", () => {
  for (const n of [15, 16, 65_535, 65_536, 70_000]) {
    const r: GenerateRequest = { promptTokenIds: Uint32Array.from({ length: n }, (_, i) => (i * 2654435761) >>> 0), sampling: { maxTokens: 1 } };
    expect(encodeGenerateFrame(generateFields(1, r), r.promptTokenIds).equals(viaMsgpackr(1, r))).toBe(true);
  }
});

it("leaves ids that are not u32 integers to msgpackr, as they were", () => {
  for (const ids of [[1, 2.5, 3], [-1, 5], [2 ** 32, 1], [Number.NaN]]) {
    const r: GenerateRequest = { promptTokenIds: ids };
    expect(encodeGenerateFrame(generateFields(3, r), ids).equals(viaMsgpackr(3, r))).toBe(true);
  }
});
