// The HTTP engine's parsing pieces, without sockets: the body it sends, its reading of a completion stream,
// the cached-tokens rule, error bodies, /v1/models and /metrics.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { metricsText } from "../../../src/mock-engine/openai-api.js";
import { completionBody } from "../../../src/router/dispatch/openai/body.js";
import { parseMetrics, readEngineMetrics } from "../../../src/router/dispatch/openai/metrics-text.js";
import { parseModels } from "../../../src/router/dispatch/openai/models.js";
import { CachedTokensReporting, CompletionStreamReader, errorMessage, errorOf, readWholeCompletion } from "../../../src/router/dispatch/openai/stream.js";

const chunk = (text: string, finish: string | null = null, usage: unknown = null, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ id: "cmpl-1", object: "text_completion", created: 1, model: "m", choices: [{ index: 0, text, logprobs: null, finish_reason: finish, stop_reason: null, ...extra }], usage });

describe("the completion body", () => {
  it("sends the token ids as the prompt, streamed with usage, and passes sampling through under vLLM's names", () => {
    const body = completionBody("m", {
      promptTokenIds: Uint32Array.from([5, 6, 7]),
      sampling: { maxTokens: 9, temperature: 0.5, topP: 0.9, topK: 20, seed: 3, stop: ["x"], stopTokenIds: [2], ignoreEos: true, minTokens: 4 },
      cacheSalt: "s",
    });
    expect(body).toEqual({
      model: "m",
      prompt: [5, 6, 7],
      stream: true,
      stream_options: { include_usage: true, continuous_usage_stats: true },
      max_tokens: 9,
      temperature: 0.5,
      top_p: 0.9,
      top_k: 20,
      seed: 3,
      stop: ["x"],
      stop_token_ids: [2],
      ignore_eos: true,
      min_tokens: 4,
      cache_salt: "s",
    });
    // Defaults are left to the engine (its own generation config applies, as for any client).
    expect(completionBody("m", { promptTokenIds: [1], sampling: { topK: -1, ignoreEos: false, minTokens: 0, stop: [], stopTokenIds: [] } })).toEqual({
      model: "m",
      prompt: [1],
      stream: true,
      stream_options: { include_usage: true, continuous_usage_stats: true },
    });
  });
});

describe("kv_transfer_params in the body", () => {
  it("sends them as they are; a prefill asking for a remote decode is not streamed, vLLM returning the params only in a whole response", () => {
    expect(completionBody("m", { promptTokenIds: [1, 2], sampling: { maxTokens: 1 }, kvTransferParams: { do_remote_decode: true } })).toEqual({
      model: "m",
      prompt: [1, 2],
      stream: false,
      max_tokens: 1,
      kv_transfer_params: { do_remote_decode: true },
    });
    const pulled = { do_remote_prefill: true, remote_block_ids: [3, 4], remote_host: "10.0.0.1", remote_port: 5600 };
    expect(completionBody("m", { promptTokenIds: [1, 2], kvTransferParams: pulled })).toMatchObject({ stream: true, kv_transfer_params: pulled });
  });

  it("reads a whole completion with its kv_transfer_params, and names what is wrong with a bad one", () => {
    const body = {
      id: "cmpl-1",
      object: "text_completion",
      choices: [{ index: 0, text: " a", finish_reason: "length", stop_reason: null }],
      usage: { prompt_tokens: 40, completion_tokens: 1, prompt_tokens_details: { cached_tokens: 32 } },
      kv_transfer_params: { do_remote_prefill: true, remote_engine_id: "p" },
    };
    expect(readWholeCompletion(JSON.stringify(body))).toEqual({
      text: " a",
      finishReason: "length",
      stopReason: null,
      usage: { promptTokens: 40, completionTokens: 1, cachedTokens: 32 },
      kvTransferParams: { do_remote_prefill: true, remote_engine_id: "p" },
    });
    expect(readWholeCompletion(JSON.stringify({ ...body, kv_transfer_params: null })).kvTransferParams).toBeNull();
    expect(() => readWholeCompletion("<html>")).toThrow(/not JSON: "<html>"/);
    expect(() => readWholeCompletion(JSON.stringify({ choices: [] }))).toThrow(/without a choice/);
    expect(() => readWholeCompletion(JSON.stringify({ choices: [{ text: "" }] }))).toThrow(/no finish_reason/);
  });
});

