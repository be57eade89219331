// Disaggregated serving end to end: `kvroute serve` in front of simulated prefill and decode engines, each
// a real `kvroute sim` process (msgpack, and vLLM's HTTP surface with --http), KV blocks moving between them
// over the engines' transfer channel, KV events on real ZMQ. Covered over both transports: prefill routing
// that follows the cache, the answer's cached tokens (the prefill engine's count, else the prefill overlap
// estimate), /v1/route, conditional disaggregation, and every failure: a prefill engine dying before it
// answers, no prefill engine left, a failed KV transfer, a decode engine dying mid-stream, and clients that
// leave during either stage.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EngineClient } from "../../src/index.js";
import { startHttpSimProcess, startSimProcess, type RunningEngine } from "./engines.js";
import { metric, postJson, postSse, startRouterProcess, tokenPrompt, until, type RunningRouter } from "./router-process.js";

const MODEL = "Qwen/Qwen3-0.6B";

type Transport = "msgpack" | "http";

/** A simulated engine process: KV events on; a fifth of real speed (a 4,000-token prefill takes about 1.6 s). */
function engine(transport: Transport, extra: string[] = []): Promise<RunningEngine> {
  const args = ["--speedup", "0.2", "--kv-events", "tcp://127.0.0.1:*", ...extra];
  return transport === "http" ? startHttpSimProcess(["--enable-prompt-tokens-details", ...args]) : startSimProcess(args);
}

/** The --engine argument for a sim process: HTTP engines name their KV-event endpoint, as `vllm serve` would be given. */
function spec(e: RunningEngine, name: string, role: string): string {
  return `${e.url}${e.url.startsWith("http") ? `,kv=${e.kvEvents}` : ""},name=${name},role=${role}`;
}

interface Health {
  engines: { engine: string; state: string; role?: string }[];
}

const health = async (base: string) => (await (await fetch(`${base}/health`)).json()) as Health;
const metrics = async (base: string) => (await fetch(`${base}/metrics`)).text();
const complete = (base: string, p: number[], extra: Record<string, unknown> = {}) => postJson(`${base}/v1/completions`, { model: MODEL, prompt: p, max_tokens: 2, ...extra });

interface Route {
  disaggregation?: { plan: string; why?: string; prefill: { engine: string; engines: { engine: string; overlap_blocks: number }[] }; decode: { engine: string; engines: { engine: string; overlap_blocks: number }[] } };
}
const route = async (base: string, p: number[]) => (await postJson(`${base}/v1/route`, { model: MODEL, prompt: p })).json as Route;
const overlapOf = (list: { engine: string; overlap_blocks: number }[], engine: string) => list.find((e) => e.engine === engine)?.overlap_blocks ?? -1;

/** Every engine's booked requests in the router, summed. */
async function booked(base: string, names: string[]): Promise<number> {
  const text = await metrics(base);
  return names.reduce((sum, engine) => sum + metric(text, "kvroute_engine_active_requests", { engine }), 0);
}

/**
 * Prefill and decode engines behind a router. The router routes with kv-blocks, whose cost is in blocks:
 * the default kv policy's costs are times its models learn from each engine's first answers, which at a
 * fifth of real speed would make the choices here depend on which engine happened to answer first.
 */
async function fleet(prefill: Promise<RunningEngine>[], decode: Promise<RunningEngine>[]) {
  const [p, d] = await Promise.all([Promise.all(prefill), Promise.all(decode)]);
  const names = [...p.map((_, i) => `p${i}`), ...d.map((_, i) => `d${i}`)];
  const specs = [...p.map((e, i) => ["--engine", spec(e, `p${i}`, "prefill")]), ...d.map((e, i) => ["--engine", spec(e, `d${i}`, "decode")])].flat();
  const router = await startRouterProcess([...specs, "--workers", "1", "--policy", "kv-blocks"]);
  await until("every engine up", async () => ((await health(router.url)).engines.every((e) => e.state === "up") ? true : undefined));
  return { router, base: router.url, prefill: p, decode: d, names, stop: async () => (await router.stop(), await Promise.all([...p, ...d].map((e) => e.stop("SIGKILL")))) };
}

