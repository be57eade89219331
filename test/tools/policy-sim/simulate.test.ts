// Policies on virtual time: the router's scheduler and index in front of simulated engines.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { POLICIES } from "../../../src/router/schedule/index.js";
import { H100_8B, type EngineSettings } from "../../../src/tools/policy-sim/engine-settings.js";
import type { PolicyReport, SimulationReport } from "../../../src/tools/policy-sim/report.js";
import { simulate, type SimulateOptions } from "../../../src/tools/policy-sim/simulate.js";
import type { TraceSpec } from "../../../src/tools/policy-sim/trace-spec.js";
import { packageRoot } from "../../../src/util/package-root.js";

const mooncake: TraceSpec = { file: join(packageRoot(), "test", "fixtures", "traces", "mooncake-conversation-200.jsonl") };

/** A report without the wall-clock figures, which differ from run to run. */
function figures(r: SimulationReport): unknown {
  const { wall_sec: _wall, settings: { jobs: _jobs, ...settings }, policies, ...rest } = r;
  return { ...rest, settings, policies: policies.map(({ wall_sec: _w, speed: _s, ...p }: PolicyReport) => p) };
}

const small: Omit<SimulateOptions, "policies"> = { engines: 4, engine: H100_8B, maxRequests: 60, seed: 7 };

