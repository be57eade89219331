import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { encodeKvEventBatch, type SimKvEvent } from "../../src/index.js";
import { decodeBatch } from "./kv-event-test-decoder.js";

const FIXTURES = join(import.meta.dirname, "..", "fixtures", "vllm-kv-events");

interface GoldenEvent {
  type: string;
  block_hashes?: string[];
  parent_block_hash?: string | null;
  token_ids?: number[];
  block_size?: number;
}

function goldenEvents(name: string): SimKvEvent[] {
  const json = JSON.parse(readFileSync(join(FIXTURES, `${name}.json`), "utf8")) as { events: GoldenEvent[] };
  return json.events.map((e): SimKvEvent => {
    if (e.type === "BlockStored") {
      return {
        type: "BlockStored",
        blockHashes: e.block_hashes!.map(BigInt),
        parentBlockHash: e.parent_block_hash ? BigInt(e.parent_block_hash) : null,
        tokenIds: e.token_ids!,
        blockSize: e.block_size!,
        loraName: null,
        medium: "GPU",
      };
    }
    if (e.type === "BlockRemoved") return { type: "BlockRemoved", blockHashes: e.block_hashes!.map(BigInt), medium: "GPU" };
    return { type: "AllBlocksCleared" };
  });
}

// The golden payloads were produced by vLLM's publisher; the timestamp and rank are the ones they carry.
describe("encodeKvEventBatch", () => {
  it("writes the array layout byte for byte as vLLM does (batch-v3)", () => {
    const bytes = encodeKvEventBatch(1764300000.25, goldenEvents("batch-v3"), 0, "array");
    expect(Buffer.compare(bytes, readFileSync(join(FIXTURES, "batch-v3.msgpack")))).toBe(0);
  });

  it("writes the map layout byte for byte as vLLM does (batch-v4)", () => {
    const bytes = encodeKvEventBatch(1764300000.25, goldenEvents("batch-v4"), 0, "map");
    expect(Buffer.compare(bytes, readFileSync(join(FIXTURES, "batch-v4.msgpack")))).toBe(0);
  });

  it("writes small hashes, LoRA names and long token lists in msgpack's smallest forms, readable by any decoder", () => {
    const events: SimKvEvent[] = [
      { type: "BlockStored", blockHashes: [5n, 2n ** 64n - 1n], parentBlockHash: 300n, tokenIds: Array.from({ length: 70_000 }, (_, i) => i), blockSize: 16, loraName: "x".repeat(300), medium: "GPU" },
    ];
    for (const layout of ["array", "map"] as const) {
      const decoded = decodeBatch(encodeKvEventBatch(1.5, events, 3, layout));
      expect(decoded.ts).toBe(1.5);
      expect(decoded.dataParallelRank).toBe(3);
      const e = decoded.events[0]!;
      expect(e.type).toBe("BlockStored");
      if (e.type !== "BlockStored") return;
      expect(e.blockHashes).toEqual([5n, 2n ** 64n - 1n]);
      expect(e.parent).toBe(300n);
      expect(e.tokenIds).toHaveLength(70_000);
      expect(e.tokenIds[69_999]).toBe(69_999);
      expect(e.loraName).toBe("x".repeat(300));
    }
  });
});