describe("reading a completion stream", () => {
  it("counts each chunk's tokens from the cumulative usage (several tokens in one chunk included)", () => {
    const r = new CompletionStreamReader();
    expect(r.read(chunk(" a", null, { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 }))).toEqual([{ type: "delta", text: " a", tokens: 1 }]);
    expect(r.read(chunk(" b c d", null, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 }))).toEqual([{ type: "delta", text: " b c d", tokens: 3 }]);
    // A stop string held back: a token with no text.
    expect(r.read(chunk("", null, { completion_tokens: 5 }))).toEqual([{ type: "delta", text: "", tokens: 1 }]);
    expect(r.read(chunk("!", "stop", { completion_tokens: 6 }, { stop_reason: "END" }))).toEqual([
      { type: "delta", text: "!", tokens: 1 },
      { type: "finish", finishReason: "stop", stopReason: "END" },
    ]);
    expect(r.read(JSON.stringify({ id: "cmpl-1", choices: [], usage: { prompt_tokens: 3, completion_tokens: 6, prompt_tokens_details: { cached_tokens: 0 } } }))).toEqual([
      { type: "usage", usage: { promptTokens: 3, completionTokens: 6, cachedTokens: 0 } },
    ]);
    expect(r.tokens).toBe(6);
  });

  it("without continuous usage, counts one token per chunk with text; a usage chunk without details has no count", () => {
    const r = new CompletionStreamReader();
    expect(r.read(chunk(" a"))).toEqual([{ type: "delta", text: " a", tokens: 1 }]);
    expect(r.read(chunk("", "length"))).toEqual([{ type: "finish", finishReason: "length", stopReason: null }]);
    expect(r.read(JSON.stringify({ choices: [], usage: { prompt_tokens: 3, completion_tokens: 2 } }))).toEqual([{ type: "usage", usage: { promptTokens: 3, completionTokens: 2, cachedTokens: null } }]);
    // SGLang names the matched stop matched_stop.
    expect(new CompletionStreamReader().read(chunk("x", "stop", null, { stop_reason: undefined, matched_stop: 151645 }))[1]).toEqual({ type: "finish", finishReason: "stop", stopReason: 151645 });
  });

  it("turns error chunks, in vLLM's newer and older shapes, and malformed chunks into error steps", () => {
    const r = new CompletionStreamReader();
    expect(r.read(JSON.stringify({ error: { message: "bad", type: "BadRequestError", param: null, code: 400 } }))).toEqual([{ type: "error", message: "bad", status: 400 }]);
    expect(r.read(JSON.stringify({ object: "error", message: "boom", type: "InternalServerError", code: 500 }))).toEqual([{ type: "error", message: "boom", status: 500 }]);
    expect(r.read("{not json")[0]).toMatchObject({ type: "error", status: null, message: expect.stringMatching(/not JSON/) });
    expect(r.read("[1]")[0]).toMatchObject({ type: "error", message: expect.stringMatching(/not an object/) });
    expect(r.read("{}")[0]).toMatchObject({ type: "error", message: expect.stringMatching(/without choices/) });
  });
});

describe("cached_tokens over HTTP", () => {
  it("is unknown until the engine has reported it once; from then on a missing field means 0", () => {
    const c = new CachedTokensReporting();
    expect(c.count(null)).toBeNull();
    expect(c.count(32)).toBe(32);
    expect(c.count(null)).toBe(0);
    expect(c.count(0)).toBe(0);
    c.reset();
    expect(c.count(null)).toBeNull();
  });
});

describe("error bodies", () => {
  it("reads OpenAI, older vLLM and FastAPI shapes, else the text", () => {
    expect(errorMessage(JSON.stringify({ error: { message: "m1", code: 400 } }))).toBe("m1");
    expect(errorMessage(JSON.stringify({ object: "error", message: "m2", code: 404 }))).toBe("m2");
    expect(errorMessage(JSON.stringify({ detail: "Not Found" }))).toBe("Not Found");
    expect(errorMessage(JSON.stringify({ detail: [{ loc: ["body", "prompt"], msg: "field required" }] }))).toMatch(/field required/);
    expect(errorMessage(JSON.stringify({ error: "plain" }))).toBe("plain");
    expect(errorMessage("  Internal\n Server Error ")).toBe("Internal Server Error");
    expect(errorMessage("")).toBe("(empty body)");
    expect(errorOf({ error: { message: "x", code: "not a status" } }).status).toBeNull();
  });
});

describe("/v1/models", () => {
  it("takes the base model's name and max_model_len (vLLM and SGLang list it), skipping adapters", () => {
    expect(parseModels({ object: "list", data: [{ id: "m", object: "model", owned_by: "vllm", root: "m", parent: null, max_model_len: 4096 }] })).toEqual({ model: "m", maxModelLen: 4096, ownedBy: "vllm" });
    expect(parseModels({ data: [{ id: "lora", parent: "m", max_model_len: 4096 }, { id: "m", max_model_len: 8192, owned_by: "sglang" }] })).toEqual({ model: "m", maxModelLen: 8192, ownedBy: "sglang" });
  });

  it("names what is missing", () => {
    expect(() => parseModels({ data: [] })).toThrow(/listed no model/);
    expect(() => parseModels(null)).toThrow(/listed no model/);
    expect(() => parseModels({ data: [{ id: "m" }] })).toThrow(/"m" lists no usable max_model_len \(got undefined\)/);
    expect(() => parseModels({ data: [{ max_model_len: 10 }] })).toThrow(/has no id/);
    expect(() => parseModels({ data: [{ id: "a", parent: "b", max_model_len: 1 }] })).toThrow(/only adapters/);
  });
});