describe("kvroute simulate", () => {
  it("simulates a small trace under every policy, with the same figures every time, in this thread or in workers", async () => {
    const here = await simulate(mooncake, { ...small, policies: POLICIES, jobs: 1 });
    const workers = await simulate(mooncake, { ...small, policies: POLICIES, jobs: 2 });
    expect(figures(workers)).toEqual(figures(here));

    expect(here.policies.map((p) => p.policy)).toEqual(POLICIES);
    expect(here.trace).toMatchObject({ records: 60, bad_lines: 0 });
    const bound = here.bound.hit_ratio!;
    expect(bound).toBeGreaterThan(0);
    for (const p of here.policies) {
      expect(p.requests).toEqual({ sent: 60, succeeded: 60, failed: 0 });
      expect(p.hit_ratio).toBeGreaterThan(0); // the trace's first requests share a prefix
      expect(p.hit_ratio).toBeLessThanOrEqual(bound);
      expect(p.prompt_tokens).toBe(here.bound.prompt_tokens);
      expect(p.ttft_ms.p50).toBeGreaterThan(0);
      expect(p.ttft_ms.p50).toBeLessThanOrEqual(p.e2e_ms.p50);
      expect(p.engines.reduce((n, e) => n + e.requests, 0)).toBe(60);
      expect(p.balance.requests).toBeGreaterThanOrEqual(1);
      expect(p.kv_events).toEqual({ unknown_parent: 0, unknown_block: 0, index_evictions: 0 });
      // One prediction per first token, whatever the policy; observed from arrival, as the TTFT column is.
      const c = p.ttft_prediction;
      expect(c.first_tokens).toBe(60);
      expect(c.observed_mean_ms).toBeCloseTo(p.ttft_ms.mean, 6);
      expect(c.predicted_mean_ms).toBeGreaterThan(0);
      expect(c.mean_abs_error_ms!).toBeGreaterThanOrEqual(Math.abs(c.observed_mean_ms! - c.predicted_mean_ms!) - 1e-9);
    }
    // Round-robin deals requests out evenly.
    expect(here.policies.find((p) => p.policy === "round-robin")!.engines.map((e) => e.requests)).toEqual([15, 15, 15, 15]);
    // Another seed changes the random policy's choices.
    const reseeded = await simulate(mooncake, { ...small, seed: 8, policies: ["random"] });
    expect(reseeded.policies[0]!.engines.map((e) => e.requests)).not.toEqual(here.policies.find((p) => p.policy === "random")!.engines.map((e) => e.requests));
  });

  it("holds kv's prompts at the router while their engine computes earlier ones, unless told not to", async () => {
    // The trace's requests come in bursts of about ten in the same millisecond: on four engines, some share
    // one. Held, a prompt no longer stretches the step of the one ahead of it.
    // Deciding each burst together would hide much of the gate's effect on so few requests: both runs leave it out.
    const one = { ...small, policies: ["kv"] as const, decideTogether: false };
    const [on, off] = await Promise.all([simulate(mooncake, one), simulate(mooncake, { ...one, prefillGate: false })]);
    expect(on.settings.prefill_gate).toBe(true);
    expect(off.settings.prefill_gate).toBe(false);
    const [gated, sent] = [on.policies[0]!, off.policies[0]!];
    expect(gated.requests).toEqual({ sent: 60, succeeded: 60, failed: 0 });
    expect(gated.ttft_ms.mean).toBeLessThan(0.97 * sent.ttft_ms.mean);
    expect(gated.ttft_ms.p50).toBeLessThan(sent.ttft_ms.p50);
  });

  it("decides kv's requests that arrive at one instant together, unless told not to", async () => {
    // Decided one by one, the first of a burst takes the engine that holds a later one's long prefix.
    const [on, off] = await Promise.all([simulate(mooncake, { ...small, policies: ["kv"] }), simulate(mooncake, { ...small, policies: ["kv"], decideTogether: false })]);
    expect(on.settings.decide_together).toBe(true);
    expect(off.settings.decide_together).toBe(false);
    const [together, alone] = [on.policies[0]!, off.policies[0]!];
    expect(together.requests).toEqual({ sent: 60, succeeded: 60, failed: 0 });
    expect(together.ttft_ms.mean).toBeLessThan(0.97 * alone.ttft_ms.mean);
    expect(together.ttft_ms.p50).toBeLessThan(alone.ttft_ms.p50);
    expect(together.hit_ratio!).toBeGreaterThanOrEqual(alone.hit_ratio!);
  });

  // 32 system prompts of 128 blocks on 4 engines of 1,024 blocks: spread over every engine (round-robin)
  // they do not fit, kept together by the cache they need (kv) about a quarter of them per engine does.
  const crowded: TraceSpec = { generate: { groups: 32, promptsPerGroup: 16, systemTokens: 2048, userTokens: 128, outputTokens: 32, ratePerSec: 20 } };
  const crowdedEngine: EngineSettings = { ...H100_8B, numBlocks: 1024, maxModelLen: 8192 };

  it("kv beats round-robin on hit ratio when prompts share prefixes and caches are small", async () => {
    const r = await simulate(crowded, { engines: 4, engine: crowdedEngine, policies: ["kv", "round-robin"] });
    const [kv, rr] = r.policies;
    expect(kv!.hit_ratio! - rr!.hit_ratio!).toBeGreaterThan(0.05);
    expect(r.bound.hit_ratio).toBeGreaterThan(kv!.hit_ratio!);
  });

  it("routes kv by load alone when the KV events arrive too late to matter", async () => {
    const prompt = (delay: number) => simulate(crowded, { engines: 4, engine: crowdedEngine, policies: ["kv"], kvEventDelayMs: delay });
    const [fresh, stale] = await Promise.all([prompt(0), prompt(1e9)]);
    expect(stale.policies[0]!.hit_ratio!).toBeLessThan(fresh.policies[0]!.hit_ratio! - 0.05);
    // The run ends at the last response, not at the last (late) event.
    expect(stale.policies[0]!.virtual_sec).toBeLessThan(1000);
  });

  it("routes by cache without KV events, from its own decisions (approximate mode), while its predictions last", async () => {
    const run = (o: Partial<SimulateOptions>) => simulate(crowded, { engines: 4, engine: crowdedEngine, policies: ["kv"], ...o });
    const [events, approx, forgetful, rr] = await Promise.all([
      run({}),
      run({ kvEvents: "none" }),
      // Predictions forgotten 1 ms after they are made: the index is always empty.
      run({ kvEvents: "none", approxTtlMs: 1 }),
      run({ policies: ["round-robin"] }),
    ]);
    const hit = (r: SimulationReport) => r.policies[0]!.hit_ratio!;
    expect(hit(approx)).toBeGreaterThan(hit(rr) + 0.05);
    expect(hit(approx)).toBeGreaterThan(hit(forgetful) + 0.05);
    const a = approx.policies[0]!;
    expect(a.approx).toMatchObject({ predictions: a.requests.succeeded });
    // The engines' events were dropped: nothing was applied from them.
    expect(a.kv_events).toEqual({ unknown_parent: 0, unknown_block: 0, index_evictions: 0 });
    expect(events.policies[0]!.approx).toBeNull();
    expect(approx.settings).toMatchObject({ kv_events: "none", approx_ttl_sec: 120 });
    expect(forgetful.policies[0]!.approx!.expired_blocks).toBeGreaterThan(0);
  });

  it("fails the prompts the engines cannot hold and serves the rest", async () => {
    const r = await simulate(mooncake, { engines: 2, engine: { ...H100_8B, maxModelLen: 8192 }, maxRequests: 40, policies: ["kv"] });
    const p = r.policies[0]!;
    expect(p.requests.sent).toBe(40);
    expect(p.requests.failed).toBeGreaterThan(0);
    expect(p.requests.succeeded).toBeGreaterThan(0);
    expect(p.requests.succeeded + p.requests.failed).toBe(40);
  });

  it("serves disaggregated: prompts computed on the prefill engine, decode engines computing only each prompt's last token after the transfer", async () => {
    const disagg: Omit<SimulateOptions, "policies"> = { ...small, prefillEngines: 1 };
    const fast = await simulate(mooncake, { ...disagg, policies: ["kv", "round-robin"] });
    expect(fast.settings).toMatchObject({ mode: "disaggregated", engines: 4, prefill_engines: 1, decode_engines: 3 });
    for (const p of fast.policies) {
      expect(p.mode).toBe("disaggregated");
      expect(p.paths).toEqual({ split: 60, whole: 0, local_short: 0, local_degraded: 0 });
      expect(p.requests).toEqual({ sent: 60, succeeded: 60, failed: 0 });
      const [prefill, ...decode] = p.engines;
      expect(prefill).toMatchObject({ engine: "prefill-0", role: "prefill", requests: 60 });
      expect(prefill!.prefill_tokens).toBe(p.prompt_tokens - p.cached_tokens);
      expect(decode.map((e) => e.engine)).toEqual(["decode-0", "decode-1", "decode-2"]);
      expect(decode.reduce((n, e) => n + e.requests, 0)).toBe(60);
      for (const e of decode) expect(e.prefill_tokens).toBe(e.requests);
      expect(p.hit_ratio).toBeGreaterThan(0);
      expect(p.kv_events).toEqual({ unknown_parent: 0, unknown_block: 0, index_evictions: 0 });
      // A split request's first token comes twice: from its prefill engine and from its decode engine.
      expect(p.ttft_prediction.first_tokens).toBe(120);
    }
    // The same run again gives the same figures.
    expect(figures(await simulate(mooncake, { ...disagg, policies: ["kv", "round-robin"] }))).toEqual(figures(fast));
    // A link a thousand times slower: the same cache hits (one prefill engine computes every prompt), and the
    // transfer in every TTFT. The trace's prompts average some 12,000 tokens: 750 blocks of 2 MiB, 13 s at 1 Gb/s.
    const slow = await simulate(mooncake, { ...disagg, engine: { ...H100_8B, kvTransferGbps: 0.4 }, policies: ["kv"] });
    expect(slow.policies[0]!.hit_ratio).toBe(fast.policies[0]!.hit_ratio);
    expect(slow.policies[0]!.ttft_ms.p50 - fast.policies[0]!.ttft_ms.p50).toBeGreaterThan(1000);
    // Prompts all short enough to prefill on their decode engine.
    const local = await simulate(mooncake, { ...disagg, disaggMinPrefillTokens: 1e9, policies: ["kv"] });
    expect(local.policies[0]!.paths).toEqual({ split: 0, whole: 0, local_short: 60, local_degraded: 0 });
    expect(local.policies[0]!.engines[0]!.requests).toBe(0);
  });
});
