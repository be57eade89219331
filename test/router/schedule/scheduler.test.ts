import { describe, expect, it } from "vitest";
import { Scheduler } from "../../../src/router/schedule/index.js";

/** A seeded generator, so random tie-breaks are reproducible. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function withEngines(n: number, options: ConstructorParameters<typeof Scheduler>[0] = {}): Scheduler {
  const s = new Scheduler({ random: lcg(1), ...options });
  for (let e = 0; e < n; e++) s.setAvailable(e, true);
  return s;
}

describe("kv policy cost", () => {
  it("cost = overlap_weight × (new prompt blocks + booked prefill) + booked decode blocks", () => {
    const s = withEngines(2, { overlapWeight: 2 });
    // Engine 1 already has a request in prefill (10 new blocks) and one decoding (20 tokens / 16 = 2 blocks).
    s.active.book(1, 160, 10, 16);
    s.active.book(1, 20, 2, 16).started();
    const d = s.decide(8, [0, 5])!;
    const [e0, e1] = d.scored;
    expect(e0).toMatchObject({ engine: 0, overlapBlocks: 0, cost: 2 * 8, activeBlocks: 0 });
    expect(e1).toMatchObject({ engine: 1, overlapBlocks: 5, cost: 2 * (8 - 5 + 10) + 2, activeBlocks: 12 });
    expect(d.engine).toBe(0);
  });

  it("prefers the engine holding the prefix when loads are equal", () => {
    const s = withEngines(4);
    expect(s.decide(10, [0, 0, 7, 3])!.engine).toBe(2);
  });

  it("load outweighs a small overlap", () => {
    const s = withEngines(2);
    for (let i = 0; i < 5; i++) s.active.book(0, 160, 10, 16);
    expect(s.decide(10, [2, 0])!.engine).toBe(1);
  });

  it("caps an overlap above the prompt length (an engine holding a longer prefix)", () => {
    const s = withEngines(1);
    expect(s.decide(4, [9])!.overlapBlocks).toBe(4);
  });

  it("breaks cost ties by fewest active blocks, then at random over the rest", () => {
    const s = withEngines(3, { overlapWeight: 0 });
    s.active.book(0, 16, 1, 16); // prefill only: zero cost at weight 0, but one active block
    const seen = new Set<number>();
    for (let i = 0; i < 50; i++) seen.add(s.decide(4, [0, 0, 0])!.engine);
    expect(seen).toEqual(new Set([1, 2]));
  });

  it("temperature above 0 samples every engine, cheaper ones more often", () => {
    const s = withEngines(2, { temperature: 0.5 });
    const counts = [0, 0];
    for (let i = 0; i < 2000; i++) counts[s.decide(10, [10, 0])!.engine]!++;
    // Normalized costs 0 and 1: weights 1 and e^-2, so engine 1 gets about 12%.
    expect(counts[0]! / 2000).toBeGreaterThan(0.8);
    expect(counts[1]! / 2000).toBeGreaterThan(0.05);
  });

  it("skips unavailable and excluded engines, and returns null when none is left", () => {
    const s = withEngines(3);
    s.setAvailable(2, false);
    expect(s.decide(5, [0, 0, 5])!.engine).not.toBe(2);
    expect(s.decide(5, [5, 0, 0], new Set([0]))!.engine).toBe(1);
    expect(s.decide(5, [0, 0, 0], new Set([0, 1]))).toBeNull();
  });

  it("rejects a negative weight or temperature", () => {
    expect(() => new Scheduler({ overlapWeight: -1 })).toThrow(/overlap weight/);
    expect(() => new Scheduler({ temperature: Number.NaN })).toThrow(/temperature/);
  });
});

describe("bookings", () => {
  it("move from prefill to decode on the first token, grow with tokens, and free once", () => {
    const s = withEngines(1);
    const d = s.decide(10, [4])!;
    const b = s.book(d, 170, 10, 16);
    expect(s.active.load(0)).toEqual({ prefillBlocks: 6, decodeBlocks: 0, requests: 1 });
    b.started();
    expect(s.active.load(0)).toEqual({ prefillBlocks: 0, decodeBlocks: 11, requests: 1 }); // ceil(170/16)
    b.generated(6);
    expect(s.active.load(0).decodeBlocks).toBe(11); // 176 tokens: still 11 blocks
    b.generated(1);
    expect(s.active.load(0).decodeBlocks).toBe(12);
    b.release();
    b.release();
    expect(s.active.load(0)).toEqual({ prefillBlocks: 0, decodeBlocks: 0, requests: 0 });
  });

  it("free a request that never produced a token", () => {
    const s = withEngines(1);
    const b = s.book(s.decide(3, [0])!, 48, 3, 16);
    b.release();
    b.started(); // late events after release change nothing
    b.generated(5);
    expect(s.active.load(0)).toEqual({ prefillBlocks: 0, decodeBlocks: 0, requests: 0 });
  });
});

describe("baseline policies", () => {
  it("round-robin cycles through available engines regardless of the cache", () => {
    const s = withEngines(3, { policy: "round-robin" });
    expect([0, 1, 2, 3].map(() => s.decide(5, [5, 0, 0])!.engine)).toEqual([0, 1, 2, 0]);
  });

  it("least-loaded picks the fewest booked blocks", () => {
    const s = withEngines(2, { policy: "least-loaded" });
    s.active.book(0, 32, 2, 16);
    expect(s.decide(5, [5, 0])!.engine).toBe(1);
  });

  it("random spreads over all engines", () => {
    const s = withEngines(4, { policy: "random" });
    const seen = new Set<number>();
    for (let i = 0; i < 100; i++) seen.add(s.decide(5, [5, 0, 0, 0])!.engine);
    expect(seen.size).toBe(4);
  });
});
