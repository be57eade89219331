// The router when things go wrong or are configured differently: API keys, engines that cannot count
// cached tokens, engines that die, clients that leave. Every engine is a real `kvroute sim` process.
import { afterEach, describe, expect, it } from "vitest";
import { startSimProcess, type RunningEngine } from "./engines.js";
import { metric, postJson, postSse, startRouterProcess, tokenPrompt, until, type RunningRouter } from "./router-process.js";

const MODEL = "Qwen/Qwen3-0.6B";
const FAST = ["--speedup", "0", "--kv-events", "tcp://127.0.0.1:*"];
/** Modelled time at a tenth of real speed: a decode step takes about 20 ms, a 4k-token prefill about 3 s. */
const SLOW = ["--speedup", "0.1", "--kv-events", "tcp://127.0.0.1:*"];



let engines: RunningEngine[] = [];
let router: RunningRouter | null = null;

async function fleet(engineArgs: string[], count: number, routerArgs: string[] = []): Promise<string> {
  engines = await Promise.all(Array.from({ length: count }, () => startSimProcess(engineArgs)));
  router = await startRouterProcess([...engines.flatMap((e, i) => ["--engine", `${e.url},name=e${i}`]), "--workers", "1", ...routerArgs]);
  const base = router.url;
  await until("every engine up", async () => {
    const health = (await (await fetch(`${base}/health`)).json()) as { engines: { state: string }[] };
    return health.engines.every((e) => e.state === "up") ? true : undefined;
  });
  return base;
}

afterEach(async () => {
  await router?.stop();
  router = null;
  await Promise.all(engines.map((e) => e.stop("SIGKILL")));
  engines = [];
});

describe("API key", () => {
  it("is required on /v1 when set (401 otherwise); /health and /metrics stay open", async () => {
    const base = await fleet(FAST, 1, ["--api-key", "s3cret"]);
    const body = { model: MODEL, prompt: "x", max_tokens: 1 };
    const missing = await postJson(`${base}/v1/completions`, body);
    expect(missing.status).toBe(401);
    expect(missing.json.error).toMatchObject({ type: "authentication_error", code: "invalid_api_key" });
    expect(missing.json.error.message).toMatch(/missing API key/);
    const wrong = await postJson(`${base}/v1/completions`, body, { authorization: "Bearer nope" });
    expect(wrong.status).toBe(401);
    expect(wrong.json.error.message).toBe("invalid API key");
    expect((await fetch(`${base}/v1/models`)).status).toBe(401);
    expect((await postJson(`${base}/v1/completions`, body, { authorization: "Bearer s3cret" })).status).toBe(200);
    expect((await fetch(`${base}/health`)).status).toBe(200);
    expect((await fetch(`${base}/metrics`)).status).toBe(200);
  });
});

describe("cached_tokens when the engine does not count them", () => {
  async function warm(base: string, p: number[]): Promise<void> {
    await postJson(`${base}/v1/completions`, { model: MODEL, prompt: p, max_tokens: 1 });
    await until("the prompt in the index", async () => ((await postJson(`${base}/v1/route`, { model: MODEL, prompt: p })).json.overlap_blocks === 6 ? true : undefined));
  }

  it("reports the router's estimate overlap_blocks × block_size, capped below the prompt, and says so", async () => {
    const base = await fleet([...FAST, "--no-cached-tokens"], 1);
    const p = tokenPrompt(96, 3); // exactly 6 blocks: the estimate 96 must be capped to 95
    await warm(base, p);
    const r = await postJson(`${base}/v1/completions`, { model: MODEL, prompt: p, max_tokens: 1 });
    expect(r.headers.get("x-kvroute-cached-tokens-source")).toBe("router");
    expect(r.json.usage.prompt_tokens_details.cached_tokens).toBe(95);
    const s = await postSse(`${base}/v1/completions`, { model: MODEL, prompt: p, max_tokens: 1, stream: true, stream_options: { include_usage: true } });
    expect(s.headers.get("x-kvroute-cached-tokens-source")).toBe("router");
    expect((s.frames.at(-1) as { usage: { prompt_tokens_details: { cached_tokens: number } } }).usage.prompt_tokens_details.cached_tokens).toBe(95);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(metric(text, "kvroute_cached_tokens_source_total", { source: "router" })).toBeGreaterThanOrEqual(2);
  });

  it("reports 0 with source none when the fallback is switched off", async () => {
    const base = await fleet([...FAST, "--no-cached-tokens"], 1, ["--cached-tokens-fallback", "none"]);
    const p = tokenPrompt(96, 4);
    await warm(base, p);
    const r = await postJson(`${base}/v1/completions`, { model: MODEL, prompt: p, max_tokens: 1 });
    expect(r.headers.get("x-kvroute-cached-tokens-source")).toBe("none");
    expect(r.json.usage.prompt_tokens_details).toEqual({ cached_tokens: 0 });
  });
});

