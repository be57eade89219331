import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import {
  createBlockHasher,
  decodeKvEventBatch,
  KvEventApplier,
  PrefixIndex,
  rootSeed,
  type BlockHasher,
  type BlockRemovedEvent,
  type BlockStoredEvent,
} from "../../../../src/index.js";
import { packageRoot } from "../../../../src/util/package-root.js";
import { audit } from "../prefix-index/audit.js";

const MODEL = "Qwen/Qwen3-0.6B";
const BS = 16;
let hasher: BlockHasher;

beforeAll(async () => {
  hasher = await createBlockHasher();
});

function setup(options: ConstructorParameters<typeof KvEventApplier>[2] = {}, dataParallelSize = 1) {
  const index = PrefixIndex.create({ capacity: 4096, maxEngines: 8 });
  const applier = new KvEventApplier(index, hasher, options);
  applier.addEngine(3, { model: MODEL, blockSize: BS, dataParallelSize });
  return { index, applier };
}

function tokens(n: number, from = 1): Uint32Array {
  return Uint32Array.from({ length: n }, (_, i) => (from + i) * 2654435761 >>> 8);
}

/** The router's hashes of a prompt, as a request would compute them. */
function routerHashes(prompt: Uint32Array, loraName?: string): BigUint64Array {
  return hasher.hashBlocks(prompt, BS, rootSeed({ model: MODEL, loraName }));
}

function stored(engineHashes: bigint[], tokenIds: Uint32Array, parent: bigint | null, extra: Partial<BlockStoredEvent> = {}): BlockStoredEvent {
  return {
    type: "BlockStored",
    blockHashes: BigUint64Array.from(engineHashes),
    parentBlockHash: parent,
    tokenIds,
    blockSize: BS,
    loraId: null,
    medium: null,
    loraName: null,
    ...extra,
  };
}

function removed(engineHashes: bigint[], medium: string | null = null): BlockRemovedEvent {
  return { type: "BlockRemoved", blockHashes: BigUint64Array.from(engineHashes), medium };
}

describe("the golden scenario, event by event", () => {
  for (const layout of ["v1", "v2", "v3", "v4", "v4b"]) {
    it(`batch-${layout}`, () => {
      const payload = readFileSync(join(packageRoot(), "test", "fixtures", "vllm-kv-events", `batch-${layout}.msgpack`));
      const { events } = decodeKvEventBatch(payload);
      const first = events[0] as BlockStoredEvent;
      const second = events[1] as BlockStoredEvent;
      const { index, applier } = setup();
      // A request whose prompt is event 1's tokens, then one whose prompt continues block 2 with event 2's.
      const promptA = routerHashes(first.tokenIds);
      const promptB = routerHashes(Uint32Array.from([...first.tokenIds.subarray(0, 32), ...second.tokenIds]));

      applier.apply(3, [events[0]!]);
      expect(index.overlaps(promptA)[3]).toBe(3);
      expect(index.overlaps(promptB)[3]).toBe(2);
      applier.apply(3, [events[1]!]);
      expect(index.overlaps(promptB)[3]).toBe(3);
      expect(index.size).toBe(4);
      applier.apply(3, [events[2]!]);
      expect(index.overlaps(promptA)[3]).toBe(2);
      expect(index.overlaps(promptB)[3]).toBe(3);
      applier.apply(3, [events[3]!]);
      expect(index.overlaps(promptB)[3]).toBe(0);
      expect(index.size).toBe(0);
      expect(applier.counters).toMatchObject({ eventsBlockStored: 2, eventsBlockRemoved: 1, eventsAllBlocksCleared: 1, blocksStored: 4, blocksRemoved: 1, unknownParent: 0, unknownBlock: 0 });
      expect(audit(index)).toEqual([]);
    });
  }
});

describe("events that cannot be applied are counted and skipped", () => {
  it("an unknown parent skips the event; an unknown block in a removal is skipped alone", () => {
    const { index, applier } = setup();
    applier.apply(3, [stored([10n], tokens(16), 999n)]);
    expect(applier.counters.unknownParent).toBe(1);
    expect(index.size).toBe(0);
    applier.apply(3, [stored([10n, 11n], tokens(32), null), removed([11n, 12n, 11n])]);
    expect(applier.counters.unknownBlock).toBe(2); // 12 never stored; 11 already removed
    expect(index.overlaps(routerHashes(tokens(32)))[3]).toBe(1);
  });

  it("a block size or token count that does not fit, and a LoRA id without a name", () => {
    const { index, applier } = setup();
    applier.apply(3, [
      stored([1n], tokens(32), null, { blockSize: 32 }),
      stored([1n, 2n], tokens(31), null),
      stored([1n], tokens(16), null, { loraId: 4 }),
      { type: "Unknown", tag: "BlockPromoted" },
    ]);
    expect(applier.counters).toMatchObject({ blockSizeMismatch: 1, tokenCountMismatch: 1, unknownLora: 1, eventsUnknown: 1 });
    expect(index.size).toBe(0);
  });

  it("a LoRA name seeds the chain like a request for that adapter", () => {
    const { index, applier } = setup();
    applier.apply(3, [stored([1n, 2n], tokens(32), null, { loraId: 4, loraName: "sql" })]);
    expect(index.overlaps(routerHashes(tokens(32), "sql"))[3]).toBe(2);
    expect(index.overlaps(routerHashes(tokens(32)))[3]).toBe(0);
  });
});

