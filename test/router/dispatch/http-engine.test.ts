// The HTTP engine against real HTTP servers on 127.0.0.1: the HTTP simulator (vLLM's surface on the
// simulated engine), and for failures the simulator cannot show (a 5xx, a stream cut short) a few lines of
// node:http.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { EngineEvent, EngineInfo } from "../../../src/router/dispatch/engine.js";
import { HttpEngine, type HttpEngineOptions } from "../../../src/router/dispatch/http-engine.js";
import type { EngineReport } from "../../../src/router/schedule/index.js";
import { startHttpSimulator, type HttpSimulatorHandle, type HttpSimulatorOptions } from "../../../src/mock-engine/http-server.js";

const MODEL = "Qwen/Qwen3-0.6B";
const prompt = (n: number, salt: number) => Array.from({ length: n }, (_, i) => (Math.imul(i + 1 + salt * 7919, 2654435761) >>> 0) % 150_000);

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function sim(options: HttpSimulatorOptions = {}): Promise<HttpSimulatorHandle> {
  const s = await startHttpSimulator({ kvEventsEndpoint: null, ...options });
  closers.push(() => s.close());
  return s;
}

interface Watched {
  engine: HttpEngine;
  ups: EngineInfo[];
  downs: string[];
  refusals: string[];
  loads: (EngineReport | null)[];
}

function watch(url: string, options: Partial<HttpEngineOptions> = {}): Watched {
  const engine = new HttpEngine(url, { name: "e", blockSize: 16, kvEndpoint: null, replayEndpoint: null, metricsIntervalMs: 0, retryInitialMs: 20, retryMaxMs: 100, healthIntervalMs: 100, log: () => undefined, ...options });
  closers.push(() => engine.close());
  const w: Watched = { engine, ups: [], downs: [], refusals: [], loads: [] };
  engine.start({ up: (i) => w.ups.push(i), down: (r) => w.downs.push(r), refused: (r) => w.refusals.push(r), load: (r) => w.loads.push(r) });
  return w;
}