describe("engines that die", () => {
  it("ends the streams in flight on a killed engine with an error, and stops routing to it", async () => {
    const base = await fleet(SLOW, 2);
    const res = await fetch(`${base}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, prompt: tokenPrompt(32, 7), max_tokens: 2000, stream: true }),
    });
    const victim = res.headers.get("x-kvroute-engine")!;
    const reader = res.body!.getReader();
    await reader.read(); // the first token has arrived: this request can no longer be retried
    engines[Number(victim.slice(1))]!.child.kill("SIGKILL");
    let text = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    expect(text).toMatch(/data: \{"error":\{"message":"engine .* disconnected/);
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
    await until("the engine marked down", async () => {
      const health = (await (await fetch(`${base}/health`)).json()) as { engines: { engine: string; state: string }[] };
      return health.engines.find((e) => e.engine === victim)!.state === "down" ? true : undefined;
    });
    const after = await Promise.all(Array.from({ length: 5 }, (_, i) => postJson(`${base}/v1/completions`, { model: MODEL, prompt: tokenPrompt(20, 50 + i), max_tokens: 1 })));
    expect(after.every((r) => r.status === 200 && r.headers.get("x-kvroute-engine") !== victim)).toBe(true);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metric(metrics, "kvroute_engine_up", { engine: victim })).toBe(0);
    expect(metric(metrics, "kvroute_engine_active_requests", { engine: victim })).toBe(0);
  });

  it("retries on another engine a request whose engine died before its first token", async () => {
    const base = await fleet(SLOW, 2);
    const pending = postJson(`${base}/v1/completions`, { model: MODEL, prompt: tokenPrompt(4000, 8), max_tokens: 2 });
    const target = await until("the request booked on an engine", async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      return ["e0", "e1"].find((e) => metric(text, "kvroute_engine_active_requests", { engine: e }) === 1);
    });
    engines[Number(target.slice(1))]!.child.kill("SIGKILL"); // still prefilling: about 3 s of modelled work
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.headers.get("x-kvroute-engine")).not.toBe(target);
    expect(r.json.usage.completion_tokens).toBe(2);
    expect(metric(await (await fetch(`${base}/metrics`)).text(), "kvroute_retries_total")).toBe(1);
  });

  it("answers 503 when no engine is left", async () => {
    const base = await fleet(FAST, 1);
    engines[0]!.child.kill("SIGKILL");
    await until("no engine up", async () => ((await fetch(`${base}/health`)).status === 503 ? true : undefined));
    const r = await postJson(`${base}/v1/completions`, { model: MODEL, prompt: "x", max_tokens: 1 });
    expect(r.status).toBe(503);
    expect(r.json.error).toMatchObject({ type: "service_unavailable_error", code: "no_engine_available" });
  });
});

describe("clients that leave", () => {
  it("a client disconnecting mid-stream aborts its engine request and frees its booked load", async () => {
    const base = await fleet(SLOW, 1);
    const controller = new AbortController();
    const res = await fetch(`${base}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, prompt: tokenPrompt(64, 9), max_tokens: 5000, stream: true }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    let text = await (await fetch(`${base}/metrics`)).text();
    expect(metric(text, "kvroute_engine_active_requests", { engine: "e0" })).toBe(1);
    controller.abort();
    await until("the booked load freed", async () => {
      text = await (await fetch(`${base}/metrics`)).text();
      return metric(text, "kvroute_engine_active_requests", { engine: "e0" }) === 0 ? true : undefined;
    });
    expect(metric(text, "kvroute_engine_active_blocks", { engine: "e0", phase: "decode" })).toBe(0);
    expect(metric(text, "kvroute_requests_total", { endpoint: "/v1/completions", status: "499" })).toBe(1);
    // The engine carries on serving.
    const r = await postJson(`${base}/v1/completions`, { model: MODEL, prompt: tokenPrompt(16, 10), max_tokens: 1 });
    expect(r.status).toBe(200);
  });
});
