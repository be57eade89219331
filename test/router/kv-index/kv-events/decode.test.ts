import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Packr } from "msgpackr";
import { describe, expect, it } from "vitest";
import { decodeKvEventBatch, KvEventDecodeError, type KvEvent, type KvEventBatch } from "../../../../src/index.js";
import { packageRoot } from "../../../../src/util/package-root.js";

const FIXTURES = join(packageRoot(), "test", "fixtures", "vllm-kv-events");
const LAYOUTS = ["v1", "v2", "v3", "v4", "v4b"];
const packr = new Packr({ useRecords: false, variableMapSize: true });

interface ExpectedEvent {
  type: string;
  block_hashes?: string[];
  parent_block_hash?: string | null;
  token_ids?: number[];
  block_size?: number;
}
interface Expected {
  hash_kind: string;
  events: ExpectedEvent[];
  data_parallel_rank: number | null;
}

function fixture(layout: string): { payload: Uint8Array; expected: Expected } {
  return {
    payload: readFileSync(join(FIXTURES, `batch-${layout}.msgpack`)),
    expected: JSON.parse(readFileSync(join(FIXTURES, `batch-${layout}.json`), "utf8")) as Expected,
  };
}

/** The expected JSON's hash, as the u64 the decoder must give: decimal as is, a digest by its last 8 bytes big-endian. */
function expectedHash(text: string, kind: string): string {
  return kind === "bytes32" ? BigInt(`0x${text.slice(-16)}`).toString() : text;
}

/** The decoded batch in the expected JSON's vocabulary, with only the fields the JSON has. */
function asExpected(batch: KvEventBatch): Expected {
  const hash = (h: bigint): string => h.toString();
  return {
    hash_kind: batch.hashKind ?? "none",
    data_parallel_rank: batch.dataParallelRank,
    events: batch.events.map((e: KvEvent): ExpectedEvent => {
      switch (e.type) {
        case "BlockStored":
          return {
            type: e.type,
            block_hashes: Array.from(e.blockHashes, hash),
            parent_block_hash: e.parentBlockHash === null ? null : hash(e.parentBlockHash),
            token_ids: Array.from(e.tokenIds),
            block_size: e.blockSize,
          };
        case "BlockRemoved":
          return { type: e.type, block_hashes: Array.from(e.blockHashes, hash) };
        default:
          return { type: e.type };
      }
    }),
  };
}

describe("golden vLLM payloads", () => {
  for (const layout of LAYOUTS) {
    it(`batch-${layout} decodes to its expected JSON`, () => {
      const { payload, expected } = fixture(layout);
      const want: Expected = {
        ...expected,
        events: expected.events.map((e) => ({
          ...e,
          ...(e.block_hashes && { block_hashes: e.block_hashes.map((h) => expectedHash(h, expected.hash_kind)) }),
          ...(e.parent_block_hash && { parent_block_hash: expectedHash(e.parent_block_hash, expected.hash_kind) }),
        })),
      };
      expect(asExpected(decodeKvEventBatch(payload))).toEqual(want);
    });
  }

  it("every layout carries the same scenario: the same hashes, tokens and block size", () => {
    const decoded = LAYOUTS.map((l) => asExpected(decodeKvEventBatch(fixture(l).payload)).events);
    for (const events of decoded) expect(events).toEqual(decoded[0]);
  });

  it("keeps the medium (absent before v2) and the LoRA fields", () => {
    const media = LAYOUTS.map((l) => {
      const [stored, , removed] = decodeKvEventBatch(fixture(l).payload).events;
      return [stored?.type === "BlockStored" && stored.medium, removed?.type === "BlockRemoved" && removed.medium];
    });
    expect(media).toEqual([[null, null], ["GPU", "GPU"], ["GPU", "GPU"], ["GPU", "GPU"], ["GPU", "GPU"]]);
    const first = decodeKvEventBatch(fixture("v3").payload).events[0]!;
    expect(first).toMatchObject({ loraId: null, loraName: null });
    expect(decodeKvEventBatch(fixture("v1").payload).ts).toBe(1764300000.25);
  });
});

