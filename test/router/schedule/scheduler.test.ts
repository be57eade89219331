import { describe, expect, it } from "vitest";
import { Scheduler, type Decision } from "../../../src/router/schedule/index.js";

/** A seeded generator, so random tie-breaks are reproducible. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function withEngines(n: number, options: ConstructorParameters<typeof Scheduler>[0] = {}): Scheduler {
  const s = new Scheduler({ random: lcg(1), policy: "kv-blocks", ...options });
  for (let e = 0; e < n; e++) s.setAvailable(e, true);
  return s;
}

/** A prompt of `blocks` full 16-token blocks. */
function decide(s: Scheduler, blocks: number, overlaps: number[], exclude?: ReadonlySet<number>): Decision | null {
  return s.decide({ promptTokens: blocks * 16, blocks, overlaps }, 16, exclude);
}

describe("kv-blocks policy cost", () => {
  it("cost = overlap_weight × (new prompt blocks + booked prefill) + booked decode blocks", () => {
    const s = withEngines(2, { overlapWeight: 2 });
    // Engine 1 already has a request in prefill (10 new blocks) and one decoding (20 tokens / 16 = 2 blocks).
    s.active.book(1, 160, 10, 16);
    s.active.book(1, 20, 2, 16).started();
    const d = decide(s, 8, [0, 5])!;
    const [e0, e1] = d.scored;
    expect(e0).toMatchObject({ engine: 0, overlapBlocks: 0, cost: 2 * 8, activeBlocks: 0 });
    expect(e1).toMatchObject({ engine: 1, overlapBlocks: 5, cost: 2 * (8 - 5 + 10) + 2, activeBlocks: 12 });
    expect(d.engine).toBe(0);
  });

  it("prefers the engine holding the prefix when loads are equal", () => {
    const s = withEngines(4);
    expect(decide(s, 10, [0, 0, 7, 3])!.engine).toBe(2);
  });

  it("load outweighs a small overlap", () => {
    const s = withEngines(2);
    for (let i = 0; i < 5; i++) s.active.book(0, 160, 10, 16);
    expect(decide(s, 10, [2, 0])!.engine).toBe(1);
  });

  it("caps an overlap above the prompt length (an engine holding a longer prefix)", () => {
    const s = withEngines(1);
    expect(decide(s, 4, [9])!.overlapBlocks).toBe(4);
  });

  it("breaks cost ties by fewest active blocks, then at random over the rest", () => {
    const s = withEngines(3, { overlapWeight: 0 });
    s.active.book(0, 16, 1, 16); // prefill only: zero cost at weight 0, but one active block
    const seen = new Set<number>();
    for (let i = 0; i < 50; i++) seen.add(decide(s, 4, [0, 0, 0])!.engine);
    expect(seen).toEqual(new Set([1, 2]));
  });

  it("temperature above 0 samples every engine, cheaper ones more often", () => {
    const s = withEngines(2, { temperature: 0.5 });
    const counts = [0, 0];
    for (let i = 0; i < 2000; i++) counts[decide(s, 10, [10, 0])!.engine]!++;
    // Normalized costs 0 and 1: weights 1 and e^-2, so engine 1 gets about 12%.
    expect(counts[0]! / 2000).toBeGreaterThan(0.8);
    expect(counts[1]! / 2000).toBeGreaterThan(0.05);
  });

  it("skips unavailable and excluded engines, and returns null when none is left", () => {
    const s = withEngines(3);
    s.setAvailable(2, false);
    expect(decide(s, 5, [0, 0, 5])!.engine).not.toBe(2);
    expect(decide(s, 5, [5, 0, 0], new Set([0]))!.engine).toBe(1);
    expect(decide(s, 5, [0, 0, 0], new Set([0, 1]))).toBeNull();
  });

  it("rejects a negative weight or temperature", () => {
    expect(() => new Scheduler({ overlapWeight: -1 })).toThrow(/overlap weight/);
    expect(() => new Scheduler({ temperature: Number.NaN })).toThrow(/temperature/);
  });
});

describe("bookings", () => {
  it("move from prefill to decode on the first token, grow with tokens, and free once", () => {
    const s = withEngines(1);
    const d = s.decide({ promptTokens: 170, blocks: 10, overlaps: [4] }, 16)!;
    const b = s.book(d, { promptTokens: 170, blocks: 10, overlaps: [4] }, 16);
    // 6 blocks to compute: 170 tokens less the 4 held blocks' 64.
    expect(s.active.load(0)).toEqual({ prefillBlocks: 6, prefillTokens: 106, decodeBlocks: 0, decodeRequests: 0, requests: 1 });
    b.started();
    expect(s.active.load(0)).toEqual({ prefillBlocks: 0, prefillTokens: 0, decodeBlocks: 11, decodeRequests: 1, requests: 1 }); // ceil(170/16)
    b.generated(6);
    expect(s.active.load(0).decodeBlocks).toBe(11); // 176 tokens: still 11 blocks
    b.generated(1);
    expect(s.active.load(0).decodeBlocks).toBe(12);
    b.release();
    b.release();
    expect(s.active.load(0)).toEqual({ prefillBlocks: 0, prefillTokens: 0, decodeBlocks: 0, decodeRequests: 0, requests: 0 });
  });

  it("free a request that never produced a token", () => {
    const s = withEngines(1);
    const b = s.book(decide(s, 3, [0])!, { promptTokens: 48, blocks: 3, overlaps: [0] }, 16);
    b.release();
    b.started(); // late events after release change nothing
    b.generated(5);
    expect(s.active.load(0)).toEqual({ prefillBlocks: 0, prefillTokens: 0, decodeBlocks: 0, decodeRequests: 0, requests: 0 });
  });
});

describe("baseline policies", () => {
  it("round-robin cycles through available engines regardless of the cache", () => {
    const s = withEngines(3, { policy: "round-robin" });
    expect([0, 1, 2, 3].map(() => decide(s, 5, [5, 0, 0])!.engine)).toEqual([0, 1, 2, 0]);
  });

  it("least-loaded picks the fewest booked blocks", () => {
    const s = withEngines(2, { policy: "least-loaded" });
    s.active.book(0, 32, 2, 16);
    expect(decide(s, 5, [5, 0])!.engine).toBe(1);
  });

  it("random spreads over all engines", () => {
    const s = withEngines(4, { policy: "random" });
    const seen = new Set<number>();
    for (let i = 0; i < 100; i++) seen.add(decide(s, 5, [5, 0, 0, 0])!.engine);
    expect(seen.size).toBe(4);
  });
});
