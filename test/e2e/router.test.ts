// The router as users meet it: `kvroute serve` in front of simulated engines, each its own process,
// exercised over real HTTP, with real TCP to the engines and real ZMQ for their KV events.
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadTokenizer } from "../../src/router/prepare/tokenize/index.js";
import { startSimProcess, type RunningEngine } from "./engines.js";
import { metric, postJson, postSse, startRouterProcess, until, type RunningRouter } from "./router-process.js";

const MODEL = "Qwen/Qwen3-0.6B";
const FAST = ["--speedup", "0", "--kv-events", "tcp://127.0.0.1:*"];

/** A prompt of token ids; equal `family` gives equal leading `shared` tokens. */
function tokens(n: number, family: number, shared = n): number[] {
  return Array.from({ length: n }, (_, i) => (i < shared ? (family * 7919 + i * 104_729) % 150_000 : (family * 31 + i * 17 + 999) % 150_000));
}


describe("kvroute serve against three simulated engines", () => {
  let engines: RunningEngine[] = [];
  let router: RunningRouter;
  let base: string;

  beforeAll(async () => {
    engines = await Promise.all([0, 1, 2].map(() => startSimProcess(FAST)));
    router = await startRouterProcess([...engines.flatMap((e, i) => ["--engine", `${e.url},name=e${i}`]), "--workers", "1"]);
    base = router.url;
    await until("three engines up", async () => {
      const health = (await (await fetch(`${base}/health`)).json()) as { engines: { state: string }[] };
      return health.engines.filter((e) => e.state === "up").length === 3 ? true : undefined;
    });
  });

  afterAll(async () => {
    await router?.stop();
    await Promise.all(engines.map((e) => e.stop()));
  });

  it("reports health, models and metrics", async () => {
    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: "ok", engines: [{ engine: "e0", state: "up" }, { engine: "e1", state: "up" }, { engine: "e2", state: "up" }] });
    const models = (await (await fetch(`${base}/v1/models`)).json()) as { object: string; data: { id: string; object: string; max_model_len: number }[] };
    expect(models).toMatchObject({ object: "list", data: [{ id: MODEL, object: "model", owned_by: "kvroute", max_model_len: 32768 }] });
    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.headers.get("content-type")).toMatch(/text\/plain/);
    const text = await metrics.text();
    expect(metric(text, "kvroute_engine_up", { engine: "e1" })).toBe(1);
    expect(text).toContain("kvroute_index_capacity");
  });

  it("answers a text completion in the OpenAI shape, with cached_tokens present (0) on a cold prompt", async () => {
    const r = await postJson(`${base}/v1/completions`, { model: MODEL, prompt: "A cold prompt about rivers and stones.", max_tokens: 4 });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({
      object: "text_completion",
      model: MODEL,
      choices: [{ index: 0, logprobs: null, finish_reason: "length" }],
      usage: { completion_tokens: 4, prompt_tokens_details: { cached_tokens: 0 } },
    });
    expect(r.json.id).toMatch(/^cmpl-/);
    expect(typeof r.json.created).toBe("number");
    expect(typeof r.json.choices[0].text).toBe("string");
    expect(r.json.choices[0].text.length).toBeGreaterThan(0);
    expect(r.json.usage.total_tokens).toBe(r.json.usage.prompt_tokens + 4);
    expect(r.headers.get("x-kvroute-engine")).toMatch(/^e[012]$/);
    expect(r.headers.get("x-kvroute-overlap-blocks")).toBe("0");
    expect(r.headers.get("x-kvroute-cached-tokens-source")).toBe("engine");
  });

  it("streams a token-id completion as SSE, ending with a usage chunk and [DONE]", async () => {
    const prompt = tokens(40, 1);
    const r = await postSse(`${base}/v1/completions`, { model: MODEL, prompt, max_tokens: 5, stream: true, stream_options: { include_usage: true } });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("text/event-stream");
    expect(r.done).toBe(true);
    const chunks = r.frames as { object: string; choices: { index: number; text: string; finish_reason: string | null }[]; usage: unknown }[];
    expect(chunks.every((c) => c.object === "text_completion")).toBe(true);
    const usage = chunks.at(-1)!;
    expect(usage).toMatchObject({ choices: [], usage: { prompt_tokens: 40, completion_tokens: 5, total_tokens: 45, prompt_tokens_details: { cached_tokens: 0 } } });
    const body = chunks.slice(0, -1);
    expect(body.every((c) => c.usage === null)).toBe(true);
    expect(body.at(-1)!.choices[0]!.finish_reason).toBe("length");
    expect(body.filter((c) => c.choices[0]!.text !== "").length).toBeGreaterThanOrEqual(1);
  });

  it("streams without a usage chunk unless asked", async () => {
    const r = await postSse(`${base}/v1/completions`, { model: MODEL, prompt: tokens(20, 2), max_tokens: 2, stream: true });
    expect(r.done).toBe(true);
    expect(r.frames.every((f) => !("usage" in (f as object)))).toBe(true);
  });

  it("answers a batch of prompts with one choice each", async () => {
    const r = await postJson(`${base}/v1/completions`, { model: MODEL, prompt: ["first text prompt", tokens(20, 3)], max_tokens: 3 });
    expect(r.status).toBe(200);
    expect(r.json.choices.map((c: { index: number }) => c.index)).toEqual([0, 1]);
    expect(r.json.usage.completion_tokens).toBe(6);
    expect(r.headers.get("x-kvroute-engine")!.split(",")).toHaveLength(2);
  });

  it("renders chats with the model's template, streaming and not", async () => {
    const messages = [
      { role: "system", content: "You are terse." },
      { role: "user", content: "Say something." },
    ];
    const r = await postJson(`${base}/v1/chat/completions`, { model: MODEL, messages, max_tokens: 3 });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ object: "chat.completion", choices: [{ index: 0, message: { role: "assistant" }, finish_reason: "length" }], usage: { completion_tokens: 3 } });
    expect(r.json.id).toMatch(/^chatcmpl-/);
    // The engine got exactly the ids Qwen3's template and tokenizer give for this chat.
    const expected = (await loadTokenizer()).encodeChat(messages);
    expect(expected[0]).toBe(151644); // <|im_start|>
    expect(r.json.usage.prompt_tokens).toBe(expected.length);
    const s = await postSse(`${base}/v1/chat/completions`, { model: MODEL, messages, max_tokens: 3, stream: true, stream_options: { include_usage: true } });
    const chunks = s.frames as { object: string; choices: { delta: Record<string, string>; finish_reason: string | null }[]; usage: { prompt_tokens_details: { cached_tokens: number } } | null }[];
    expect(chunks.every((c) => c.object === "chat.completion.chunk")).toBe(true);
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: "assistant", content: "" });
    expect(chunks.at(-2)!.choices[0]).toMatchObject({ delta: {}, finish_reason: "length" });
    expect(chunks.at(-1)!.usage!.prompt_tokens_details.cached_tokens).toBeGreaterThan(0); // the same chat, now cached
    expect(s.done).toBe(true);
  });

  it("routes a repeated long prompt to the engine that cached it, which reports cached tokens", async () => {
    const prompt = tokens(1000, 10);
    const first = await postJson(`${base}/v1/completions`, { model: MODEL, prompt, max_tokens: 2 });
    const engine = first.headers.get("x-kvroute-engine");
    expect(first.json.usage.prompt_tokens_details.cached_tokens).toBe(0);
    // The engine's KV events reach the index asynchronously: wait until the router sees the blocks.
    const route = await until("the index to hold the prompt", async () => {
      const r = await postJson(`${base}/v1/route`, { model: MODEL, prompt });
      return r.json.overlap_blocks === 62 ? r.json : undefined;
    });
    expect(route).toMatchObject({ engine, overlap_blocks: 62, block_size: 16, prompt_tokens: 1000 });
    expect(route.engines).toHaveLength(3);
    const second = await postJson(`${base}/v1/completions`, { model: MODEL, prompt, max_tokens: 2 });
    expect(second.headers.get("x-kvroute-engine")).toBe(engine);
    expect(second.headers.get("x-kvroute-overlap-blocks")).toBe("62");
    expect(second.headers.get("x-kvroute-cached-tokens-source")).toBe("engine");
    expect(second.json.usage.prompt_tokens_details.cached_tokens).toBe(992);
  });

  it("gathers prompts that share a long prefix on one engine", async () => {
    const shared = await postJson(`${base}/v1/completions`, { model: MODEL, prompt: tokens(800, 20, 768), max_tokens: 1 });
    const home = shared.headers.get("x-kvroute-engine");
    await until("the shared prefix in the index", async () => {
      const r = await postJson(`${base}/v1/route`, { model: MODEL, prompt: tokens(800, 20, 768) });
      return r.json.overlap_blocks === 50 ? true : undefined;
    });
    const sameFamily = [];
    for (let i = 0; i < 6; i++) {
      const prompt = tokens(800, 20, 768).map((t, j) => (j >= 768 ? (t + i + 1) % 150_000 : t));
      sameFamily.push((await postJson(`${base}/v1/completions`, { model: MODEL, prompt, max_tokens: 1 })).headers.get("x-kvroute-engine"));
    }
    expect(new Set(sameFamily)).toEqual(new Set([home]));
  });

  it("/v1/route books no load", async () => {
    const before = metric(await (await fetch(`${base}/metrics`)).text(), "kvroute_requests_total", { endpoint: "/v1/completions", status: "200" });
    const r = await postJson(`${base}/v1/route`, { model: MODEL, messages: [{ role: "user", content: "hi" }] });
    expect(r.status).toBe(200);
    expect(r.json.engines.every((e: { active_blocks: number }) => e.active_blocks === 0)).toBe(true);
    // Each engine's cache turnover against the others': the earlier tests' prompts went in unevenly, and the
    // turnovers average 1.
    const turnovers = r.json.engines.map((e: { cache_turnover: number }) => e.cache_turnover) as number[];
    expect(turnovers.some((t) => t !== 1)).toBe(true);
    expect(turnovers.reduce((a, b) => a + b, 0) / turnovers.length).toBeCloseTo(1, 9);
    const after = metric(await (await fetch(`${base}/metrics`)).text(), "kvroute_requests_total", { endpoint: "/v1/completions", status: "200" });
    expect(after).toBe(before);
  });

  describe("bad input gets a 4xx naming the problem, and the server keeps serving", () => {
    const cases: [string, string, unknown, number, RegExp, string | null][] = [
      ["malformed JSON", "/v1/completions", "{not json", 400, /not valid JSON/, "body"],
      ["prompt a number", "/v1/completions", { model: MODEL, prompt: 42 }, 400, /'prompt' must be/, "prompt"],
      ["messages not an array", "/v1/chat/completions", { model: MODEL, messages: "hi" }, 400, /'messages' must be an array/, "messages"],
      ["max_tokens a string", "/v1/completions", { model: MODEL, prompt: "x", max_tokens: "10" }, 400, /'max_tokens' must be an integer/, "max_tokens"],
      ["a negative token id", "/v1/completions", { model: MODEL, prompt: [1, -5] }, 400, /non-negative integer token id/, "prompt"],
      ["a fractional token id", "/v1/completions", { model: MODEL, prompt: [1.5] }, 400, /non-negative integer token id/, "prompt"],
      ["an out-of-vocabulary token id", "/v1/completions", { model: MODEL, prompt: [1, 2, 999_999] }, 400, /token id 999999 at position 2 is outside the model's vocabulary/, "prompt"],
      ["an empty prompt", "/v1/completions", { model: MODEL, prompt: "" }, 400, /must not be empty/, "prompt"],
      ["empty messages", "/v1/chat/completions", { model: MODEL, messages: [] }, 400, /must not be empty/, "messages"],
      ["an unknown role", "/v1/chat/completions", { model: MODEL, messages: [{ role: "oracle", content: "x" }] }, 400, /must be one of/, "messages[0].role"],
      ["max_tokens 0", "/v1/completions", { model: MODEL, prompt: "x", max_tokens: 0 }, 400, /'max_tokens' must be an integer from 1/, "max_tokens"],
      ["max_tokens beyond the context", "/v1/completions", { model: MODEL, prompt: "x", max_tokens: 40_000 }, 400, /maximum context length is 32768 tokens/, "max_tokens"],
      ["a prompt filling the context", "/v1/completions", { model: MODEL, prompt: tokens(32_768, 5) }, 400, /maximum context length/, "prompt"],
      ["temperature out of range", "/v1/completions", { model: MODEL, prompt: "x", temperature: 3 }, 400, /'temperature' must be between 0 and 2/, "temperature"],
      ["n above what is supported", "/v1/completions", { model: MODEL, prompt: "x", n: 2 }, 400, /'n' other than 1 is not supported/, "n"],
      ["an unknown model", "/v1/completions", { model: "gpt-17", prompt: "x" }, 404, /The model `gpt-17` does not exist/, "model"],
    ];
    for (const [what, path, body, status, message, param] of cases) {
      it(what, async () => {
        const r = await postJson(`${base}${path}`, body);
        expect(r.status).toBe(status);
        expect(r.json.error.message).toMatch(message);
        expect(r.json.error.param).toBe(param);
        expect(typeof r.json.error.type).toBe("string");
        expect("code" in r.json.error).toBe(true);
      });
    }

    it("a body over the limit is refused with 413, and the connection closed", async () => {
      // A raw socket: the server answers as soon as the declared length is over the limit and closes the
      // connection rather than read the rest, so a client still sending would only see a broken pipe.
      const { port, hostname } = new URL(base);
      const socket = connect(Number(port), hostname);
      let reply = "";
      socket.on("data", (chunk: Buffer) => (reply += chunk.toString()));
      const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
      socket.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${17 * 1024 * 1024}\r\n\r\n{"model":`);
      await closed;
      expect(reply).toMatch(/^HTTP\/1\.1 413 /);
      expect(reply).toMatch(/larger than the limit of 16777216 bytes/);
    });

    it("unknown paths get 404 and wrong methods 405", async () => {
      const missing = await fetch(`${base}/v1/nothing`);
      expect(missing.status).toBe(404);
      expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("not_found");
      const wrong = await fetch(`${base}/v1/completions`);
      expect(wrong.status).toBe(405);
      expect(wrong.headers.get("allow")).toBe("POST");
    });

    it("still serves after all of that", async () => {
      const r = await postJson(`${base}/v1/completions`, { model: MODEL, prompt: "still here?", max_tokens: 1 });
      expect(r.status).toBe(200);
    });
  });
});

describe("kvroute serve against engines that take time", () => {
  // These engines run at the simulator's modelled pace, so requests take long enough to be in flight
  // together; against engines that answer at once, load never builds and the cheapest engine is always
  // the same one.
  let engines: RunningEngine[] = [];
  let router: RunningRouter;

  beforeAll(async () => {
    engines = await Promise.all([0, 1, 2].map(() => startSimProcess(["--speedup", "1", "--kv-events", "none"])));
    router = await startRouterProcess([...engines.flatMap((e, i) => ["--engine", `${e.url},name=e${i}`]), "--workers", "1"]);
    await until("three engines up", async () => {
      const health = (await (await fetch(`${router.url}/health`)).json()) as { engines: { state: string }[] };
      return health.engines.filter((e) => e.state === "up").length === 3 ? true : undefined;
    });
  });

  afterAll(async () => {
    await router?.stop();
    await Promise.all(engines.map((e) => e.stop()));
  });

  it("spreads unrelated prompts sent together: each books load on its engine, so they do not all pile on one", async () => {
    const spread = await Promise.all(
      Array.from({ length: 12 }, (_, i) => postJson(`${router.url}/v1/completions`, { model: MODEL, prompt: tokens(600, 100 + i), max_tokens: 8 })),
    );
    expect(spread.every((r) => r.status === 200)).toBe(true);
    expect(new Set(spread.map((r) => r.headers.get("x-kvroute-engine"))).size).toBeGreaterThan(1);
  });
});