for (const transport of ["msgpack", "http"] as const) {
  describe(`disaggregated serving over ${transport}: two prefill and two decode engines`, () => {
    let f: Awaited<ReturnType<typeof fleet>>;
    let base: string;

    beforeAll(async () => {
      f = await fleet([engine(transport), engine(transport)], [engine(transport), engine(transport)]);
      base = f.base;
    });
    afterAll(async () => f?.stop());

    it("says each engine's role in /health", async () => {
      expect((await health(base)).engines.map((e) => [e.engine, e.role])).toEqual([["p0", "prefill"], ["p1", "prefill"], ["d0", "decode"], ["d1", "decode"]]);
    });

    it("prefills where the prefill engines' cache is, decodes on a decode engine, and reports the prefill engine's count", async () => {
      const p = tokenPrompt(96, 1); // 6 full blocks
      const first = await complete(base, p);
      expect(first.status).toBe(200);
      const prefillEngine = first.headers.get("x-kvroute-prefill-engine")!;
      const decodeEngine = first.headers.get("x-kvroute-engine")!;
      expect(["p0", "p1"]).toContain(prefillEngine);
      expect(["d0", "d1"]).toContain(decodeEngine);
      expect(first.headers.get("x-kvroute-overlap-blocks")).toBe("0");
      expect(first.json.usage).toMatchObject({ prompt_tokens: 96, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 0 } });
      // Both sides publish the blocks: the prefill engine computed them, the decode engine received them.
      await until("the prompt in the index on both stages", async () => {
        const r = await route(base, p);
        return overlapOf(r.disaggregation!.prefill.engines, prefillEngine) === 6 && overlapOf(r.disaggregation!.decode.engines, decodeEngine) === 6 ? true : undefined;
      });
      const r = await route(base, p);
      expect(r.disaggregation).toMatchObject({ plan: "split", prefill: { engine: prefillEngine }, decode: { engine: decodeEngine } });
      const again = await complete(base, p);
      expect(again.headers.get("x-kvroute-prefill-engine")).toBe(prefillEngine);
      expect(again.headers.get("x-kvroute-engine")).toBe(decodeEngine);
      expect(again.headers.get("x-kvroute-overlap-blocks")).toBe("6");
      // The prefill engine's count: 5 blocks, the last prompt token being computed. The decode engine counts
      // the 95 transferred tokens, which says nothing of reuse, and is not reported.
      expect(again.headers.get("x-kvroute-cached-tokens-source")).toBe("engine");
      expect(again.json.usage.prompt_tokens_details).toEqual({ cached_tokens: 80 });
      const streamed = await postSse(`${base}/v1/completions`, { model: MODEL, prompt: p, max_tokens: 3, stream: true, stream_options: { include_usage: true } });
      expect(streamed.done).toBe(true);
      expect(streamed.headers.get("x-kvroute-prefill-engine")).toBe(prefillEngine);
      expect(streamed.frames.at(-1)).toMatchObject({ usage: { prompt_tokens: 96, completion_tokens: 3, prompt_tokens_details: { cached_tokens: 80 } } });
      expect(metric(await metrics(base), "kvroute_disaggregated_requests_total", { path: "split" })).toBeGreaterThanOrEqual(3);
    });

    it("aborts the prefill when the client leaves during it, and the decode when it leaves during that; both bookings are freed", async () => {
      const during = new AbortController();
      const pending = fetch(`${base}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, prompt: tokenPrompt(4000, 2), max_tokens: 4 }),
        signal: during.signal,
      }).catch(() => null);
      await until("the prefill booked", async () => ((await booked(base, ["p0", "p1"])) === 1 ? true : undefined));
      during.abort();
      await pending;
      await until("the prefill aborted and its booking freed", async () => {
        const text = await metrics(base);
        return metric(text, "kvroute_disaggregation_failures_total", { stage: "prefill", failure: "aborted" }) === 1 && (await booked(base, f.names)) === 0 ? true : undefined;
      });
      const streaming = new AbortController();
      const res = await fetch(`${base}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, prompt: tokenPrompt(64, 3), max_tokens: 5000, ignore_eos: true, stream: true }),
        signal: streaming.signal,
      });
      await res.body!.getReader().read(); // the decode engine's first token
      expect(await booked(base, f.names)).toBe(1);
      streaming.abort();
      await until("the decode aborted and its booking freed", async () => {
        const text = await metrics(base);
        return metric(text, "kvroute_disaggregation_failures_total", { stage: "decode", failure: "aborted" }) === 1 && (await booked(base, f.names)) === 0 ? true : undefined;
      });
      const text = await metrics(base);
      for (const engine of f.names) expect(metric(text, "kvroute_engine_active_blocks", { engine, phase: "decode" })).toBe(0);
    });

    it("retries the prefill on the other prefill engine when its engine dies before answering", async () => {
      const pending = complete(base, tokenPrompt(4000, 4));
      const victim = await until("the prefill booked", async () => {
        const text = await metrics(base);
        return ["p0", "p1"].find((e) => metric(text, "kvroute_engine_active_requests", { engine: e }) === 1);
      });
      f.prefill[Number(victim.slice(1))]!.child.kill("SIGKILL");
      const r = await pending;
      expect(r.status).toBe(200);
      expect(r.headers.get("x-kvroute-prefill-engine")).toBe(victim === "p0" ? "p1" : "p0");
      expect(r.json.usage.completion_tokens).toBe(2);
      const text = await metrics(base);
      expect(metric(text, "kvroute_disaggregation_failures_total", { stage: "prefill", failure: "retried" })).toBe(1);
      expect(metric(text, "kvroute_retries_total")).toBe(1);
      expect(f.router.logs.some((l) => l.msg === "prefill engine failed before answering; retrying on another prefill engine" && l.engine === victim)).toBe(true);
    });

    it("ends a stream with an error when its decode engine dies mid-stream", async () => {
      const res = await fetch(`${base}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, prompt: tokenPrompt(32, 5), max_tokens: 2000, ignore_eos: true, stream: true }),
      });
      const victim = res.headers.get("x-kvroute-engine")!;
      const reader = res.body!.getReader();
      await reader.read();
      f.decode[Number(victim.slice(1))]!.child.kill("SIGKILL");
      let text = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      expect(text).toMatch(/data: \{"error":\{"message":"engine .*(disconnected|stream broke)/);
      expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
      expect(metric(await metrics(base), "kvroute_disaggregation_failures_total", { stage: "decode", failure: "engine_failed" })).toBe(1);
      await until("its booking freed", async () => ((await booked(base, f.names)) === 0 ? true : undefined));
    });

    it("prefills on a decode engine while no prefill engine is up (degraded)", async () => {
      for (const e of f.prefill) e.child.kill("SIGKILL");
      await until("no prefill engine up", async () => ((await health(base)).engines.filter((e) => e.role === "prefill" && e.state === "up").length === 0 ? true : undefined));
      const r = await complete(base, tokenPrompt(64, 6));
      expect(r.status).toBe(200);
      expect(r.headers.get("x-kvroute-prefill-engine")).toBe(r.headers.get("x-kvroute-engine"));
      expect(r.json.usage.completion_tokens).toBe(2);
      const text = await metrics(base);
      expect(metric(text, "kvroute_disaggregated_requests_total", { path: "local_degraded" })).toBe(1);
      expect(metric(text, "kvroute_disaggregation_failures_total", { stage: "prefill", failure: "unavailable" })).toBe(1);
      expect((await route(base, tokenPrompt(64, 7))).disaggregation).toMatchObject({ plan: "local", why: "no_prefill_engine" });
    });
  });

  describe(`a failed KV transfer over ${transport}`, () => {
    let f: Awaited<ReturnType<typeof fleet>>;
    // The prefill engine frees held blocks at once: every decode engine's pull finds them gone.
    beforeAll(async () => {
      f = await fleet([engine(transport, ["--kv-hold-timeout-ms", "0"])], [engine(transport)]);
    });
    afterAll(async () => f?.stop());

    /** A request straight to the prefill engine, so that it holds a prompt the decode engine does not. */
    async function warmPrefillEngine(p: number[]): Promise<void> {
      const e = f.prefill[0]!;
      if (transport === "http") {
        expect((await fetch(`${e.url}/v1/completions`, { method: "POST", body: JSON.stringify({ model: MODEL, prompt: p, max_tokens: 1 }) })).status).toBe(200);
        return;
      }
      const client = new EngineClient(e.url);
      await client.connect();
      for await (const _ of client.generate({ promptTokenIds: p, sampling: { maxTokens: 1 } }));
      await client.close();
    }

    it("reports the decode engine's own count: it computed the prompt itself", async () => {
      // Twice the same prompt: the second time the decode engine has its own copy, and an HTTP engine has
      // reported its count once (vLLM leaves out a 0 before that).
      const a = tokenPrompt(96, 8);
      await complete(f.base, a);
      await until("the first decode's blocks in the index", async () => (overlapOf((await route(f.base, a)).disaggregation!.decode.engines, "d0") === 6 ? true : undefined));
      expect((await complete(f.base, a)).json.usage.prompt_tokens_details).toEqual({ cached_tokens: 80 });
      // A prompt the prefill engine holds and the decode engine does not: its count is 144, the decode
      // engine's 0, and the answer is the decode engine's.
      const b = tokenPrompt(160, 9);
      await warmPrefillEngine(b);
      await until("the prefill engine's blocks in the index", async () => (overlapOf((await route(f.base, b)).disaggregation!.prefill.engines, "p0") === 10 ? true : undefined));
      const r = await complete(f.base, b);
      expect(r.status).toBe(200);
      expect(r.headers.get("x-kvroute-overlap-blocks")).toBe("10");
      expect(r.json.usage.prompt_tokens_details).toEqual({ cached_tokens: 0 });
      expect(r.headers.get("x-kvroute-cached-tokens-source")).toBe("engine");
      expect(metric(await metrics(f.base), "kvroute_disaggregation_failures_total", { stage: "decode", failure: "kv_transfer_failed" })).toBeGreaterThanOrEqual(2);
      expect(f.router.logs.some((l) => l.msg === "the decode engine could not load the prefilled KV blocks and computed the prompt itself; cached_tokens are its own")).toBe(true);
    });
  });

  describe(`simulated pools from kvroute serve ${transport === "http" ? "--sim-http " : ""}--sim-prefill 1 --sim-decode 1 --sim-no-cached-tokens`, () => {
    let router: RunningRouter;
    beforeAll(async () => {
      router = await startRouterProcess(["--sim-prefill", "1", "--sim-decode", "1", "--sim-no-cached-tokens", "--sim-speedup", "0", "--disagg-min-prefill-tokens", "48", "--workers", "1", ...(transport === "http" ? ["--sim-http"] : [])]);
      await until("both engines up", async () => ((await health(router.url)).engines.every((e) => e.state === "up") ? true : undefined));
    });
    afterAll(async () => router?.stop());

    it("reports the prefill overlap × block size when engines withhold their count, and prefills a short uncached part on the decode engine", async () => {
      const base = router.url;
      expect((await health(base)).engines.map((e) => [e.engine, e.role])).toEqual([["sim-p0", "prefill"], ["sim-d0", "decode"]]);
      const p = tokenPrompt(96, 10);
      const first = await complete(base, p);
      expect(first.headers.get("x-kvroute-prefill-engine")).toBe("sim-p0");
      expect(first.headers.get("x-kvroute-cached-tokens-source")).toBe("router");
      expect(first.json.usage.prompt_tokens_details).toEqual({ cached_tokens: 0 });
      const longerPrompt = [...p, ...tokenPrompt(64, 11)];
      // Once the decode engine has published the blocks it received, nothing of the prompt is uncached there
      // (under 48 tokens): it is prefilled there, without the prefill engine.
      let seen = "";
      await until("the prompt in the index on both engines", async () => {
        const local = (await route(base, p)).disaggregation!;
        const split = (await route(base, longerPrompt)).disaggregation!;
        seen = JSON.stringify({ local, split });
        return local.plan === "local" && overlapOf(split.prefill.engines, "sim-p0") === 6 ? true : undefined;
      }).catch((err: Error) => {
        throw new Error(`${err.message}; the routes last seen: ${seen}\n${JSON.stringify(router.logs.filter((l) => l.msg !== "request"))}`);
      });
      expect((await route(base, p)).disaggregation).toMatchObject({ plan: "local", why: "short", decode: { engine: "sim-d0", engines: [{ engine: "sim-d0", overlap_blocks: 6 }] } });
      const local = await complete(base, p);
      expect(local.headers.get("x-kvroute-prefill-engine")).toBe("sim-d0");
      expect(local.headers.get("x-kvroute-engine")).toBe("sim-d0");
      expect(local.json.usage.prompt_tokens_details).toEqual({ cached_tokens: 95 }); // 6 blocks, capped below the prompt
      // 64 more tokens: split again, the answer being the prefill engine's overlap, 6 blocks.
      const longer = await complete(base, longerPrompt);
      expect(longer.headers.get("x-kvroute-prefill-engine")).toBe("sim-p0");
      expect(longer.headers.get("x-kvroute-overlap-blocks")).toBe("6");
      expect(longer.headers.get("x-kvroute-cached-tokens-source")).toBe("router");
      expect(longer.json.usage.prompt_tokens_details).toEqual({ cached_tokens: 96 });
      const text = await metrics(base);
      expect(metric(text, "kvroute_disaggregated_requests_total", { path: "split" })).toBe(2);
      expect(metric(text, "kvroute_disaggregated_requests_total", { path: "local_short" })).toBe(1);
    });
  });
}
