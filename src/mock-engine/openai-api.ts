// vLLM's OpenAI-compatible surface as the HTTP simulator speaks it, without sockets: a /v1/completions body
// checked into an engine request, and the bodies vLLM answers with (completion, stream chunk, usage, error,
// model list, Prometheus metrics), field for field as `vllm serve` writes them.
//
// Shapes follow vLLM's entrypoints/openai (completion serving and protocol): usage carries
// `prompt_tokens_details` only when the server runs with --enable-prompt-tokens-details and the count is not
// 0 (as vLLM did up to its completion/serving.py rewrite; later versions also report 0, which a client must
// take the same way); errors are `{"error": {"message", "type", "param", "code"}}` with the HTTP status as
// the code; stream chunks carry `usage: null` unless `stream_options.continuous_usage_stats`. With a KV
// connector configured, vLLM takes `kv_transfer_params` in the body and answers a non-streamed request with
// the connector's `kv_transfer_params` beside its usage (null when there are none); streamed chunks do not
// carry them.
import type { GenerateRequest, SamplingOptions } from "../engine-protocol/index.js";
import type { CoreFinish } from "./core.js";

/** vLLM's default max_tokens for /v1/completions. */
const DEFAULT_MAX_TOKENS = 16;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

const ERROR_TYPES: Record<number, string> = {
  400: "BadRequestError",
  404: "NotFoundError",
  405: "MethodNotAllowed",
  413: "RequestEntityTooLarge",
  500: "InternalServerError",
};

export function errorBody(status: number, message: string, param: string | null = null): object {
  return { error: { message, type: ERROR_TYPES[status] ?? "Error", param, code: status } };
}

/** A checked /v1/completions request. */
export interface CompletionCall {
  request: GenerateRequest;
  stream: boolean;
  includeUsage: boolean;
  continuousUsage: boolean;
}

export interface ApiLimits {
  model: string;
  maxModelLen: number;
}

type Json = Record<string, unknown>;

/** Checks a /v1/completions body; throws an ApiError (400, or 404 for another model) naming the field. */
export function parseCompletion(body: unknown, limits: ApiLimits): CompletionCall {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new ApiError(400, "the request body must be a JSON object");
  const b = body as Json;
  if (b.model !== undefined && b.model !== limits.model) {
    throw new ApiError(404, `The model \`${String(b.model)}\` does not exist.`, "model");
  }
  const prompt = promptTokens(b.prompt);
  const n = optInt(b, "n", 1);
  if (n !== undefined && n !== 1) throw new ApiError(400, "the simulator generates one choice per request (n must be 1)", "n");
  if (b.echo === true) throw new ApiError(400, "the simulator does not support echo", "echo");
  const stream = optBool(b, "stream") ?? false;
  const options = b.stream_options;
  if (options !== undefined && options !== null && !stream) throw new ApiError(400, "Stream options can only be defined when `stream=True`.", "stream_options");
  let includeUsage = false;
  let continuousUsage = false;
  if (options !== undefined && options !== null) {
    if (typeof options !== "object" || Array.isArray(options)) throw new ApiError(400, "stream_options must be an object", "stream_options");
    includeUsage = optBool(options as Json, "include_usage", "stream_options.") ?? true;
    continuousUsage = includeUsage && (optBool(options as Json, "continuous_usage_stats", "stream_options.") ?? false);
  }
  const maxTokens = optInt(b, "max_tokens", 1) ?? DEFAULT_MAX_TOKENS;
  if (prompt.length + maxTokens > limits.maxModelLen) {
    throw new ApiError(
      400,
      `This model's maximum context length is ${limits.maxModelLen} tokens. However, you requested ${prompt.length + maxTokens} tokens ` +
        `(${prompt.length} in the messages, ${maxTokens} in the completion). Please reduce the length of the messages or completion.`,
      "max_tokens",
    );
  }
  const sampling: SamplingOptions = { maxTokens };
  const temperature = optNumber(b, "temperature", 0);
  if (temperature !== undefined) sampling.temperature = temperature;
  const topP = optNumber(b, "top_p", 0);
  if (topP !== undefined) {
    if (topP === 0 || topP > 1) throw new ApiError(400, `top_p must be in (0, 1], got ${topP}.`, "top_p");
    sampling.topP = topP;
  }
  const topK = optInt(b, "top_k", -1);
  if (topK !== undefined) sampling.topK = topK;
  const seed = optInt(b, "seed", Number.MIN_SAFE_INTEGER);
  if (seed !== undefined) sampling.seed = seed;
  const minTokens = optInt(b, "min_tokens", 0);
  if (minTokens !== undefined) {
    if (minTokens > maxTokens) throw new ApiError(400, `min_tokens must be less than or equal to max_tokens=${maxTokens}, got ${minTokens}.`, "min_tokens");
    sampling.minTokens = minTokens;
  }
  const ignoreEos = optBool(b, "ignore_eos");
  if (ignoreEos !== undefined) sampling.ignoreEos = ignoreEos;
  if (b.stop !== undefined && b.stop !== null) {
    const stop = typeof b.stop === "string" ? [b.stop] : b.stop;
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== "string")) throw new ApiError(400, "stop must be a string or a list of strings", "stop");
    if (stop.length > 0) sampling.stop = stop as string[];
  }
  if (b.stop_token_ids !== undefined && b.stop_token_ids !== null) {
    const ids = b.stop_token_ids;
    if (!Array.isArray(ids) || ids.some((t) => !Number.isSafeInteger(t) || (t as number) < 0)) throw new ApiError(400, "stop_token_ids must be a list of token ids", "stop_token_ids");
    if (ids.length > 0) sampling.stopTokenIds = ids as number[];
  }
  const request: GenerateRequest = { promptTokenIds: prompt, sampling };
  if (b.kv_transfer_params !== undefined && b.kv_transfer_params !== null) {
    const kv = b.kv_transfer_params;
    if (typeof kv !== "object" || Array.isArray(kv)) throw new ApiError(400, "kv_transfer_params must be an object", "kv_transfer_params");
    request.kvTransferParams = kv as Json;
  }
  if (b.cache_salt !== undefined && b.cache_salt !== null) {
    if (typeof b.cache_salt !== "string" || b.cache_salt === "") throw new ApiError(400, "cache_salt must be a non-empty string", "cache_salt");
    request.cacheSalt = b.cache_salt;
  }
  return { request, stream, includeUsage, continuousUsage };
}

