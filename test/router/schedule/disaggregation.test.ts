// The routing core with engine roles: plans (split, local when short, degraded without prefill engines),
// pools per stage (decisions and retries stay in them), the decode stage's booking and cost, the
// disaggregated cached-tokens rule, and the time model's transfer fit.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EngineTimeModel, DEFAULT_PRIOR, RoutingCore, Scheduler, transferFailed, type EngineRole, type RoutablePrompt } from "../../../src/router/schedule/index.js";

function core(roles: EngineRole[], o: { minPrefill?: number; fallback?: "router" | "none"; policy?: "kv" | "kv-blocks" } = {}): RoutingCore {
  const scheduler = new Scheduler({ random: () => 0, ...(o.policy ? { policy: o.policy } : {}) });
  roles.forEach((_, e) => scheduler.setAvailable(e, true));
  return new RoutingCore({ scheduler, cachedTokensFallback: o.fallback ?? "router", blockSize: () => 16, roles, ...(o.minPrefill !== undefined ? { disaggMinPrefillTokens: o.minPrefill } : {}) });
}

const prompt = (tokens: number, overlaps: number[]): RoutablePrompt => ({ promptTokens: tokens, blocks: Math.floor(tokens / 16), overlaps });

describe("plans", () => {
  it("keeps an all-`both` fleet aggregated, as without roles", () => {
    const c = core(["both", "both"]);
    expect(c.disaggregated).toBe(false);
    expect(c.plan(prompt(160, [0, 10]))).toMatchObject({ kind: "whole", why: "aggregated", decision: { engine: 1, stage: "whole", overlapBlocks: 10 } });
  });

  it("splits: the prefill decision over the prefill pool follows the prefill engines' overlap", () => {
    // Engines 0 and 1 prefill, 2 and 3 decode; engine 3 holds the prompt, but it is no prefill engine.
    const c = core(["prefill", "prefill", "decode", "decode"]);
    const plan = c.plan(prompt(1600, [0, 60, 0, 100]));
    expect(plan).toMatchObject({ kind: "split", prefill: { engine: 1, stage: "prefill", overlapBlocks: 60 } });
    if (plan?.kind !== "split") throw new Error("not split");
    expect(plan.prefill.scored.map((s) => s.engine)).toEqual([0, 1]);
  });

  it("prefills locally on the decode engine a prompt whose uncached part there is under the threshold", () => {
    const c = core(["prefill", "decode", "decode"], { minPrefill: 100 });
    // 160 tokens, 6 blocks (96 tokens) held on decode engine 2: 64 uncached, under 100.
    expect(c.plan(prompt(160, [10, 0, 6]))).toMatchObject({ kind: "whole", why: "short", decision: { engine: 2, stage: "whole" } });
    // 200 uncached on every decode engine: split.
    expect(c.plan(prompt(200, [10, 0, 0]))).toMatchObject({ kind: "split", prefill: { engine: 0 } });
  });

  it("degrades to a local prefill on a decode engine while no prefill engine is available, and is null without decode engines", () => {
    const c = core(["prefill", "decode"]);
    c.scheduler.setAvailable(0, false);
    expect(c.plan(prompt(160, [10, 0]))).toMatchObject({ kind: "whole", why: "no_prefill_engine", decision: { engine: 1 } });
    c.scheduler.setAvailable(1, false);
    c.scheduler.setAvailable(0, true);
    expect(c.plan(prompt(160, [10, 0]))).toBeNull();
  });

  it("counts a `both` engine in either pool, and never sends a whole request to a prefill engine", () => {
    const c = core(["prefill", "both"]);
    expect(c.decide(prompt(160, [0, 0]), undefined, "prefill")!.scored.map((s) => s.engine)).toEqual([0, 1]);
    expect(c.decide(prompt(160, [0, 0]), undefined, "decode")!.scored.map((s) => s.engine)).toEqual([1]);
    expect(c.decide(prompt(160, [10, 0]), undefined, "whole")!.engine).toBe(1);
  });
});

