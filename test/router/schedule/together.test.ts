// Prompts that arrive together: the order they are decided in, the order they are sent in, the
// assignment improved as a whole, and the routing core deciding them, against simple references.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { burstCost, cacheLead, decisionOrder, improveAssignment, MAX_IMPROVED_BURST, placeInOrder, RoutingCore, Scheduler, slotCost, type BurstCosts, type RoutablePrompt } from "../../../src/router/schedule/index.js";

const prompt = (tokens: number, overlaps: number[]): RoutablePrompt => ({ promptTokens: tokens, blocks: Math.floor(tokens / 16), overlaps });

function core(engines: number, o: { decideTogether?: boolean; policy?: "kv" | "least-loaded"; evictionWeight?: number; temperature?: number } = {}): RoutingCore {
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

/** Costs linear in the tokens ahead: base + perToken × ahead, each prompt's tokens depending on the slot. */
const linearCosts = fc
  .record({ n: fc.integer({ min: 1, max: 6 }), engines: fc.integer({ min: 1, max: 3 }) })
  .chain(({ n, engines }) =>
    fc.record({
      engines: fc.constant(engines),
      base: fc.array(fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: engines, maxLength: engines }), { minLength: n, maxLength: n }),
      perToken: fc.array(fc.array(fc.integer({ min: 0, max: 4 }), { minLength: engines, maxLength: engines }), { minLength: n, maxLength: n }),
      tokens: fc.array(fc.array(fc.integer({ min: 0, max: 300 }), { minLength: engines, maxLength: engines }), { minLength: n, maxLength: n }),
      start: fc.array(fc.integer({ min: -1, max: engines - 1 }), { minLength: n, maxLength: n }),
    }),
  )
  .map(({ engines, base, perToken, tokens, start }) => {
    const costs: BurstCosts = { engines, cost: (i, k, ahead) => base[i]![k]! + perToken[i]![k]! * ahead, tokens: (i, k) => tokens[i]![k]! };
    return { costs, start };
  });