/**
 * A prompt as token ids: a list of ids as it comes, a string one token per UTF-8 byte (the simulator has no
 * tokenizer; the bytes stand in for tokens). One prompt per request.
 */
function promptTokens(prompt: unknown): number[] {
  if (typeof prompt === "string") {
    if (prompt === "") throw new ApiError(400, "Prompt cannot be empty", "prompt");
    return [...Buffer.from(prompt, "utf8")];
  }
  if (!Array.isArray(prompt) || prompt.length === 0) throw new ApiError(400, "prompt must be a non-empty string or list of token ids", "prompt");
  if (typeof prompt[0] !== "number") throw new ApiError(400, "the simulator serves one prompt per request, given as a string or a list of token ids", "prompt");
  for (let i = 0; i < prompt.length; i++) {
    const t = prompt[i];
    if (typeof t !== "number" || !Number.isSafeInteger(t) || t < 0) throw new ApiError(400, `prompt[${i}] must be a token id, got ${JSON.stringify(t)}`, "prompt");
  }
  return prompt as number[];
}

function optInt(b: Json, key: string, min: number): number | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) throw new ApiError(400, `${key} must be an integer of at least ${min}, got ${JSON.stringify(v)}`, key);
  return v;
}

function optNumber(b: Json, key: string, min: number): number | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || v < min) throw new ApiError(400, `${key} must be a number of at least ${min}, got ${JSON.stringify(v)}`, key);
  return v;
}

function optBool(b: Json, key: string, prefix = ""): boolean | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") throw new ApiError(400, `${prefix}${key} must be a boolean, got ${JSON.stringify(v)}`, `${prefix}${key}`);
  return v;
}

export interface UsageFigures {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
}

/** Usage as vLLM reports it: prompt_tokens_details only when enabled and not 0. */
export function usageBody(u: UsageFigures, promptTokensDetails: boolean): Json {
  const usage: Json = { prompt_tokens: u.promptTokens, total_tokens: u.promptTokens + u.completionTokens, completion_tokens: u.completionTokens };
  if (promptTokensDetails && u.cachedTokens > 0) usage.prompt_tokens_details = { cached_tokens: u.cachedTokens };
  return usage;
}

