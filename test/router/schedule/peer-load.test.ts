// Load other router replicas booked: a separate input of the scheduler, added into every cost like the
// router's own bookings, shown apart in each candidate, and not counted twice as an engine's external load.
import { describe, expect, it } from "vitest";
import { Scheduler, type EngineLoad } from "../../../src/router/schedule/index.js";

const routable = (blocks: number, overlaps: number[]) => ({ promptTokens: blocks * 16, blocks, overlaps });
const load = (l: Partial<EngineLoad>): EngineLoad => ({ prefillBlocks: 0, prefillTokens: 0, decodeBlocks: 0, decodeRequests: 0, requests: 0, ...l });

describe("peer load in the scheduler", () => {
  it("weighs another replica's bookings exactly as the router's own (kv-blocks)", () => {
    const own = new Scheduler({ policy: "kv-blocks", random: () => 0 });
    const shared = new Scheduler({ policy: "kv-blocks", random: () => 0 });
    for (const s of [own, shared]) for (const e of [0, 1]) s.setAvailable(e, true);
    // The same two requests: booked here on one scheduler, reported by a peer on the other.
    own.active.book(1, 160, 10, 16);
    own.active.book(1, 20, 2, 16).started();
    shared.setPeerLoad(1, load({ prefillBlocks: 10, prefillTokens: 160, decodeBlocks: 2, decodeRequests: 1, requests: 2 }));
    const a = own.decide(routable(8, [0, 5]), 16)!;
    const b = shared.decide(routable(8, [0, 5]), 16)!;
    expect(b.scored.map((s) => [s.cost, s.activeBlocks])).toEqual(a.scored.map((s) => [s.cost, s.activeBlocks]));
    expect(b.scored[1]).toMatchObject({ cost: 8 - 5 + 10 + 2, activeBlocks: 12, peer: { requests: 2 }, load: { requests: 0 } });
    expect(b.engine).toBe(0);
  });

  it("weighs it in predicted time too (kv): the same features as the router's own bookings", () => {
    const own = new Scheduler({ random: () => 0 });
    const shared = new Scheduler({ random: () => 0 });
    for (const s of [own, shared]) for (const e of [0, 1]) s.setAvailable(e, true);
    own.active.book(0, 4096, 256, 16);
    shared.setPeerLoad(0, own.active.snapshot(0));
    const a = own.decide(routable(64, [64, 0]), 16)!;
    const b = shared.decide(routable(64, [64, 0]), 16)!;
    expect(b.scored.map((s) => s.features)).toEqual(a.scored.map((s) => s.features));
    expect(b.scored.map((s) => s.cost)).toEqual(a.scored.map((s) => s.cost));
    // Withdrawn: the engine is idle again.
    shared.setPeerLoad(0, null);
    expect(shared.decide(routable(64, [64, 0]), 16)!.scored[0]!.features.queuedTokens).toBe(0);
  });

  it("counts it in the features an engine's prefill reports teach the time model, as the router's own bookings", () => {
    const own = new Scheduler({ random: () => 0 });
    const shared = new Scheduler({ random: () => 0 });
    const alone = new Scheduler({ random: () => 0 });
    for (const s of [own, shared, alone]) s.setAvailable(0, true);
    // Sequences decoding on the engine throughout: booked here, by a peer, or (alone) not at all.
    for (let i = 0; i < 8; i++) own.active.book(0, 4096, 0, 16).started();
    shared.setPeerLoad(0, own.active.snapshot(0));
    const report = (k: number) => ({
      running: 8,
      waiting: 0,
      kvCacheUsage: null,
      numBlocks: null,
      prefill: { seconds: k * (10 * 0.01 + 80_000 * 0.00008), requests: 10 * k, promptTokens: 100_000 * k, cachedTokens: 20_000 * k },
    });
    for (let k = 1; k <= 50; k++) for (const s of [own, shared, alone]) s.setReport(0, report(k));
    const features = { queuedTokens: 0, uncachedTokens: 4096, decoding: 8, decodeBlocks: 2048, requests: 8 };
    expect(shared.model(0).observations.ttft).toBe(49);
    expect(shared.model(0).ttft(features)).toBeCloseTo(own.model(0).ttft(features), 9);
    // The control: learned without that load, the model differs, so the equality above says something.
    expect(Math.abs(alone.model(0).ttft(features) - own.model(0).ttft(features))).toBeGreaterThan(1e-6);
  });

  it("counts peers' requests in least-loaded's tie-break", () => {
    const s = new Scheduler({ policy: "least-loaded", random: () => 0 });
    for (const e of [0, 1]) s.setAvailable(e, true);
    s.setPeerLoad(0, load({ requests: 3 }));
    expect(s.decide(routable(4, [0, 0]), 16)!.engine).toBe(1);
  });

  it("does not take peers' requests on an engine for other clients in the engine's own report", () => {
    const s = new Scheduler({ random: () => 0 });
    s.setAvailable(0, true);
    s.setPeerLoad(0, load({ decodeRequests: 2, decodeBlocks: 20, requests: 2 }));
    s.setReport(0, { running: 2, waiting: 0, kvCacheUsage: null, numBlocks: null });
    expect(s.decide(routable(8, [0]), 16)!.scored[0]!.external.requests).toBe(0);
    s.setReport(0, { running: 3, waiting: 0, kvCacheUsage: null, numBlocks: null });
    expect(s.decide(routable(8, [0]), 16)!.scored[0]!.external.requests).toBe(1);
  });
});
