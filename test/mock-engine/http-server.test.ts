// The HTTP simulator (`kvroute sim --http`) over real HTTP on 127.0.0.1: vLLM's shapes for models, usage,
// stream chunks, errors and metrics, prompt_tokens_details only when enabled and not 0, a disconnecting
// client aborting its request, and the same ZMQ KV events as the msgpack simulator.
import { afterEach, describe, expect, it } from "vitest";
import { Subscriber } from "zeromq";
import { startHttpSimulator, type HttpSimulatorHandle, type HttpSimulatorOptions } from "../../src/mock-engine/http-server.js";
import { decodeBatch } from "./kv-event-test-decoder.js";

const MODEL = "Qwen/Qwen3-0.6B";
const prompt = (n: number, salt: number) => Array.from({ length: n }, (_, i) => (Math.imul(i + 1 + salt * 7919, 2654435761) >>> 0) % 150_000);

let sim: HttpSimulatorHandle | null = null;
afterEach(async () => {
  await sim?.close();
  sim = null;
});

async function start(options: HttpSimulatorOptions = {}): Promise<string> {
  sim = await startHttpSimulator({ kvEventsEndpoint: null, ...options });
  return sim.url;
}

const post = (url: string, body: unknown, signal?: AbortSignal) =>
  fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), ...(signal ? { signal } : {}) });

function sseData(text: string): unknown[] {
  return text
    .split("\n\n")
    .filter((b) => b !== "")
    .map((b) => {
      expect(b.startsWith("data: ")).toBe(true);
      const data = b.slice(6);
      return data === "[DONE]" ? "[DONE]" : JSON.parse(data);
    });
}

async function metric(url: string, line: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const found = text.split("\n").find((l) => l.startsWith(line));
  if (!found) throw new Error(`no ${line} in /metrics:\n${text}`);
  return Number(found.split(" ").at(-1));
}

