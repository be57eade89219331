// kvroute serve in front of OpenAI-compatible HTTP engines, every part a real process: `kvroute sim --http`
// engines (vLLM's HTTP surface and ZMQ KV events on the simulated engine) and the router, over real HTTP
// and ZMQ on 127.0.0.1.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, startHttpSimProcess, type RunningEngine } from "./engines.js";
import { metric, postJson, postSse, startRouterProcess, tokenPrompt, until, type RunningRouter } from "./router-process.js";

const MODEL = "Qwen/Qwen3-0.6B";
/** Token ids below 150,000: inside every engine's vocabulary here (see --vocab-size below). */

interface HttpFleet {
  router: RunningRouter;
  engines: RunningEngine[];
  /** Each engine's command-line arguments, to restart it as it was. */
  args: string[][];
}

const stops: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

/** Sims on fixed ports (so that one can be restarted where it was), and a router in front of them. */
async function fleet(engineArgs: string[][], routerArgs: string[] = [], withKv: boolean[] = engineArgs.map(() => true)): Promise<HttpFleet> {
  const args: string[][] = [];
  for (const extra of engineArgs) {
    const [http, kv, replay] = [await freePort(), await freePort(), await freePort()];
    args.push(["--port", String(http), "--kv-events", `tcp://127.0.0.1:${kv}`, "--replay", `tcp://127.0.0.1:${replay}`, ...extra]);
  }
  const engines = await Promise.all(args.map((a) => startHttpSimProcess(a)));
  stops.push(() => Promise.all(engines.map((e) => e.stop("SIGKILL"))));
  const specs = engines.flatMap((e, i) => ["--engine", `${e.url}${withKv[i] ? `,kv=${e.kvEvents},replay=${e.replay}` : ""},name=e${i}`]);
  const router = await startRouterProcess([...specs, "--workers", "1", ...routerArgs]);
  stops.push(() => router.stop());
  await until("every engine up", async () => ((await health(router.url)).engines.every((e) => e.state === "up") ? true : undefined));
  return { router, engines, args };
}

interface Health {
  status: string;
  engines: { engine: string; state: string; reason?: string; routing?: string }[];
}

async function health(base: string): Promise<Health> {
  return (await (await fetch(`${base}/health`)).json()) as Health;
}

const complete = (base: string, p: number[], extra: Record<string, unknown> = {}) => postJson(`${base}/v1/completions`, { model: MODEL, prompt: p, max_tokens: 2, ...extra });

async function overlapOn(base: string, p: number[], engine: string): Promise<number> {
  const route = (await postJson(`${base}/v1/route`, { model: MODEL, prompt: p })).json as { engines: { engine: string; overlap_blocks: number }[] };
  return route.engines.find((e) => e.engine === engine)?.overlap_blocks ?? -1;
}