export interface CompletionMeta {
  id: string;
  created: number;
  model: string;
}

/** One streamed chunk of a choice (`usage` with continuous usage stats, else null). */
export function chunkBody(meta: CompletionMeta, text: string, finish: CoreFinish | null, usage: Json | null): Json {
  return {
    id: meta.id,
    object: "text_completion",
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finish?.finishReason ?? null, stop_reason: finish?.stopReason ?? null }],
    usage,
  };
}

/** The stream's last data chunk with include_usage: no choices, the whole request's usage. */
export function usageChunkBody(meta: CompletionMeta, usage: Json): Json {
  return { id: meta.id, object: "text_completion", created: meta.created, model: meta.model, choices: [], usage };
}

export function completionBody(meta: CompletionMeta, text: string, finish: CoreFinish, usage: Json): Json {
  return {
    id: meta.id,
    object: "text_completion",
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, text, logprobs: null, finish_reason: finish.finishReason, stop_reason: finish.stopReason, prompt_logprobs: null }],
    usage: { prompt_tokens_details: null, ...usage },
    kv_transfer_params: finish.kvTransferParams ?? null,
  };
}

export function modelsBody(model: string, maxModelLen: number, created: number): Json {
  return {
    object: "list",
    data: [
      {
        id: model,
        object: "model",
        created,
        owned_by: "vllm",
        root: model,
        parent: null,
        max_model_len: maxModelLen,
        permission: [{ id: `modelperm-${model}`, object: "model_permission", created, allow_create_engine: false, allow_sampling: true, allow_logprobs: true, allow_search_indices: false, allow_view: true, allow_fine_tuning: false, organization: "*", group: null, is_blocking: false }],
      },
    ],
  };
}

/** What /metrics reports, read from the engine at scrape time. */
export interface MetricsSnapshot {
  model: string;
  blockSize: number;
  numBlocks: number;
  running: number;
  waiting: number;
  blocksUsed: number;
  promptTokens: number;
  generationTokens: number;
  cachedTokens: number;
  /** Requests past their first token, and the modelled seconds they took from scheduling to it. */
  prefillRequests: number;
  prefillSeconds: number;
  finished: Record<"stop" | "length" | "abort", number>;
}

/** Prometheus text with vLLM's metric names and labels (engine 0 of one model). */
export function metricsText(s: MetricsSnapshot): string {
  const labels = `model_name=${quote(s.model)},engine="0"`;
  const lines: string[] = [];
  const metric = (name: string, type: "gauge" | "counter" | "histogram", help: string, samples: Array<[string, number]>, suffixes = [""]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    samples.forEach(([extra, value], i) => lines.push(`${name}${suffixes[i] ?? ""}{${labels}${extra}} ${value}`));
  };
  metric("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", [["", s.running]]);
  metric("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", [["", s.waiting]]);
  metric("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", [["", s.blocksUsed / s.numBlocks]]);
  metric("vllm:cache_config_info", "gauge", "Information of the LLMEngine CacheConfig", [[`,block_size="${s.blockSize}",enable_prefix_caching="True",num_gpu_blocks="${s.numBlocks}"`, 1]]);
  metric("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.", [["", s.promptTokens]]);
  metric("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.", [["", s.generationTokens]]);
  metric("vllm:prefix_cache_queries_total", "counter", "Prefix cache queries, in terms of number of queried tokens.", [["", s.promptTokens]]);
  metric("vllm:prefix_cache_hits_total", "counter", "Prefix cache hits, in terms of number of cached tokens.", [["", s.cachedTokens]]);
  // A histogram with its +Inf bucket, sum and count only: what a reader of vLLM's needs for a mean.
  metric(
    "vllm:request_prefill_time_seconds",
    "histogram",
    "Histogram of time spent in PREFILL phase for request.",
    [[',le="+Inf"', s.prefillRequests], ["", s.prefillSeconds], ["", s.prefillRequests]],
    ["_bucket", "_sum", "_count"],
  );
  metric(
    "vllm:request_success_total",
    "counter",
    "Count of successfully processed requests.",
    (["stop", "length", "abort"] as const).map((reason) => [`,finished_reason="${reason}"`, s.finished[reason]]),
  );
  return `${lines.join("\n")}\n`;
}

function quote(value: string): string {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}
