// Taking an engine back from a long prompt, end to end, over both kinds of engine: a short prompt sent while
// the engine computes a long one is answered before the long one's first token; the long one is aborted on
// the engine, sent again, and answered in full, its cached tokens the router's estimate. Real `kvroute sim`
// processes at real pace (msgpack protocol and OpenAI HTTP) and `kvroute serve`, over TCP on 127.0.0.1.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHttpSimProcess, startSimProcess, type RunningEngine } from "./engines.js";
import { metric, postJson, postLeaving, startRouterProcess, tokenPrompt, until, untilEnginesUp, type RunningRouter } from "./router-process.js";

const MODEL = "Qwen/Qwen3-0.6B";

describe.each([
  // At real pace the simulated engine computes 0.08 ms a prompt token: a 30,000-token prompt takes 2.4 s. The
  // router reckons it too far from done to be left alone for over a second (at its prior's 0.04 ms a token,
  // until it has learned the engine's rate), time enough for the short prompts to reach it on a busy machine.
  { kind: "msgpack", start: () => startSimProcess(["--speedup", "1"]) },
  { kind: "http", start: () => startHttpSimProcess(["--port", "0", "--speedup", "1", "--kv-events", "none", "--replay", "none", "--enable-prompt-tokens-details"]) },
])("taking an engine back ($kind engine)", ({ kind, start }) => {
  let engine: RunningEngine;
  let router: RunningRouter;
  let base: string;
  const routerMetric = async (name: string) => metric(await (await fetch(`${base}/metrics`)).text(), name, { engine: "e" });

  beforeAll(async () => {
    engine = await start();
    router = await startRouterProcess(["--engine", `${engine.url},kv=none,name=e`, "--workers", "1"]);
    base = router.url;
    await untilEnginesUp(base);
  }, 60_000);

  afterAll(async () => {
    await router?.stop();
    await engine?.stop("SIGKILL");
  });

  it("answers a short prompt before the long one it came behind, then the long one in full", async () => {
    const abortsBefore = kind === "http" ? await engineAborts(engine.url) : 0;
    const ends: string[] = [];
    const long = postJson(`${base}/v1/completions`, { model: MODEL, prompt: tokenPrompt(30_000, 1), max_tokens: 3 }).then((r) => (ends.push("long"), r));
    await until("the long prompt in flight", async () => ((await routerMetric("kvroute_engine_active_requests")) === 1 ? true : undefined));
    const short = postJson(`${base}/v1/completions`, { model: MODEL, prompt: tokenPrompt(1_000, 2), max_tokens: 1 }).then((r) => (ends.push("short"), r));
    const [l, s] = await Promise.all([long, short]);
    expect([l.status, s.status]).toEqual([200, 200]);
    // The short one finished first though the long one needed only three tokens: it was not held behind it.
    expect(ends).toEqual(["short", "long"]);
    expect(l.json.usage.completion_tokens).toBe(3);
    expect(l.json.choices[0].text.length).toBeGreaterThan(0);
    // Sent again, the engine counted as cached what its own first send computed: the router's estimate is reported.
    expect(l.headers.get("x-kvroute-cached-tokens-source")).toBe("router");
    expect(l.json.usage.prompt_tokens_details).toEqual({ cached_tokens: 0 });
    expect(s.json.usage.prompt_tokens_details).toEqual({ cached_tokens: 0 });
    if (kind === "http") expect((await engineAborts(engine.url)) - abortsBefore).toBe(1);
    expect(await routerMetric("kvroute_engine_paused_requests")).toBe(0);
    expect(await routerMetric("kvroute_engine_pauses_total")).toBe(1);
    expect(await routerMetric("kvroute_engine_active_requests")).toBe(0);
  });

  it("drops a paused prompt whose client leaves, and serves the rest", async () => {
    const gone = postLeaving(`${base}/v1/completions`, { model: MODEL, prompt: tokenPrompt(30_000, 3), max_tokens: 3 });
    await until("the long prompt in flight", async () => ((await routerMetric("kvroute_engine_active_requests")) === 1 ? true : undefined));
    // Short prompts one after another keep the long one paused while the client leaves.
    const shorts = [4, 5, 6].map((family) => postJson(`${base}/v1/completions`, { model: MODEL, prompt: tokenPrompt(3_000, family), max_tokens: 1 }));
    await until("the long prompt paused", async () => ((await routerMetric("kvroute_engine_paused_requests")) === 1 ? true : undefined), 5_000);
    gone.leave();
    expect(await gone.outcome).toBe("AbortError");
    expect((await Promise.all(shorts)).map((r) => r.status)).toEqual([200, 200, 200]);
    await until("nothing in flight", async () => ((await routerMetric("kvroute_engine_active_requests")) === 0 ? true : undefined), 5_000);
    expect(await routerMetric("kvroute_engine_paused_requests")).toBe(0);
    // The short prompts paused it at least once more.
    expect(await routerMetric("kvroute_engine_pauses_total")).toBeGreaterThanOrEqual(2);
    const after = await postJson(`${base}/v1/completions`, { model: MODEL, prompt: tokenPrompt(100, 7), max_tokens: 1 });
    expect(after.status).toBe(200);
  });
});

async function engineAborts(url: string): Promise<number> {
  return metric(await (await fetch(`${url}/metrics`)).text(), "vllm:request_success_total", { finished_reason: "abort" });
}