describe("kvroute serve in front of kvroute sim --http engines", () => {
  let f: HttpFleet;
  let base: string;

  beforeAll(async () => {
    // e0 reports prompt_tokens_details, e1 does not. Both at half real speed (a decode step takes a few ms,
    // so a long stream can be cut), and with a vocabulary smaller than the router's tokenizer's.
    const common = ["--speedup", "0.5", "--vocab-size", "150000"];
    f = await fleet([[...common, "--enable-prompt-tokens-details"], common]);
    base = f.router.url;
  });

  it("says in /health how each engine is routed", async () => {
    expect((await health(base)).engines).toEqual([
      { engine: "e0", state: "up", routing: "cache" },
      { engine: "e1", state: "up", routing: "cache" },
    ]);
  });

  it("follows the cache, and reports cached_tokens from each source: the engine's own count (0 when the field is missing once it has reported), else the router's estimate", async () => {
    // Fresh prompts land on either engine (equal cost, random tie-break): send them until each engine has one.
    const byEngine = new Map<string, number[]>();
    for (let family = 1; family <= 40 && byEngine.size < 2; family++) {
      const p = tokenPrompt(96, family); // 6 full blocks
      const r = await complete(base, p);
      expect(r.status).toBe(200);
      // Each engine's first answer: 0 cached, which vLLM leaves out; neither has reported the field yet.
      if (byEngine.has(r.headers.get("x-kvroute-engine")!)) continue;
      expect(r.headers.get("x-kvroute-cached-tokens-source")).toBe("router");
      expect(r.json.usage.prompt_tokens_details).toEqual({ cached_tokens: 0 });
      byEngine.set(r.headers.get("x-kvroute-engine")!, p);
    }
    expect([...byEngine.keys()].sort()).toEqual(["e0", "e1"]);
    for (const [engine, p] of byEngine) {
      await until(`${engine}'s blocks in the index`, async () => ((await overlapOn(base, p, engine)) === 6 ? true : undefined));
      const again = await complete(base, p);
      expect(again.headers.get("x-kvroute-engine")).toBe(engine);
      expect(again.headers.get("x-kvroute-overlap-blocks")).toBe("6");
      if (engine === "e0") {
        // The engine's count: 5 blocks, the last prompt token always computed.
        expect(again.headers.get("x-kvroute-cached-tokens-source")).toBe("engine");
        expect(again.json.usage.prompt_tokens_details).toEqual({ cached_tokens: 80 });
        // One block, exactly the first of p: routed to e0 by its overlap, nothing reusable (the last token is
        // computed), so e0 leaves the field out; it has reported it before, so that means 0.
        const oneBlock = await complete(base, p.slice(0, 16));
        expect(oneBlock.headers.get("x-kvroute-engine")).toBe("e0");
        expect(oneBlock.headers.get("x-kvroute-cached-tokens-source")).toBe("engine");
        expect(oneBlock.json.usage.prompt_tokens_details).toEqual({ cached_tokens: 0 });
      } else {
        // No count from e1: the router's estimate overlap × block size, capped below the prompt.
        expect(again.headers.get("x-kvroute-cached-tokens-source")).toBe("router");
        expect(again.json.usage.prompt_tokens_details).toEqual({ cached_tokens: 95 });
      }
    }
    const streamed = await postSse(`${base}/v1/completions`, { model: MODEL, prompt: byEngine.get("e0")!, max_tokens: 3, stream: true, stream_options: { include_usage: true } });
    expect(streamed.done).toBe(true);
    expect(streamed.frames.at(-1)).toMatchObject({ usage: { prompt_tokens: 96, completion_tokens: 3, prompt_tokens_details: { cached_tokens: 80 } } });
  });

  it("passes an engine's 400 to the client with its status and message, without retrying it", async () => {
    const before = metric(await (await fetch(`${base}/metrics`)).text(), "kvroute_retries_total");
    // Ids the router's tokenizer knows but these engines' vocabulary (--vocab-size 150000) does not.
    const r = await complete(base, [1, 2, 150_500]);
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ type: "invalid_request_error", code: "invalid_request" });
    expect(r.json.error.message).toMatch(/prompt_token_ids\[2\] is 150500, outside the vocabulary \[0, 150000\)/);
    const s = await postSse(`${base}/v1/completions`, { model: MODEL, prompt: [1, 2, 150_500], max_tokens: 2, stream: true });
    expect(s.status).toBe(400);
    expect(metric(await (await fetch(`${base}/metrics`)).text(), "kvroute_retries_total")).toBe(before);
  });

  it("closes the engine request of a client that disconnects mid-stream, and releases its booked load", async () => {
    const controller = new AbortController();
    const res = await fetch(`${base}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, prompt: tokenPrompt(64, 99), max_tokens: 5000, ignore_eos: true, stream: true }),
      signal: controller.signal,
    });
    const engine = res.headers.get("x-kvroute-engine")!;
    const sim = f.engines[Number(engine.slice(1))]!;
    const simMetrics = async () => (await fetch(`${sim.url}/metrics`)).text();
    await res.body!.getReader().read();
    expect(metric(await simMetrics(), "vllm:num_requests_running")).toBe(1);
    expect(metric(await (await fetch(`${base}/metrics`)).text(), "kvroute_engine_active_requests", { engine })).toBe(1);
    // Another client of the same engine, not going through the router: the engine's /metrics (read every
    // second) shows two running requests, one of them not the router's, and routing counts it.
    const other = new AbortController();
    const direct = await fetch(`${sim.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: MODEL, prompt: tokenPrompt(64, 98), max_tokens: 5000, ignore_eos: true, stream: true }),
      signal: other.signal,
    });
    await direct.body!.getReader().read();
    await until("the engine's report of both requests", async () =>
      metric(await (await fetch(`${base}/metrics`)).text(), "kvroute_engine_reported_requests", { engine, state: "running" }) === 2 ? true : undefined,
    );
    const route = (await postJson(`${base}/v1/route`, { model: MODEL, prompt: tokenPrompt(64, 97) })).json as { engines: { engine: string; external_blocks: number }[] };
    expect(route.engines.find((e) => e.engine === engine)!.external_blocks).toBeGreaterThan(0);
    other.abort();
    controller.abort();
    await until("the engine aborted both requests", async () => (metric(await simMetrics(), "vllm:request_success_total", { finished_reason: "abort" }) === 2 ? true : undefined));
    expect(metric(await simMetrics(), "vllm:num_requests_running")).toBe(0);
    await until("the booked load released", async () => {
      const text = await (await fetch(`${base}/metrics`)).text();
      return metric(text, "kvroute_engine_active_requests", { engine }) === 0 && metric(text, "kvroute_engine_active_blocks", { engine, phase: "decode" }) === 0 ? true : undefined;
    });
  });

  it("takes a killed engine out (its index entries dropped), serves on the other, and takes it back when it restarts", async () => {
    const p = tokenPrompt(96, 200);
    const first = await complete(base, p);
    const victim = first.headers.get("x-kvroute-engine")!;
    const i = Number(victim.slice(1));
    await until("the prompt in the index", async () => ((await overlapOn(base, p, victim)) === 6 ? true : undefined));
    await f.engines[i]!.stop("SIGKILL");
    await until(`${victim} down`, async () => ((await health(base)).engines.find((e) => e.engine === victim)?.state === "down" ? true : undefined));
    const h = await health(base);
    expect(h.status).toBe("ok");
    expect(h.engines.find((e) => e.engine === victim)!.reason).toBeTruthy();
    const meanwhile = await complete(base, p);
    expect(meanwhile.status).toBe(200);
    expect(meanwhile.headers.get("x-kvroute-engine")).not.toBe(victim);
    f.engines[i] = await startHttpSimProcess(f.args[i]!);
    await until(`${victim} back up`, async () => ((await health(base)).engines.find((e) => e.engine === victim)?.state === "up" ? true : undefined));
    // A restarted engine's cache is empty, and so is its part of the index.
    expect(await overlapOn(base, p, victim)).toBe(0);
    const route = (await postJson(`${base}/v1/route`, { model: MODEL, prompt: tokenPrompt(96, 201) })).json as { engines: { engine: string }[] };
    expect(route.engines.map((e) => e.engine)).toContain(victim);
  });
});

