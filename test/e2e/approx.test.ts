// Approximate mode end to end: engines whose KV events the router does not follow (a msgpack engine given
// kv=none, an HTTP engine without kv=) are routed by what the router sent them. Every part is a real
// process: `kvroute sim` engines and `kvroute serve`, over TCP and HTTP on 127.0.0.1.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHttpSimProcess, startSimProcess, type RunningEngine } from "./engines.js";
import { metric, postJson, startRouterProcess, tokenPrompt, until, type RunningRouter } from "./router-process.js";

const MODEL = "Qwen/Qwen3-0.6B";

interface Route {
  engine: string;
  engines: { engine: string; overlap_blocks: number }[];
}

async function route(base: string, p: number[]): Promise<Route> {
  return (await postJson(`${base}/v1/route`, { model: MODEL, prompt: p })).json as Route;
}

describe("approximate mode", () => {
  let engines: RunningEngine[] = [];
  let router: RunningRouter;
  let base: string;

  beforeAll(async () => {
    engines = await Promise.all([
      startSimProcess(["--speedup", "0", "--kv-events", "tcp://127.0.0.1:*"]),
      startHttpSimProcess(["--speedup", "0", "--enable-prompt-tokens-details"]),
    ]);
    // kv-blocks: the cost counts blocks, so a held prefix decides between two idle engines whatever the
    // time model has learned.
    router = await startRouterProcess([
      "--engine", `${engines[0]!.url},kv=none,name=m`,
      "--engine", `${engines[1]!.url},name=h`,
      "--approx-ttl", "1.5", "--policy", "kv-blocks", "--workers", "1",
    ]);
    base = router.url;
    await until("both engines up", async () => {
      const health = (await (await fetch(`${base}/health`)).json()) as { engines: { state: string }[] };
      return health.engines.every((e) => e.state === "up") ? true : undefined;
    });
  }, 60_000);

  afterAll(async () => {
    await router?.stop();
    await Promise.all(engines.map((e) => e.stop("SIGKILL")));
  });

  it("says so in /health and the log", async () => {
    const health = (await (await fetch(`${base}/health`)).json()) as { engines: { engine: string; routing: string }[] };
    expect(health.engines.map((e) => [e.engine, e.routing])).toEqual([["m", "approx"], ["h", "approx"]]);
    expect(router.logs.some((l) => l.msg === "engine up, routed in approximate mode" && l.engine === "m")).toBe(true);
  });

  it("routes a prompt back to the engine it was sent to, which really holds it, until the TTL runs out", async () => {
    for (const family of [11, 12]) {
      const p = tokenPrompt(16 * 40, family);
      const first = await postJson(`${base}/v1/completions`, { model: MODEL, prompt: p, max_tokens: 1 });
      expect(first.status).toBe(200);
      const chosen = first.headers.get("x-kvroute-engine")!;
      const other = chosen === "m" ? "h" : "m";
      await until("the prediction in the index", async () => ((await route(base, p)).engines.find((e) => e.engine === chosen)!.overlap_blocks === 40 ? true : undefined));
      const r = await route(base, p);
      expect(r.engine).toBe(chosen);
      expect(r.engines.find((e) => e.engine === other)!.overlap_blocks).toBe(0);
      // The engine's own count says the prediction was right.
      const again = await postJson(`${base}/v1/completions`, { model: MODEL, prompt: p, max_tokens: 1 });
      expect(again.headers.get("x-kvroute-engine")).toBe(chosen);
      expect(again.headers.get("x-kvroute-overlap-blocks")).toBe("40");
      expect(again.headers.get("x-kvroute-cached-tokens-source")).toBe("engine");
      expect(again.json.usage.prompt_tokens_details.cached_tokens).toBe(16 * 39);
      // Nothing renews it: the router forgets it within the TTL plus its expiry timer's period.
      const sentAt = Date.now();
      await until("the prediction forgotten", async () => ((await route(base, p)).engines.find((e) => e.engine === chosen)!.overlap_blocks === 0 ? true : undefined), 10_000);
      expect(Date.now() - sentAt).toBeGreaterThan(1000);
    }
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(metric(text, "kvroute_approx_predictions_total")).toBe(4);
    expect(metric(text, "kvroute_approx_blocks_forgotten_total", { reason: "expired" })).toBe(80);
  }, 60_000);
});