describe("improving a burst's assignment", () => {
  it("computes a slot's prompts fewest tokens first, each behind the tokens of those before it", () => {
    const costs: BurstCosts = { engines: 1, cost: (i, _k, ahead) => 10 * i + ahead, tokens: (i) => [300, 100, 200][i]! };
    // Order 1, 2, 0: 10 + 0, then 20 + 100, then 0 + 300.
    expect(slotCost(costs, 0, [0, 1, 2])).toBe(430);
    expect(burstCost(costs, [0, -1, 0])).toBe(slotCost(costs, 0, [0, 2]));
  });

  it("places each prompt in turn where it adds least to the cost of those placed before it, the lowest slot on a tie", () => {
    fc.assert(
      fc.property(linearCosts, fc.boolean(), ({ costs, start }, reversed) => {
        const n = start.length;
        const order = start.map((_, i) => (reversed ? n - 1 - i : i));
        const told: [number, number][] = [];
        const slots = placeInOrder(costs, n, order, (i, slot) => told.push([i, slot]));
        expect(told).toEqual(order.map((i) => [i, slots[i]!]));
        // The reference: replay the placements, trying every slot for each.
        const sofar = Array.from({ length: n }, () => -1);
        for (const i of order) {
          const added = Array.from({ length: costs.engines }, (_, k) => {
            const withIt = [...sofar];
            withIt[i] = k;
            return burstCost(costs, withIt) - burstCost(costs, sofar);
          });
          const least = Math.min(...added);
          expect(added[slots[i]!]).toBeCloseTo(least, 6);
          expect(added.findIndex((a) => a <= least + 1e-9)).toBe(slots[i]);
          sofar[i] = slots[i]!;
        }
      }),
      { numRuns: 300 },
    );
    expect(placeInOrder({ engines: 0, cost: () => 0, tokens: () => 0 }, 2, [0, 1])).toEqual([-1, -1]);
  });

  it("never ends worse than it starts, leaves no single move or swap that would lower the cost, and keeps left-out prompts out", () => {
    fc.assert(
      fc.property(linearCosts, ({ costs, start }) => {
        const slots = improveAssignment(costs, start);
        const cost = burstCost(costs, slots);
        expect(cost).toBeLessThanOrEqual(burstCost(costs, start));
        for (let i = 0; i < slots.length; i++) {
          expect(slots[i]! < 0).toBe(start[i]! < 0);
          if (slots[i]! < 0) continue;
          for (let k = 0; k < costs.engines; k++) {
            const moved = [...slots];
            moved[i] = k;
            expect(burstCost(costs, moved)).toBeGreaterThanOrEqual(cost - 1e-6);
          }
          for (let j = i + 1; j < slots.length; j++) {
            if (slots[j]! < 0) continue;
            const swapped = [...slots];
            [swapped[i], swapped[j]] = [slots[j]!, slots[i]!];
            expect(burstCost(costs, swapped)).toBeGreaterThanOrEqual(cost - 1e-6);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  // With costs that only grow with the tokens ahead, no two-by-two assignment is a local optimum without
  // being the best: staying together on either slot beats both splits only if the other slot's pairing
  // costs more still.
  it("finds the best assignment of two prompts over two slots, whatever the start", () => {
    fc.assert(
      fc.property(linearCosts.filter(({ costs, start }) => costs.engines === 2 && start.length === 2 && start.every((s) => s >= 0)), ({ costs, start }) => {
        const all = [[0, 0], [0, 1], [1, 0], [1, 1]];
        const best = Math.min(...all.map((s) => burstCost(costs, s)));
        expect(burstCost(costs, improveAssignment(costs, start))).toBeCloseTo(best, 6);
      }),
      { numRuns: 200 },
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
    expect(alone[0]!.engine).toBe(0);
    const attempts = c.beginTogether([short, long]);
    expect(attempts.map((a) => a!.engine)).toEqual([1, 0]);
    // Which of the two the long one does alone depends on the eviction weight; either way it is slower.
    expect(alone[1]!.decision.chosen.predictedTtftMs).toBeGreaterThan(attempts[1]!.decision.chosen.predictedTtftMs);
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

  it("keeps a nearly cached prompt on its engine ahead of a long one, where deciding one by one sent it away", () => {
    // The long prompt has the larger cache lead (250 blocks on engine 0) and decides first; the short one,
    // 199 of its 200 blocks on engine 0, then sees the long one's 8,000 uncached tokens queued there and,
    // alone, would compute all its 3,200 tokens on engine 1. Together it goes first on engine 0: 16 tokens.
    const long = prompt(12_000, [250, 0]);
    const short = prompt(3_200, [199, 0]);
    const c = core(2, { evictionWeight: 0 });
    const attempts = c.beginTogether([long, short]);
    expect(attempts.map((a) => a!.engine)).toEqual([0, 0]);
    expect(c.sendOrder(attempts)).toEqual([1, 0]);
    // Booked in the order they are sent: the long one's prediction counts the short one queued ahead.
    expect(attempts[0]!.decision.chosen.features.queuedTokens).toBe(16);
    expect(attempts[1]!.decision.chosen.features.queuedTokens).toBe(0);
    for (const a of attempts) a!.release();
    // Sampling, and bursts beyond MAX_IMPROVED_BURST, keep the decisions made one by one in decision order.
    const sampled = core(2, { evictionWeight: 0, temperature: 1e-9 }).beginTogether([long, short]);
    expect(sampled.map((a) => a!.engine)).toEqual([0, 1]);
    const big = core(2, { evictionWeight: 0 }).beginTogether([long, short, ...Array.from({ length: MAX_IMPROVED_BURST - 1 }, () => prompt(16, [0, 0]))]);
    expect(big.slice(0, 2).map((a) => a!.engine)).toEqual([0, 1]);
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
