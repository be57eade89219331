// Prompts that arrive together: the order they are decided in, the order they are sent in, and the
// routing core deciding them, against simple references.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { cacheLead, decisionOrder, RoutingCore, Scheduler, type RoutablePrompt } from "../../../src/router/schedule/index.js";

const prompt = (tokens: number, overlaps: number[]): RoutablePrompt => ({ promptTokens: tokens, blocks: Math.floor(tokens / 16), overlaps });

function core(engines: number, o: { decideTogether?: boolean; policy?: "kv" | "least-loaded" } = {}): RoutingCore {
  const scheduler = new Scheduler({ random: () => 0, ...o });
  for (let e = 0; e < engines; e++) scheduler.setAvailable(e, true);
  return new RoutingCore({ scheduler, cachedTokensFallback: "router", blockSize: () => 16 });
}

describe("cache lead", () => {
  it("is the best engine's overlap over the second best's, among the engines given, at most the prompt's blocks", () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 300 }), { minLength: 1, maxLength: 8 }), fc.integer({ min: 16, max: 4096 }), fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }), (overlaps, tokens, on) => {
        const p = prompt(tokens, overlaps);
        const engines = overlaps.map((_, e) => e).filter((e) => on[e]);
        // The reference: sort the capped overlaps of the engines given.
        const sorted = engines.map((e) => Math.min(overlaps[e]!, p.blocks)).sort((a, b) => b - a);
        expect(cacheLead(p, engines)).toBe((sorted[0] ?? 0) - (sorted[1] ?? 0));
      }),
    );
  });
});

describe("decision order", () => {
  it("puts the largest cache lead first and keeps arrival order among equals", () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.nat({ max: 64 }), { minLength: 3, maxLength: 3 }), { maxLength: 30 }), (overlapSets) => {
        const prompts = overlapSets.map((o) => prompt(64 * 16, o));
        const order = decisionOrder(prompts, [0, 1, 2]);
        expect([...order].sort((a, b) => a - b)).toEqual(prompts.map((_, i) => i));
        const lead = (i: number) => cacheLead(prompts[i]!, [0, 1, 2]);
        for (let k = 1; k < order.length; k++) {
          const [a, b] = [order[k - 1]!, order[k]!];
          expect(lead(a) > lead(b) || (lead(a) === lead(b) && a < b)).toBe(true);
        }
      }),
    );
  });
});

describe("deciding prompts together", () => {
  it("lets the prompt with the most cache to lose decide first, and sends shortest first", () => {
    const c = core(2);
    // Arrival order: a short prompt cached nowhere, then a long one with 400 blocks cached on engine 0.
    // Decided in arrival order, the short one would take engine 0 (both idle, a tie broken to the lower
    // number) and the long one would wait behind it or compute its prefix again on engine 1.
    const short = prompt(1600, [0, 0]);
    const long = prompt(8000, [400, 0]);
    const alone = core(2, { decideTogether: false }).beginTogether([short, long]);
    expect(alone.map((a) => a!.engine)).toEqual([0, 1]);
    const attempts = c.beginTogether([short, long]);
    expect(attempts.map((a) => a!.engine)).toEqual([1, 0]);
    expect(attempts.map((a) => a!.overlapBlocks)).toEqual([0, 400]);
    // The long one computes 1,600 tokens; the short one all of its 1,600 too, then the order is arrival.
    expect(c.sendOrder(attempts)).toEqual([0, 1]);
    const both = c.beginTogether([prompt(3200, [0, 0]), prompt(1600, [0, 0])]);
    expect(c.sendOrder(both)).toEqual([1, 0]);
  });

  it("books each decision before the next, so prompts cached on one engine spread when its queue grows", () => {
    const c = core(2);
    const prompts = Array.from({ length: 6 }, () => prompt(32_000, [100, 0]));
    const attempts = c.beginTogether(prompts);
    const on0 = attempts.filter((a) => a!.engine === 0).length;
    expect(on0).toBeGreaterThan(0);
    expect(on0).toBeLessThan(6);
    const load = [0, 1].map((e) => c.scheduler.active.load(e).requests);
    expect(load[0]! + load[1]!).toBe(6);
    for (const a of attempts) a!.release();
    expect(c.scheduler.active.load(0).requests + c.scheduler.active.load(1).requests).toBe(0);
  });

  it("sends in the order of the fewest tokens to compute, whatever the engines, and none last", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 200 }), fc.nat({ max: 200 })), { minLength: 1, maxLength: 12 }), (specs) => {
        const c = core(3);
        const prompts = specs.map(([blocks, cached]) => prompt(blocks * 16, [Math.min(cached, blocks), 0, 0]));
        const attempts = c.beginTogether(prompts);
        const order = c.sendOrder(attempts);
        expect([...order].sort((a, b) => a - b)).toEqual(prompts.map((_, i) => i));
        const tokens = (i: number) => attempts[i]!.decision.chosen.features.uncachedTokens;
        for (let k = 1; k < order.length; k++) expect(tokens(order[k - 1]!) <= tokens(order[k]!)).toBe(true);
        for (const a of attempts) a!.release();
      }),
      { numRuns: 50 },
    );
  });

  it("takes other policies, and kv when turned off, in arrival order", () => {
    for (const c of [core(2, { policy: "least-loaded" }), core(2, { decideTogether: false })]) {
      expect(c.scheduler.decideTogether).toBe(false);
      const attempts = c.beginTogether([prompt(3200, [0, 0]), prompt(1600, [100, 0])]);
      expect(c.sendOrder(attempts)).toEqual([0, 1]);
    }
  });

  it("gives null where no engine is available, and refuses a fleet with engine roles", () => {
    const none = core(0);
    expect(none.beginTogether([prompt(160, [])])).toEqual([null]);
    expect(none.sendOrder([null])).toEqual([0]);
    const scheduler = new Scheduler();
    scheduler.setAvailable(0, true);
    scheduler.setAvailable(1, true);
    const split = new RoutingCore({ scheduler, cachedTokensFallback: "router", blockSize: () => 16, roles: ["prefill", "decode"] });
    expect(() => split.beginTogether([prompt(160, [0, 0])])).toThrow(/engine roles/);
  });
});