describe("attempts per stage", () => {
  it("retries a prefill attempt on another prefill engine only, and a decode attempt on another decode engine only", () => {
    const c = core(["prefill", "prefill", "decode", "decode"]);
    const p = prompt(160, [0, 0, 0, 0]);
    const first = c.begin(c.decide(p, undefined, "prefill")!, p);
    const retry = c.retry(first, { code: "engine_disconnected", tokensProduced: 0 }, false);
    expect(retry.kind).toBe("retry");
    if (retry.kind !== "retry") return;
    expect(retry.attempt.decision.stage).toBe("prefill");
    expect([0, 1]).toContain(retry.attempt.engine);
    expect(retry.attempt.engine).not.toBe(first.engine);
    retry.attempt.release();
    // Both prefill engines tried: nothing left in the pool, though the decode engines are idle.
    const solo = core(["prefill", "decode", "decode"]);
    const only = solo.begin(solo.decide(p, undefined, "prefill")!, p);
    expect(solo.retry(only, { code: "engine_disconnected", tokensProduced: 0 }, false)).toEqual({ kind: "no_engine" });
    const decode = c.begin(c.decide(p, undefined, "decode")!, p);
    const next = c.retry(decode, { code: "engine_error", tokensProduced: 0 }, false);
    if (next.kind !== "retry") throw new Error("no retry");
    expect(next.attempt.decision.stage).toBe("decode");
    expect([2, 3]).toContain(next.attempt.engine);
    next.attempt.release();
  });

  it("books a decode attempt with no prefill blocks (its prompt arrives by transfer), and releases it", () => {
    const c = core(["prefill", "decode"]);
    const p = prompt(170, [0, 0]); // 10 full blocks and 10 tokens in the last
    const attempt = c.begin(c.decide(p, undefined, "decode")!, p);
    expect(c.scheduler.active.load(1)).toMatchObject({ prefillBlocks: 0, prefillTokens: 10, requests: 1 });
    attempt.firstToken(50);
    attempt.generated(1, null);
    expect(c.scheduler.active.load(1)).toMatchObject({ prefillBlocks: 0, decodeBlocks: 11, decodeRequests: 1 });
    attempt.finish(169, 170);
    expect(c.scheduler.active.load(1)).toEqual({ prefillBlocks: 0, prefillTokens: 0, decodeBlocks: 0, decodeRequests: 0, requests: 0 });
  });

  it("scores decode engines by load first: an idle engine without the prompt beats a busy one that holds it", () => {
    for (const policy of ["kv", "kv-blocks"] as const) {
      const c = core(["prefill", "decode", "decode"], { policy });
      const busy = prompt(12_000, [0, 0, 0]);
      // Engine 2 decodes eight long requests.
      const held = Array.from({ length: 8 }, () => {
        const a = c.begin({ ...c.decide(busy, new Set([1]), "decode")! }, busy);
        // As predicted: the time models keep their prior, transfers included.
        a.firstToken(a.decision.chosen.predictedTtftMs);
        a.generated(1, null);
        return a;
      });
      expect(held.every((a) => a.engine === 2)).toBe(true);
      const p = { ...prompt(1600, [0, 0, 100]), outputTokens: 256 };
      const d = c.decide(p, undefined, "decode")!;
      expect(d.engine).toBe(1);
      // The other engine's score counts what it would have to receive: nothing for engine 2, 100 blocks for 1.
      expect(d.scored.map((s) => s.transferBlocks)).toEqual([100, 0]);
      // With equal loads, the engine holding the prompt wins: less to receive.
      held.forEach((a) => a.release());
      expect(c.decide(p, undefined, "decode")!.engine).toBe(2);
    }
  });
});

describe("cached tokens when split", () => {
  it("is the prefill's figure while the transfer holds, and the decode engine's own when its count shows the transfer failed", () => {
    const c = core(["prefill", "decode"]);
    const p = prompt(100, [4, 2]);
    const decode = c.begin(c.decide(p, undefined, "decode")!, p);
    decode.release();
    const fromPrefill = { engine: 0, cached: { cachedTokens: 64, source: "engine" as const } };
    // The decode engine counts the 99 transferred tokens: the transfer held.
    expect(c.settleSplit(fromPrefill, decode, 99, 100)).toEqual({ cachedTokens: 64, source: "engine", failed: false });
    // It can't say: nothing shows a failure.
    expect(c.settleSplit(fromPrefill, decode, null, 100)).toEqual({ cachedTokens: 64, source: "engine", failed: false });
    // 32 of its own: it computed the rest itself.
    expect(c.settleSplit(fromPrefill, decode, 32, 100)).toEqual({ cachedTokens: 32, source: "engine", failed: true });
  });

  it("detects a failed transfer exactly when the decode engine counts fewer than all but the last prompt token", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100_000 }), fc.option(fc.nat(100_000), { nil: null }), (promptTokens, count) => {
        const c = count === null ? null : Math.min(count, promptTokens - 1);
        expect(transferFailed(c, promptTokens)).toBe(c !== null && c < promptTokens - 1);
      }),
    );
  });
});

describe("the transfer in the time model", () => {
  it("learns a decode engine's time per transferred block from its first tokens", () => {
    const model = new EngineTimeModel({ prior: DEFAULT_PRIOR, transferMsPerBlock: 0.05 });
    const f = { queuedTokens: 0, uncachedTokens: 1, decoding: 0, decodeBlocks: 0, requests: 0 };
    const base = model.ttft(f);
    // The link is ten times slower than the prior: 0.5 ms a block.
    for (let i = 0; i < 300; i++) {
      const blocks = 100 + (i % 7) * 150;
      model.observeTransfer(f, blocks, base + 0.5 * blocks);
    }
    expect(model.transferMsPerBlock).toBeGreaterThan(0.45);
    expect(model.transferMsPerBlock).toBeLessThan(0.55);
    expect(model.observations.transfers).toBe(300);
    expect(model.transferTime(1000)).toBeCloseTo(1000 * model.transferMsPerBlock, 6);
  });

  it("predicts a decode engine from its own model once it has seen as many transfers as the warm-up asks, from the fleet's before", () => {
    const s = new Scheduler();
    const f = { queuedTokens: 0, uncachedTokens: 1, decoding: 0, decodeBlocks: 0, requests: 0 };
    for (let i = 0; i < 15; i++) s.observeTransfer(1, f, 200, 500);
    expect(s.predictor(1)).not.toBe(s.model(1));
    // The fleet's pooled model learned the slow link too, and predicts it for an engine not yet seen.
    expect(s.predictor(2).transferMsPerBlock).toBeGreaterThan(0.05);
    s.observeTransfer(1, f, 200, 500);
    expect(s.predictor(1)).toBe(s.model(1));
    expect(s.predictor(2)).not.toBe(s.model(2));
  });
});