describe("media", () => {
  it("only GPU blocks (or no medium) count by default; the other media are tracked per rank", () => {
    const { index, applier } = setup();
    const prompt = tokens(48);
    applier.apply(3, [stored([1n, 2n], prompt.subarray(0, 32), null, { medium: "CPU" })]);
    expect(index.overlaps(routerHashes(prompt))[3]).toBe(0);
    // A CPU block still resolves as a parent, so a GPU child gets the right router hash.
    applier.apply(3, [stored([3n], prompt.subarray(32), 2n, { medium: "GPU" })]);
    expect(index.holders(routerHashes(prompt)[2]!)).toEqual([3]);
    applier.apply(3, [stored([1n, 2n], prompt.subarray(0, 32), null, { medium: "GPU" })]);
    expect(index.overlaps(routerHashes(prompt))[3]).toBe(3);
    expect(applier.rankStats(3)).toEqual([{ rank: 0, blocks: 3, media: { GPU: 3, CPU: 2, DISK: 0, OTHER: 0 } }]);
    // Leaving the GPU leaves the index; the CPU copy stays on record.
    applier.apply(3, [removed([2n], "GPU")]);
    expect(index.overlaps(routerHashes(prompt))[3]).toBe(1);
    expect(applier.rankStats(3)[0]!.media).toEqual({ GPU: 2, CPU: 2, DISK: 0, OTHER: 0 });
    applier.apply(3, [removed([1n, 2n], "CPU")]);
    expect(applier.rankStats(3)[0]).toEqual({ rank: 0, blocks: 2, media: { GPU: 2, CPU: 0, DISK: 0, OTHER: 0 } });
  });

  it("with countedMedia 'all', a CPU block counts as held until its last copy goes", () => {
    const { index, applier } = setup({ countedMedia: "all" });
    const prompt = tokens(16);
    applier.apply(3, [stored([1n], prompt, null, { medium: "CPU" }), stored([1n], prompt, null, { medium: "GPU" })]);
    expect(index.overlaps(routerHashes(prompt))[3]).toBe(1);
    applier.apply(3, [removed([1n], "GPU")]);
    expect(index.overlaps(routerHashes(prompt))[3]).toBe(1);
    applier.apply(3, [removed([1n], "CPU")]);
    expect(index.overlaps(routerHashes(prompt))[3]).toBe(0);
    expect(() => setup({ countedMedia: ["TAPE"] })).toThrow(/unknown medium "TAPE"/);
  });

  it("two copies of one block (two requests computed it at once) need two removals", () => {
    const { index, applier } = setup();
    const prompt = tokens(16);
    applier.apply(3, [stored([1n], prompt, null), stored([1n], prompt, null), removed([1n])]);
    expect(index.overlaps(routerHashes(prompt))[3]).toBe(1);
    applier.apply(3, [removed([1n])]);
    expect(index.overlaps(routerHashes(prompt))[3]).toBe(0);
  });
});

describe("data-parallel ranks are one engine", () => {
  it("a block is held while any rank holds it; dropping one rank keeps the others' blocks", () => {
    const { index, applier } = setup({}, 2);
    const prompt = tokens(32);
    applier.apply(3, [stored([1n, 2n], prompt, null)], 0);
    applier.apply(3, [stored([71n], prompt.subarray(0, 16), null)], 1);
    applier.apply(3, [removed([1n, 2n])], 0);
    expect(index.overlaps(routerHashes(prompt))[3]).toBe(1);
    applier.apply(3, [stored([1n, 2n], prompt, null)], 0);
    applier.drop(3, 1);
    expect(index.overlaps(routerHashes(prompt))[3]).toBe(2);
    applier.drop(3, 0);
    expect(index.overlaps(routerHashes(prompt))[3]).toBe(0);
    expect(applier.counters.drops).toBe(2);
    expect(() => applier.apply(3, [], 2)).toThrow(/rank 2 is out of range/);
    expect(audit(index)).toEqual([]);
  });
});

describe("bounds and lifecycle", () => {
  it("a rank whose map outgrows maxBlocksPerRank is dropped", () => {
    const { index, applier } = setup({ maxBlocksPerRank: 4 });
    applier.apply(3, [stored([1n, 2n, 3n], tokens(48), null)]);
    expect(index.size).toBe(3);
    applier.apply(3, [stored([4n, 5n], tokens(32, 100), 3n)]);
    expect(applier.counters.mapOverflows).toBe(1);
    expect(index.size).toBe(0);
    expect(applier.rankStats(3)[0]!.blocks).toBe(0);
  });

  it("removing an engine drops its entries and forgets it; others are untouched", () => {
    const { index, applier } = setup();
    applier.addEngine(5, { model: MODEL, blockSize: BS });
    applier.apply(3, [stored([1n], tokens(16), null)]);
    applier.apply(5, [stored([9n], tokens(16), null)]);
    applier.removeEngine(3);
    expect(index.holders(routerHashes(tokens(16))[0]!)).toEqual([5]);
    expect(() => applier.apply(3, [])).toThrow(/engine 3 is not added/);
    expect(() => applier.addEngine(5, { model: MODEL, blockSize: BS })).toThrow(/already added/);
    expect(() => applier.addEngine(8, { model: MODEL, blockSize: BS })).toThrow(/engine must be an integer from 0 to 7/);
    expect(() => new KvEventApplier(PrefixIndex.attach(index.shared), hasher)).toThrow(/writing PrefixIndex/);
    expect(() => new KvEventApplier(index, hasher, { maxBlocksPerRank: 0 })).toThrow(/maxBlocksPerRank must be a positive integer, got 0/);
  });

  it("an engine hash reused for other tokens replaces the old block", () => {
    const { index, applier } = setup();
    applier.apply(3, [stored([1n], tokens(16), null), stored([1n], tokens(16, 500), null)]);
    expect(index.overlaps(routerHashes(tokens(16)))[3]).toBe(0);
    expect(index.overlaps(routerHashes(tokens(16, 500)))[3]).toBe(1);
    expect(applier.rankStats(3)[0]!.media.GPU).toBe(1);
  });
});