async function until(what: string, test: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function collect(stream: AsyncIterable<EngineEvent>): Promise<EngineEvent[]> {
  const events: EngineEvent[] = [];
  for await (const e of stream) events.push(e);
  return events;
}

const request = (tokens: number[], maxTokens = 4) => ({ promptTokenIds: tokens, sampling: { maxTokens, ignoreEos: true } });

describe("HttpEngine", () => {
  it("comes up with the model and max_model_len from /v1/models and KV capacity from /metrics; without kv= it has no KV events", async () => {
    const s = await sim({ maxModelLen: 4096, numBlocks: 1024 });
    const w = watch(s.url, { metricsIntervalMs: 50 });
    await until("up", () => w.ups.length === 1);
    expect(w.ups[0]).toEqual({ software: "vllm (HTTP)", model: MODEL, blockSize: 16, maxModelLen: 4096, numBlocks: 1024, kvEvents: null, ranks: { start: 0, size: 1 } });
    await until("a load report", () => w.loads.length > 0);
    expect(w.loads[0]).toMatchObject({ running: 0, waiting: 0, kvCacheUsage: 0, numBlocks: 1024, prefill: { requests: 0, seconds: 0 } });
    const withKv = watch(s.url, { kvEndpoint: "tcp://127.0.0.1:5557", replayEndpoint: "tcp://127.0.0.1:5558" });
    await until("up", () => withKv.ups.length === 1);
    expect(withKv.ups[0]!.kvEvents).toEqual({ endpoint: "tcp://127.0.0.1:5557", replayEndpoint: "tcp://127.0.0.1:5558", topic: "" });
  });

  it("streams a request: every token counted, the engine's usage; cached_tokens unknown until the engine reported it, then 0 when missing", async () => {
    const s = await sim({ enablePromptTokensDetails: true });
    const w = watch(s.url);
    await until("up", () => w.ups.length === 1);
    const p = prompt(40, 1);
    const first = await collect(w.engine.generate(request(p, 5), {}));
    const deltas = first.filter((e) => e.type === "delta");
    expect(deltas.reduce((n, e) => n + (e.type === "delta" ? (e.tokenCount ?? -1) : 0), 0)).toBe(5);
    expect(deltas.map((e) => (e.type === "delta" ? e.text : "")).join("")).toMatch(/^( \w+){5}$/);
    // A fresh prompt: 0 cached, which vLLM leaves out; this engine has not reported the field yet.
    expect(first.at(-1)).toEqual({ type: "finish", finishReason: "length", stopReason: null, usage: { promptTokens: 40, completionTokens: 5, cachedTokens: null } });
    const again = await collect(w.engine.generate(request(p), {}));
    expect(again.at(-1)).toMatchObject({ type: "finish", usage: { cachedTokens: 32 } });
    const fresh = await collect(w.engine.generate(request(prompt(40, 2)), {}));
    expect(fresh.at(-1)).toMatchObject({ type: "finish", usage: { cachedTokens: 0 } });
  });

  it("an engine's 4xx is the request's fault, with the engine's status and message", async () => {
    const s = await sim({ vocabSize: 1000 });
    const w = watch(s.url);
    await until("up", () => w.ups.length === 1);
    const events = await collect(w.engine.generate(request([1, 2, 5000]), {}));
    expect(events).toEqual([{ type: "error", code: "invalid_request", message: expect.stringMatching(/prompt_token_ids\[2\] is 5000/), tokensProduced: 0, upstreamStatus: 400 }]);
    expect(w.downs).toEqual([]);
  });

  it("goes down when the engine stops answering (a request that cannot connect is an engine failure), and comes back", async () => {
    const s = await sim();
    const port = s.port;
    const w = watch(s.url);
    await until("up", () => w.ups.length === 1);
    await s.close();
    const events = await collect(w.engine.generate(request(prompt(20, 3)), {}));
    expect(events).toEqual([{ type: "error", code: "engine_unavailable", message: expect.stringMatching(/engine e could not be reached: .*ECONNREFUSED/), tokensProduced: 0 }]);
    await until("down", () => w.downs.length > 0);
    expect(w.downs[0]).toMatch(/ECONNREFUSED/);
    expect(w.loads.at(-1)).toBeNull();
    const unavailable = await collect(w.engine.generate(request(prompt(20, 3)), {}));
    expect(unavailable[0]).toMatchObject({ code: "engine_unavailable", message: "engine e is not up" });
    await sim({ port });
    await until("up again", () => w.ups.length === 2);
    expect(await collect(w.engine.generate(request(prompt(20, 3), 2), {}))).toHaveLength(3);
  });

  it("is refused when its /metrics reports another block size", async () => {
    const s = await sim({ blockSize: 32 });
    const w = watch(s.url, { metricsIntervalMs: 1000 });
    await until("refused", () => w.refusals.length === 1);
    expect(w.refusals[0]).toMatch(/reports block size 32, but the router hashes blocks of 16/);
    expect(w.ups).toEqual([]);
  });

  it("closes the upstream request when the caller aborts or leaves the stream", async () => {
    // A tenth of real speed: each decode step takes about 20 ms.
    const s = await sim({ speedup: 0.1 });
    const w = watch(s.url);
    await until("up", () => w.ups.length === 1);
    const controller = new AbortController();
    const events: EngineEvent[] = [];
    for await (const e of w.engine.generate(request(prompt(64, 4), 5000), { signal: controller.signal })) {
      events.push(e);
      if (events.length === 2) {
        expect(s.core.metrics().running).toBe(1);
        controller.abort();
      }
    }
    expect(events.every((e) => e.type === "delta")).toBe(true); // ends without an event of its own
    await until("the engine aborted it", () => s.core.metrics().requestsAborted === 1 && s.core.metrics().running === 0);
    for await (const e of w.engine.generate(request(prompt(64, 5), 5000), {})) {
      expect(e.type).toBe("delta");
      break;
    }
    await until("the engine aborted the abandoned one", () => s.core.metrics().requestsAborted === 2 && s.core.metrics().running === 0);
  });

  it("passes kv_transfer_params through: a prefill is read whole for the params vLLM returns, a decode sends them on", async () => {
    const prefill = await sim({ enablePromptTokensDetails: true });
    const decode = await sim({ enablePromptTokensDetails: true });
    const [p, d] = [watch(prefill.url), watch(decode.url)];
    await until("up", () => p.ups.length === 1 && d.ups.length === 1);
    const tokens = prompt(100, 7);
    const pre = await collect(p.engine.generate({ promptTokenIds: tokens, sampling: { maxTokens: 1 }, kvTransferParams: { do_remote_decode: true } }, {}));
    expect(pre.map((e) => e.type)).toEqual(["delta", "finish"]);
    const held = pre.at(-1)!;
    if (held.type !== "finish") throw new Error("no finish");
    expect(held.kvTransferParams).toMatchObject({ do_remote_prefill: true, remote_host: "127.0.0.1", remote_port: prefill.kvTransfer!.port });
    expect(prefill.core.metrics().held).toBe(1);
    const out = await collect(d.engine.generate({ promptTokenIds: tokens, sampling: { maxTokens: 3, ignoreEos: true }, kvTransferParams: held.kvTransferParams! }, {}));
    // Streamed as usual; the decode engine counts the 99 tokens it received as cached.
    expect(out.filter((e) => e.type === "delta").length).toBeGreaterThan(0);
    expect(out.at(-1)).toMatchObject({ type: "finish", usage: { promptTokens: 100, completionTokens: 3, cachedTokens: 99 } });
    expect(out.at(-1)).not.toHaveProperty("kvTransferParams");
    expect(prefill.core.metrics().held).toBe(0);
    expect(decode.core.metrics()).toMatchObject({ kvPulls: 1, kvPullsFailed: 0 });
  });

  it("counts load from the engine's other clients in its reports", async () => {
    const s = await sim({ speedup: 0.1 });
    const w = watch(s.url, { metricsIntervalMs: 30 });
    await until("up", () => w.ups.length === 1);
    const other = new AbortController();
    const res = await fetch(`${s.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: MODEL, prompt: prompt(64, 6), max_tokens: 5000, ignore_eos: true, stream: true }),
      signal: other.signal,
    });
    await res.body!.getReader().read();
    const seen = w.loads.length;
    await until("a report with the other client's request", () => w.loads.slice(seen).some((r) => r !== null && r.running === 1));
    other.abort();
  });
});

describe("HttpEngine against failures the simulator does not make", () => {
  /** A server that is healthy and lists a model, and answers completions with `completions`. */
  async function server(completions: (res: import("node:http").ServerResponse) => void): Promise<string> {
    const srv: Server = createServer((req, res) => {
      if (req.url === "/health") return void res.writeHead(200).end();
      if (req.url === "/v1/models") return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ data: [{ id: "m", max_model_len: 100 }] }));
      req.resume();
      req.on("end", () => completions(res));
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    closers.push(() => new Promise<void>((r) => (srv.closeAllConnections(), srv.close(() => r()))));
    return `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  }

  it("a 5xx before any token is an engine failure (retriable), with the engine's status", async () => {
    const url = await server((res) => res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "CUDA out of memory", type: "InternalServerError", code: 500 } })));
    const w = watch(url);
    await until("up", () => w.ups.length === 1);
    expect(await collect(w.engine.generate(request([1, 2, 3]), {}))).toEqual([
      { type: "error", code: "engine_error", message: "engine e answered 500: CUDA out of memory", tokensProduced: 0, upstreamStatus: 500 },
    ]);
  });

  it("a stream cut short is engine_disconnected with the tokens it had produced; an error chunk after tokens is an engine error", async () => {
    const chunk = (text: string, n: number) => `data: ${JSON.stringify({ choices: [{ index: 0, text, finish_reason: null }], usage: { prompt_tokens: 3, completion_tokens: n } })}\n\n`;
    const cut = await server((res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(chunk(" a", 1));
      res.write(chunk(" b c", 3));
      setTimeout(() => res.destroy(), 20);
    });
    const w = watch(cut);
    await until("up", () => w.ups.length === 1);
    const events = await collect(w.engine.generate(request([1, 2, 3]), {}));
    expect(events.map((e) => (e.type === "delta" ? e.tokenCount : e))).toEqual([1, 2, expect.objectContaining({ type: "error", code: "engine_disconnected", tokensProduced: 3 })]);

    const failing = await server((res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.end(`${chunk(" a", 1)}data: ${JSON.stringify({ error: { message: "engine dead", type: "InternalServerError", code: 500 } })}\n\ndata: [DONE]\n\n`);
    });
    const w2 = watch(failing);
    await until("up", () => w2.ups.length === 1);
    expect((await collect(w2.engine.generate(request([1, 2, 3]), {}))).at(-1)).toEqual({ type: "error", code: "engine_error", message: "engine e failed the request: engine dead", tokensProduced: 1 });
  });
});
