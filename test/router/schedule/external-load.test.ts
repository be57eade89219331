import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { externalLoad, NO_EXTERNAL_LOAD, RoutingCore, Scheduler, type EngineReport } from "../../../src/router/schedule/index.js";

const report = (running: number, waiting: number, kvCacheUsage: number | null = null, numBlocks: number | null = null): EngineReport => ({ running, waiting, kvCacheUsage, numBlocks });

describe("external load: an engine's own report beyond the router's bookings, in blocks", () => {
  it("is nothing without a report", () => {
    expect(externalLoad(null, 3, 10)).toEqual(NO_EXTERNAL_LOAD);
  });

  it("counts requests beyond the router's own, the router's counted as running first", () => {
    // 5 running and 2 waiting on the engine, 3 of them the router's: 2 foreign running, 2 foreign waiting.
    expect(externalLoad(report(5, 2), 3, 10)).toEqual({ requests: 4, running: 2, prefillBlocks: 2 * 10, decodeBlocks: 2 * 10 });
    // The router's 6 requests fill the 5 running and 1 of the waiting: 1 foreign waiting.
    expect(externalLoad(report(5, 2), 6, 10)).toEqual({ requests: 1, running: 0, prefillBlocks: 10, decodeBlocks: 0 });
    // A report older than the router's latest bookings can show fewer requests than it has: no external load.
    expect(externalLoad(report(1, 0), 4, 10)).toEqual({ requests: 0, running: 0, prefillBlocks: 0, decodeBlocks: 0 });
  });

  it("sizes a foreign running request by the engine's KV usage per running request when it reports both", () => {
    // 4 running hold 40% of 1000 blocks: 100 blocks each; 3 of them are foreign.
    expect(externalLoad(report(4, 0, 0.4, 1000), 1, 10)).toEqual({ requests: 3, running: 3, prefillBlocks: 0, decodeBlocks: 300 });
    // Usage without a capacity (or the reverse) says nothing about sizes: the routed prompt stands in.
    expect(externalLoad(report(4, 0, 0.4, null), 1, 10).decodeBlocks).toBe(30);
    // A usage outside [0, 1] is clamped.
    expect(externalLoad(report(2, 0, 7, 100), 0, 10).decodeBlocks).toBe(100);
  });

  it("property: requests = max(0, running + waiting − own); blocks are non-negative and grow with the report", () => {
    const counts = fc.integer({ min: 0, max: 500 });
    fc.assert(
      fc.property(counts, counts, counts, fc.integer({ min: 1, max: 1000 }), fc.option(fc.double({ min: 0, max: 1, noNaN: true })), (running, waiting, mine, blocks, usage) => {
        const r = report(running, waiting, usage, usage === null ? null : 4096);
        const load = externalLoad(r, mine, blocks);
        expect(load.requests).toBe(Math.max(0, running + waiting - mine));
        expect(load.prefillBlocks).toBeGreaterThanOrEqual(0);
        expect(load.decodeBlocks).toBeGreaterThanOrEqual(0);
        const more = externalLoad(report(running, waiting + 1, usage, usage === null ? null : 4096), mine, blocks);
        expect(more.prefillBlocks + more.decodeBlocks).toBeGreaterThanOrEqual(load.prefillBlocks + load.decodeBlocks);
      }),
    );
  });
});

/** A prompt of `blocks` full 16-token blocks, with each engine's overlap. */
const routable = (blocks: number, overlaps: number[]) => ({ promptTokens: blocks * 16, blocks, overlaps });

describe("the scheduler with external load", () => {
  it("counts the router's own requests as they were when the report came, so that its finished ones are not taken for others'", () => {
    const s = new Scheduler({ random: () => 0 });
    s.setAvailable(0, true);
    const booking = s.active.book(0, 160, 10, 16);
    s.setReport(0, report(1, 0)); // the engine reports the router's own request
    expect(s.decide(routable(8, [0]), 16)!.scored[0]!.external).toEqual(NO_EXTERNAL_LOAD);
    booking.release(); // it finished; the report (until the next one) still shows it, and still is not external
    expect(s.decide(routable(8, [0]), 16)!.scored[0]!.external).toEqual(NO_EXTERNAL_LOAD);
    s.setReport(0, report(1, 0)); // a new report with one running request: now it is another client's
    expect(s.decide(routable(8, [0]), 16)!.scored[0]!.external.requests).toBe(1);
  });

  it("kv-blocks: adds it to the block cost as a separate input, and drops it when the report is withdrawn", () => {
    const s = new Scheduler({ policy: "kv-blocks", random: () => 0 });
    s.setAvailable(0, true);
    s.setAvailable(1, true);
    // Engine 1 holds 4 of the prompt's 8 blocks, but other clients keep 3 requests running on it.
    s.setReport(1, report(3, 0));
    const busy = s.decide(routable(8, [0, 4]), 16)!;
    expect(busy.scored[1]).toMatchObject({ external: { requests: 3, running: 3, prefillBlocks: 0, decodeBlocks: 24 }, cost: 8 - 4 + 24, activeBlocks: 24 });
    expect(busy.engine).toBe(0);
    s.setReport(1, null);
    const idle = s.decide(routable(8, [0, 4]), 16)!;
    expect(idle.scored[1]).toMatchObject({ external: NO_EXTERNAL_LOAD, cost: 4 });
    expect(idle.engine).toBe(1);
  });

  it("kv (time): feeds it to the time model with the bookings, so the busy engine's predicted TTFT grows", () => {
    const s = new Scheduler({ random: () => 0 });
    s.setAvailable(0, true);
    s.setAvailable(1, true);
    const idle = s.decide(routable(64, [0, 0]), 16)!;
    // Other clients: 300 running (past max_num_seqs 256, so a new request waits for a slot) and 2 waiting.
    s.setReport(1, report(300, 2));
    const busy = s.decide(routable(64, [0, 0]), 16)!;
    expect(busy.scored[1]!.features).toMatchObject({ queuedTokens: 2 * 64 * 16, decoding: 300, decodeBlocks: 300 * 64, requests: 302 });
    expect(busy.scored[1]!.predictedTtftMs).toBeGreaterThan(idle.scored[1]!.predictedTtftMs);
    expect(busy.scored[1]!.cost).toBeGreaterThan(busy.scored[0]!.cost);
    expect(busy.engine).toBe(0);
  });

  it("the time model learns step times with the external decoding sequences counted, as it predicts with them", () => {
    const learned = (report: EngineReport | null) => {
      const scheduler = new Scheduler({ random: () => 0 });
      scheduler.setAvailable(0, true);
      scheduler.setReport(0, report);
      const core = new RoutingCore({ scheduler, cachedTokensFallback: "router", blockSize: () => 16 });
      const p = routable(4, [0]);
      const attempt = core.begin(core.decide(p)!, p);
      attempt.firstToken(20);
      for (let i = 0; i < 300; i++) attempt.generated(1, 12);
      attempt.release();
      return scheduler.model(0).timing.stepMs;
    };
    // The same 12 ms gaps are slower steps for one sequence than for one among 200 others' (whose own
    // share of the step the prior already accounts for): the engine is learned faster in the second case.
    expect(learned(report(200, 0))).toBeLessThan(learned(null));
  });

  it("least-loaded counts external requests too", () => {
    const s = new Scheduler({ policy: "least-loaded", random: () => 0 });
    s.setAvailable(0, true);
    s.setAvailable(1, true);
    s.setReport(0, report(0, 2));
    expect(s.decide(routable(4, [0, 0]), 16)!.engine).toBe(1);
  });
});
