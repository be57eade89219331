// The simulator's KV events handed to the applier directly must be the events the wire would carry.
import { expect, it } from "vitest";
import { decodeKvEventBatch, type KvEvent } from "../../../src/router/kv-index/kv-events/decode.js";
import { toKvEvents } from "../../../src/tools/policy-sim/kv-adapter.js";
import { EngineCore } from "../../../src/mock-engine/core.js";
import { encodeKvEventBatch } from "../../../src/mock-engine/kv-event-encoder.js";
import type { SimKvEvent } from "../../../src/mock-engine/kv-events.js";

/** Events with consecutive removals joined, as plain values to compare. */
function canonical(events: readonly KvEvent[]): unknown[] {
  const out: unknown[] = [];
  for (const e of events) {
    const last = out[out.length - 1] as { type: string; blockHashes: bigint[] } | undefined;
    if (e.type === "BlockRemoved" && last?.type === "BlockRemoved") last.blockHashes.push(...e.blockHashes);
    else if (e.type === "BlockRemoved") out.push({ ...e, blockHashes: [...e.blockHashes] });
    else if (e.type === "BlockStored") out.push({ ...e, blockHashes: [...e.blockHashes], tokenIds: [...e.tokenIds] });
    else out.push(e);
  }
  return out;
}

it("gives the applier what encoding and decoding would, with consecutive removals merged", () => {
  const batches: SimKvEvent[][] = [];
  // A 40-block cache and prompts of 20 blocks sharing their first 8: the engine stores, reuses and evicts.
  const core = new EngineCore({ numBlocks: 40, maxModelLen: 512, kvEventSink: (b) => batches.push([...b]) });
  for (let i = 0; i < 8; i++) {
    const prompt = Array.from({ length: 320 }, (_, k) => (k < 128 ? k + 1 : 1000 + i * 1000 + k));
    core.add({ id: i, promptTokenIds: prompt, sampling: { maxTokens: 4, ignoreEos: true } });
    while (core.hasWork) core.step();
  }
  expect(batches.flat().filter((e) => e.type === "BlockRemoved").length).toBeGreaterThan(20);

  let merged = 0;
  for (const batch of batches) {
    const direct = toKvEvents(batch);
    const wire = decodeKvEventBatch(encodeKvEventBatch(0, batch, 0, "array")).events;
    expect(canonical(direct)).toEqual(canonical(wire));
    for (let i = 1; i < direct.length; i++) expect(direct[i]!.type === "BlockRemoved" && direct[i - 1]!.type === "BlockRemoved").toBe(false);
    merged += wire.length - direct.length;
  }
  expect(merged).toBeGreaterThan(0);
});