describe("kvroute sim --http", () => {
  it("answers /health, and /v1/models with max_model_len, as vllm serve does", async () => {
    const url = await start({ maxModelLen: 4096, numBlocks: 512 });
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect(await health.text()).toBe("");
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { object: string; data: Record<string, unknown>[] };
    expect(models.object).toBe("list");
    expect(models.data).toHaveLength(1);
    expect(models.data[0]).toMatchObject({ id: MODEL, object: "model", owned_by: "vllm", root: MODEL, parent: null, max_model_len: 4096 });
    expect((await fetch(`${url}/nope`)).status).toBe(404);
    expect((await fetch(`${url}/v1/completions`)).status).toBe(405);
  });

  it("reports prompt_tokens_details only with --enable-prompt-tokens-details, and only when not 0", async () => {
    for (const enabled of [false, true]) {
      const url = await start({ enablePromptTokensDetails: enabled });
      const p = prompt(40, 1);
      const first = (await (await post(url, { model: MODEL, prompt: p, max_tokens: 2 })).json()) as { usage: Record<string, unknown>; choices: unknown[] };
      expect(first.usage).toEqual({ prompt_tokens_details: null, prompt_tokens: 40, total_tokens: 42, completion_tokens: 2 });
      const second = (await (await post(url, { model: MODEL, prompt: p, max_tokens: 2 })).json()) as { usage: Record<string, unknown> };
      expect(second.usage.prompt_tokens_details).toEqual(enabled ? { cached_tokens: 32 } : null);
      const streamed = sseData(await (await post(url, { model: MODEL, prompt: p, max_tokens: 2, stream: true, stream_options: { include_usage: true } })).text());
      const usage = (streamed.at(-2) as { usage: Record<string, unknown> }).usage;
      expect(usage).toEqual({ prompt_tokens: 40, total_tokens: 42, completion_tokens: 2, ...(enabled ? { prompt_tokens_details: { cached_tokens: 32 } } : {}) });
      await sim!.close();
      sim = null;
    }
  });

  it("streams one chunk per token, cumulative usage with continuous_usage_stats, then the usage chunk and [DONE]", async () => {
    const url = await start();
    const res = await post(url, { model: MODEL, prompt: prompt(20, 2), max_tokens: 4, ignore_eos: true, stream: true, stream_options: { include_usage: true, continuous_usage_stats: true } });
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const frames = sseData(await res.text());
    expect(frames.at(-1)).toBe("[DONE]");
    const chunks = frames.slice(0, -2) as Array<{ object: string; choices: Array<{ text: string; finish_reason: string | null }>; usage: { completion_tokens: number } }>;
    expect(chunks).toHaveLength(4);
    expect(chunks.map((c) => c.usage.completion_tokens)).toEqual([1, 2, 3, 4]);
    expect(chunks.map((c) => c.choices[0]!.finish_reason)).toEqual([null, null, null, "length"]);
    expect(chunks[0]!.object).toBe("text_completion");
    expect(frames.at(-2)).toMatchObject({ choices: [], usage: { prompt_tokens: 20, completion_tokens: 4, total_tokens: 24 } });
    // Without continuous usage stats a chunk's usage is null, as vLLM writes it.
    const plain = sseData(await (await post(url, { model: MODEL, prompt: prompt(20, 3), max_tokens: 2, stream: true })).text());
    expect(plain).toHaveLength(3);
    expect((plain[0] as { usage: unknown }).usage).toBeNull();
  });

  it("refuses bad requests with vLLM's error shape and the status as the code", async () => {
    const url = await start({ maxModelLen: 256, numBlocks: 64, vocabSize: 1000 });
    const cases: Array<[unknown, number, RegExp]> = [
      [{ model: "other", prompt: [1] }, 404, /The model `other` does not exist/],
      [{ model: MODEL, prompt: prompt(250, 1).map((t) => t % 1000), max_tokens: 10 }, 400, /maximum context length is 256 tokens.*260 tokens/],
      [{ model: MODEL, prompt: [1, 2, 5000] }, 400, /prompt_token_ids\[2\] is 5000, outside the vocabulary/],
      [{ model: MODEL, prompt: [1], stream_options: { include_usage: true } }, 400, /Stream options can only be defined when `stream=True`/],
      [{ model: MODEL, prompt: [[1], [2]] }, 400, /one prompt per request/],
      [{ model: MODEL, prompt: [1], top_p: 0 }, 400, /top_p/],
    ];
    for (const [body, status, message] of cases) {
      const res = await post(url, body);
      expect(res.status).toBe(status);
      const json = (await res.json()) as { error: { message: string; type: string; code: number } };
      expect(json.error.code).toBe(status);
      expect(json.error.type).toBe(status === 404 ? "NotFoundError" : "BadRequestError");
      expect(json.error.message).toMatch(message);
    }
    const notJson = await fetch(`${url}/v1/completions`, { method: "POST", body: "{" });
    expect(notJson.status).toBe(400);
  });

  it("aborts a request whose client disconnects, as vLLM does; /metrics shows it", async () => {
    // A tenth of real speed: each decode step takes about 20 ms, so the request is still running when the client leaves.
    const url = await start({ speedup: 0.1 });
    const controller = new AbortController();
    const res = await post(url, { model: MODEL, prompt: prompt(64, 4), max_tokens: 5000, ignore_eos: true, stream: true }, controller.signal);
    const reader = res.body!.getReader();
    await reader.read();
    expect(await metric(url, "vllm:num_requests_running")).toBe(1);
    controller.abort();
    for (let i = 0; i < 200 && (await metric(url, "vllm:num_requests_running")) !== 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await metric(url, "vllm:num_requests_running")).toBe(0);
    expect(await metric(url, 'vllm:request_success_total{model_name="Qwen/Qwen3-0.6B",engine="0",finished_reason="abort"}')).toBe(1);
    expect(await metric(url, "vllm:cache_config_info")).toBe(1);
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toMatch(/vllm:cache_config_info\{[^}]*block_size="16"[^}]*num_gpu_blocks="8192"/);
  });

  it("publishes the engine's KV events on ZMQ, as the msgpack simulator does", async () => {
    sim = await startHttpSimulator({});
    const sub = new Subscriber({ receiveTimeout: 15_000, linger: 0 }); // longer than the tries below take
    sub.connect(sim.kvEventsEndpoint!);
    sub.subscribe("");
    try {
      // A slow joiner may miss the first batch: keep sending new prompts until one arrives (bounded). One
      // receive stays pending across the tries: a ZMQ socket takes one receive at a time.
      let frames: Buffer[] | null = null;
      const received = sub.receive().catch(() => null);
      for (let i = 0; i < 20 && frames === null; i++) {
        await (await post(sim.url, { model: MODEL, prompt: prompt(48, 10 + i), max_tokens: 1 })).json();
        frames = await Promise.race([received, new Promise<null>((r) => setTimeout(() => r(null), 100))]);
      }
      expect(frames).not.toBeNull();
      const batch = decodeBatch(frames![2]!);
      const stored = batch.events.find((e) => e.type === "BlockStored");
      expect(stored).toMatchObject({ type: "BlockStored", blockSize: 16 });
    } finally {
      sub.close();
    }
  });
});