describe("hash encodings and newer fields", () => {
  const tokens = Array.from({ length: 16 }, (_, i) => i * 7);

  it("signed 64-bit hashes map to their u64 two's complement, in integers of every width", () => {
    const batch = decodeKvEventBatch(
      packr.pack([1.5, [["BlockRemoved", [-1, -2n, -(2 ** 40), 2 ** 40, 0, 12345678901234567890n, -(2n ** 63n)], "GPU"]]]),
    );
    const e = batch.events[0]!;
    expect(e.type).toBe("BlockRemoved");
    if (e.type !== "BlockRemoved") return;
    expect(Array.from(e.blockHashes)).toEqual([
      2n ** 64n - 1n,
      2n ** 64n - 2n,
      2n ** 64n - 2n ** 40n,
      2n ** 40n,
      0n,
      12345678901234567890n,
      2n ** 63n,
    ]);
    expect(batch.hashKind).toBe("uint64");
  });

  it("ignores fields it does not know, after lora_name and in maps", () => {
    const arrayForm = packr.pack([
      2.0,
      [["BlockStored", [7n], null, tokens, 16, null, "GPU", "adapter", [["mm", 1]], 3, "full", null]],
      0,
    ]);
    const mapForm = packr.pack([
      2.0,
      [{ type: "BlockStored", block_hashes: [7n], parent_block_hash: null, token_ids: tokens, block_size: 16, lora_id: 1, medium: "GPU", lora_name: "adapter", extra_keys: null, group_idx: 3, kv_cache_spec_kind: "full" }],
      0,
    ]);
    for (const payload of [arrayForm, mapForm]) {
      const [e] = decodeKvEventBatch(payload).events;
      expect(e).toMatchObject({ type: "BlockStored", parentBlockHash: null, blockSize: 16, medium: "GPU", loraName: "adapter" });
      if (e?.type === "BlockStored") expect(Array.from(e.tokenIds)).toEqual(tokens);
    }
  });

  it("keeps an event with an unknown tag as Unknown, and decodes the rest", () => {
    const batch = decodeKvEventBatch(packr.pack([1, [["BlockPromoted", [1n]], ["AllBlocksCleared"], { type: "Other" }]]));
    expect(batch.events).toEqual([{ type: "Unknown", tag: "BlockPromoted" }, { type: "AllBlocksCleared" }, { type: "Unknown", tag: "Other" }]);
  });

  it("reads a digest of any length from 8 bytes by its last 8 bytes", () => {
    const digest = new Uint8Array(16).map((_, i) => i + 1);
    const [e] = decodeKvEventBatch(packr.pack([1, [["BlockRemoved", [digest]]]])).events;
    expect(e?.type === "BlockRemoved" && e.blockHashes[0]).toBe(0x090a0b0c0d0e0f10n);
  });
});

describe("malformed payloads are rejected with what is wrong and where", () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ["empty", new Uint8Array(0), /payload: empty/],
    ["truncated MessagePack", Buffer.from([0x93, 0x01]), /payload: not valid MessagePack/],
    ["not an array", packr.pack("hello"), /batch: expected an array or a map, got the string "hello"/],
    ["too short", packr.pack([1]), /batch: expected \[ts, events, data_parallel_rank\?\], got an array of 1/],
    ["ts not a number", packr.pack(["x", []]), /batch\.ts: expected a number/],
    ["events not an array", packr.pack([1, 5]), /batch\.events: expected an array, got number 5/],
    ["event not an event", packr.pack([1, [7]]), /events\[0\]: expected an event/],
    ["tag not a string", packr.pack([1, [[5, []]]]), /events\[0\]\.type: expected the event's tag as a string/],
    ["hash a string", packr.pack([1, [["BlockRemoved", ["abc"]]]]), /events\[0\]\.block_hashes\[0\]: expected a block hash/],
    ["hash a fraction", packr.pack([1, [["BlockRemoved", [1.5]]]]), /block_hashes\[0\]: expected an integer block hash, got 1\.5/],
    ["hash too short a digest", packr.pack([1, [["BlockRemoved", [new Uint8Array(4)]]]]), /needs at least 8 bytes, got 4/],
    ["hashes not an array", packr.pack([1, [["BlockRemoved", 3]]]), /events\[0\]\.block_hashes: expected an array of block hashes/],
    ["token id negative", packr.pack([1, [["BlockStored", [1n], null, [1, -2], 1, null]]]), /events\[0\]\.token_ids\[1\]: expected a token id/],
    ["token id too big", packr.pack([1, [["BlockStored", [1n], null, [2 ** 32], 1, null]]]), /token_ids\[0\]: expected a token id/],
    ["block size zero", packr.pack([1, [["BlockStored", [1n], null, [1], 0, null]]]), /events\[0\]\.block_size: expected a positive integer, got 0/],
    ["block size missing", packr.pack([1, [["BlockStored", [1n], null, [1]]]]), /events\[0\]\.block_size: expected an integer, got nothing/],
    ["medium not a string", packr.pack([1, [["BlockRemoved", [1n], 3]]]), /events\[0\]\.medium: expected a string, got number 3/],
    ["rank not an integer", packr.pack([1, [], "zero"]), /batch\.data_parallel_rank: expected an integer/],
    ["second event bad", packr.pack([1, [["AllBlocksCleared"], ["BlockRemoved", [true]]]]), /events\[1\]\.block_hashes\[0\]/],
  ];
  for (const [what, payload, message] of cases) {
    it(what, () => {
      let error: unknown;
      try {
        decodeKvEventBatch(payload);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(KvEventDecodeError);
      expect((error as Error).message).toMatch(message);
    });
  }

  it("a payload that is not bytes", () => {
    expect(() => decodeKvEventBatch("x" as unknown as Uint8Array)).toThrow(/payload: expected bytes/);
  });
});
