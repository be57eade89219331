// The prefill gate end to end: a prompt sent while the engine computes another one is held in the router
// until that one has its first token, shows in /metrics while it waits, and leaves the gate when its client
// does. A real `kvroute sim` process at real pace and `kvroute serve`, over TCP on 127.0.0.1.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimProcess, type RunningEngine } from "./engines.js";
import { metric, postJson, postLeaving, startRouterProcess, tokenPrompt, until, untilEnginesUp, type RunningRouter } from "./router-process.js";

const MODEL = "Qwen/Qwen3-0.6B";

describe("prefill gate", () => {
  let engine: RunningEngine;
  let router: RunningRouter;
  let base: string;

  const held = async () => metric(await (await fetch(`${base}/metrics`)).text(), "kvroute_engine_held_requests", { engine: "e" });

  beforeAll(async () => {
    // At real pace a 6,000-token prompt takes the simulated engine about half a second to compute (0.08 ms a
    // token), long enough to see a second prompt wait for it.
    engine = await startSimProcess(["--speedup", "1"]);
    // Without taking the engine back (take-back.test.ts), which sends a short prompt before a long one at once.
    router = await startRouterProcess(["--engine", `${engine.url},kv=none,name=e`, "--workers", "1", "--take-back", "off"]);
    base = router.url;
    await untilEnginesUp(base);
  }, 60_000);

  afterAll(async () => {
    await router?.stop();
    await engine?.stop("SIGKILL");
  });

  it("holds a prompt while the engine computes one sent before it, and sends it at that one's first token", async () => {
    const ends: string[] = [];
    const long = postJson(`${base}/v1/completions`, { model: MODEL, prompt: tokenPrompt(6000, 1), max_tokens: 1 }).then((r) => (ends.push("long"), r));
    await until("the long prompt in flight", async () => (metric(await (await fetch(`${base}/metrics`)).text(), "kvroute_engine_active_requests", { engine: "e" }) === 1 ? true : undefined));
    const short = postJson(`${base}/v1/completions`, { model: MODEL, prompt: tokenPrompt(1000, 2), max_tokens: 1 }).then((r) => (ends.push("short"), r));
    await until("the short prompt held", async () => ((await held()) === 1 ? true : undefined), 5_000);
    const [a, b] = await Promise.all([long, short]);
    expect([a.status, b.status]).toEqual([200, 200]);
    // Held until the long one's first token, which was its last (max_tokens 1): it could not finish first.
    expect(ends).toEqual(["long", "short"]);
    expect(await held()).toBe(0);
  });

  it("drops a held prompt whose client leaves, and serves the rest", async () => {
    const long = postJson(`${base}/v1/completions`, { model: MODEL, prompt: tokenPrompt(6000, 3), max_tokens: 1 });
    await until("the long prompt in flight", async () => (metric(await (await fetch(`${base}/metrics`)).text(), "kvroute_engine_active_requests", { engine: "e" }) === 1 ? true : undefined));
    const gone = postLeaving(`${base}/v1/completions`, { model: MODEL, prompt: tokenPrompt(1000, 4), max_tokens: 1 });
    await until("the second prompt held", async () => ((await held()) === 1 ? true : undefined), 5_000);
    gone.leave();
    expect(await gone.outcome).toBe("AbortError");
    // Out of the gate as soon as its client left, while the long prompt is still being computed.
    await until("the gate empty", async () => ((await held()) === 0 ? true : undefined), 5_000);
    expect((await long).status).toBe(200);
    const after = await postJson(`${base}/v1/completions`, { model: MODEL, prompt: tokenPrompt(100, 5), max_tokens: 1 });
    expect(after.status).toBe(200);
  });

  it("counts the requests decided in each event-loop turn", async () => {
    const turns = async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      return { sum: metric(text, "kvroute_decision_turn_requests_sum"), count: metric(text, "kvroute_decision_turn_requests_count") };
    };
    const before = await turns();
    const answers = await Promise.all([6, 7, 8, 9].map((family) => postJson(`${base}/v1/completions`, { model: MODEL, prompt: tokenPrompt(100, family), max_tokens: 1 })));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    const after = await turns();
    // Every request is decided once, alone or with others of its turn.
    expect(after.sum - before.sum).toBe(4);
    expect(after.count - before.count).toBeGreaterThanOrEqual(1);
    expect(after.count - before.count).toBeLessThanOrEqual(4);
  });
});