const VLLM_DP2 = `# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 3.0
vllm:num_requests_running{engine="1",model_name="m"} 2.0
vllm:num_requests_waiting{engine="0",model_name="m"} 1.0
vllm:num_requests_waiting{engine="1",model_name="m"} 0.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.25
vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",engine="0",num_gpu_blocks="1000"} 1.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.001",model_name="m"} 0.0
`;

const SGLANG = `# HELP sglang:num_running_reqs The number of running requests.
sglang:num_running_reqs{model_name="m"} 7
sglang:num_queue_reqs{model_name="m"} 2
sglang:token_usage{model_name="m"} 0.3
sglang:max_total_num_tokens{model_name="m"} 160000
`;

describe("/metrics", () => {
  it("reads vLLM's gauges, summing data-parallel engines, and its configured block size and capacity", () => {
    expect(readEngineMetrics(VLLM_DP2, 16)).toEqual({ report: { running: 5, waiting: 1, kvCacheUsage: 0.375, numBlocks: 2000, prefill: null }, blockSize: 16 });
    // Older vLLM named the usage gauge gpu_cache_usage_perc.
    const older = VLLM_DP2.replaceAll("kv_cache_usage_perc", "gpu_cache_usage_perc");
    expect(readEngineMetrics(older, 16).report?.kvCacheUsage).toBe(0.375);
  });

  it("reads SGLang's gauges, its token capacity in blocks", () => {
    expect(readEngineMetrics(SGLANG, 16)).toEqual({ report: { running: 7, waiting: 2, kvCacheUsage: 0.3, numBlocks: 10000, prefill: null }, blockSize: null });
  });

  it("reads vLLM's prefill time histogram with the prompt tokens and prefix-cache hits, summed over ranks", () => {
    const text = `${VLLM_DP2}vllm:request_prefill_time_seconds_bucket{engine="0",le="+Inf",model_name="m"} 10
vllm:request_prefill_time_seconds_sum{engine="0",model_name="m"} 4.5
vllm:request_prefill_time_seconds_count{engine="0",model_name="m"} 10
vllm:request_prefill_time_seconds_sum{engine="1",model_name="m"} 0.5
vllm:request_prefill_time_seconds_count{engine="1",model_name="m"} 2
vllm:prompt_tokens_total{engine="0",model_name="m"} 120000
vllm:prompt_tokens_total{engine="1",model_name="m"} 8000
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 20000
`;
    expect(readEngineMetrics(text, 16).report?.prefill).toEqual({ seconds: 5, requests: 12, promptTokens: 128_000, cachedTokens: 20_000 });
  });

  it("reads back what the simulated engine serves as vLLM's metrics", () => {
    const text = metricsText({
      model: "m",
      blockSize: 16,
      numBlocks: 100,
      running: 2,
      waiting: 1,
      blocksUsed: 50,
      promptTokens: 9000,
      generationTokens: 10,
      cachedTokens: 1000,
      prefillRequests: 3,
      prefillSeconds: 0.75,
      finished: { stop: 0, length: 1, abort: 0 },
    });
    expect(readEngineMetrics(text, 16)).toEqual({
      report: { running: 2, waiting: 1, kvCacheUsage: 0.5, numBlocks: 100, prefill: { seconds: 0.75, requests: 3, promptTokens: 9000, cachedTokens: 1000 } },
      blockSize: 16,
    });
  });

  it("reports nothing for metrics of another server, and skips malformed lines", () => {
    expect(readEngineMetrics("process_cpu_seconds_total 12\n", 16)).toEqual({ report: null, blockSize: null });
    const text = `vllm:num_requests_running{engine="0"} NaN\nvllm:num_requests_running{engine="0" 4\nvllm:num_requests_running{engine="0"} 2\nvllm:num_requests_waiting 1 1700000000000\n`;
    expect(readEngineMetrics(text, 16).report).toEqual({ running: 2, waiting: 1, kvCacheUsage: null, numBlocks: null, prefill: null });
  });

  it("property: any sample written in the exposition format is read back with its labels and value", () => {
    const name = fc.constantFrom("vllm:num_requests_running", "sglang:num_queue_reqs");
    const labelName = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,8}$/);
    const labels = fc.dictionary(labelName, fc.string({ maxLength: 12 }), { maxKeys: 4 });
    const value = fc.double({ noNaN: true, min: -1e12, max: 1e12 });
    fc.assert(
      fc.property(name, labels, value, (n, l, v) => {
        const escaped = Object.entries(l).map(([k, s]) => `${k}="${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`);
        const line = `${n}${escaped.length ? `{${escaped.join(",")}}` : ""} ${v}`;
        const parsed = parseMetrics(`# HELP x\n${line}\nother_metric 1\n`, new Set([n]));
        expect(parsed.get(n)).toEqual([{ labels: l, value: v + 0 }]); // + 0: -0 is written "0"
      }),
    );
  });
});