describe("engines that cannot be followed", () => {
  it("refuses an engine whose KV events carry another block size (reason in /health), and routes an engine without kv= by load alone when approximate mode is off", async () => {
    // --engine-metrics-interval 0: /metrics is not read, so the block size shows only in the KV events.
    const f = await fleet([["--speedup", "0", "--block-size", "32"], ["--speedup", "0"]], ["--engine-metrics-interval", "0", "--approx-ttl", "0"], [true, false]);
    const base = f.router.url;
    expect((await health(base)).engines.map((e) => e.routing)).toEqual(["cache", "load"]);
    expect(f.router.logs.some((l) => l.msg === "engine up, routed by load alone" && l.engine === "e1")).toBe(true);
    // Send until e0 has served a request and published its blocks.
    await until("e0 refused", async () => {
      await complete(base, tokenPrompt(64, Math.floor(Math.random() * 1e6)));
      return (await health(base)).engines[0]!.state === "refused" ? true : undefined;
    });
    const e0 = (await health(base)).engines[0]!;
    expect(e0.reason).toMatch(/its KV events carry blocks of 32 tokens, but the router hashes blocks of 16/);
    expect(f.router.logs.some((l) => l.msg === "engine refused" && l.engine === "e0")).toBe(true);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(metric(text, "kvroute_kv_events_rejected_total", { reason: "block_size_mismatch" })).toBeGreaterThan(0);
    // The fleet goes on with e1 alone.
    const r = await complete(base, tokenPrompt(64, 7));
    expect(r.status).toBe(200);
    expect(r.headers.get("x-kvroute-engine")).toBe("e1");
  });
});
