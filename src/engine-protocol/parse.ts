// Checks decoded frames against docs/protocol.md and turns them into typed values. Unknown keys are
// ignored; a wrong type or range gives a failure that names the field.
import type { DeltaEvent, Welcome, FinishEvent, GenerateRequest, KvEventsLayout, KvTransferParams, SamplingOptions, TokenLogprobs } from "./types.js";
import { ErrorCode } from "./wire.js";

export type Parsed<T> = { ok: true; value: T } | { ok: false; code: string; message: string; id: number | null };

type Fields = Record<string, unknown>;

export interface Envelope {
  type: string;
  fields: Fields;
  /** The frame's `id` when it is a valid request id, else null. */
  id: number | null;
}

export interface Hello {
  protocol: number;
  client: string;
  blockSize: number | null;
  heartbeatMs: number | null;
}

export interface GenerateCommand {
  id: number;
  request: GenerateRequest & { promptTokenIds: number[] };
}

export interface EngineError {
  id: number | null;
  code: string;
  message: string;
}

/** A field that is missing or has the wrong type or range; the parsers turn it into a failure. */
class FieldError extends Error {}

const U32_MAX = 0xffffffff;

function isPlainObject(value: unknown): value is Fields {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return "nil";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "bigint") return `the integer ${value}`;
  if (typeof value === "string") return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
  if (typeof value === "object") return "a map or binary";
  return `${typeof value} ${String(value)}`;
}

function isU32(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= U32_MAX;
}

function present(fields: Fields, key: string): boolean {
  return fields[key] !== undefined && fields[key] !== null;
}

function u32(fields: Fields, key: string, min = 0): number {
  const value = fields[key];
  if (!isU32(value) || value < min) throw new FieldError(`${key} must be an integer from ${min} to ${U32_MAX}, not ${describe(value)}`);
  return value;
}

function optU32(fields: Fields, key: string, min = 0): number | undefined {
  return present(fields, key) ? u32(fields, key, min) : undefined;
}

function str(fields: Fields, key: string): string {
  const value = fields[key];
  if (typeof value !== "string") throw new FieldError(`${key} must be a string, not ${describe(value)}`);
  return value;
}

function optStr(fields: Fields, key: string): string | undefined {
  return present(fields, key) ? str(fields, key) : undefined;
}

function finite(fields: Fields, key: string): number {
  const value = fields[key];
  if (typeof value !== "number" || !Number.isFinite(value)) throw new FieldError(`${key} must be a finite number, not ${describe(value)}`);
  return value;
}

function u32Array(value: unknown, key: string, minLength: number): number[] {
  if (!Array.isArray(value)) throw new FieldError(`${key} must be an array of integers, not ${describe(value)}`);
  if (value.length < minLength) throw new FieldError(`${key} must hold at least ${minLength} value(s)`);
  for (let i = 0; i < value.length; i++) {
    if (!isU32(value[i])) throw new FieldError(`${key}[${i}] must be an integer from 0 to ${U32_MAX}, not ${describe(value[i])}`);
  }
  return value as number[];
}

/** An opaque map for a KV connector: only its shape is checked, never its content. */
function optKvTransferParams(fields: Fields): KvTransferParams | undefined {
  if (!present(fields, "kv_transfer_params")) return undefined;
  const value = fields.kv_transfer_params;
  if (!isPlainObject(value)) throw new FieldError(`kv_transfer_params must be a map, not ${describe(value)}`);
  return value;
}

function attempt<T>(id: number | null, code: string, build: () => T): Parsed<T> {
  try {
    return { ok: true, value: build() };
  } catch (error) {
    if (error instanceof FieldError) return { ok: false, code, message: error.message, id };
    throw error;
  }
}

/** The outer shape every message shares: a map with a string `type`. */
export function readEnvelope(value: unknown): Parsed<Envelope> {
  if (!isPlainObject(value)) return { ok: false, code: ErrorCode.badMessage, message: `a message must be a map, not ${describe(value)}`, id: null };
  const id = isU32(value.id) ? value.id : null;
  if (typeof value.type !== "string") {
    return { ok: false, code: ErrorCode.badMessage, message: `a message needs a string "type", not ${describe(value.type)}`, id };
  }
  return { ok: true, value: { type: value.type, fields: value, id } };
}

// --- router to engine -------------------------------------------------------------------------------

export function parseHello(fields: Fields): Parsed<Hello> {
  return attempt(null, ErrorCode.badHello, () => ({
    protocol: u32(fields, "protocol"),
    client: optStr(fields, "client") ?? "unknown",
    blockSize: optU32(fields, "block_size", 1) ?? null,
    heartbeatMs: optU32(fields, "heartbeat_ms") ?? null,
  }));
}

function parseSampling(value: unknown): SamplingOptions {
  if (value === undefined || value === null) return {};
  if (!isPlainObject(value)) throw new FieldError(`sampling must be a map, not ${describe(value)}`);
  const out: SamplingOptions = {};
  const maxTokens = optU32(value, "max_tokens", 1);
  if (maxTokens !== undefined) out.maxTokens = maxTokens;
  if (present(value, "temperature")) {
    const t = finite(value, "temperature");
    if (t < 0) throw new FieldError(`temperature must be at least 0, not ${t}`);
    out.temperature = t;
  }
  if (present(value, "top_p")) {
    const p = finite(value, "top_p");
    if (!(p > 0 && p <= 1)) throw new FieldError(`top_p must be in (0, 1], not ${p}`);
    out.topP = p;
  }
  if (present(value, "top_k")) {
    const k = value.top_k;
    if (typeof k !== "number" || !Number.isInteger(k) || k < -1 || k > U32_MAX) throw new FieldError(`top_k must be -1 or a non-negative integer, not ${describe(k)}`);
    out.topK = k;
  }
  if (present(value, "seed")) {
    const seed = value.seed;
    if (typeof seed !== "number" || !Number.isSafeInteger(seed)) throw new FieldError(`seed must be an integer within ±(2^53-1), not ${describe(seed)}`);
    out.seed = seed;
  }
  if (present(value, "stop")) {
    const stop = value.stop;
    if (!Array.isArray(stop) || !stop.every((s): s is string => typeof s === "string" && s.length > 0)) {
      throw new FieldError(`stop must be an array of non-empty strings, not ${describe(stop)}`);
    }
    out.stop = stop;
  }
  if (present(value, "stop_token_ids")) out.stopTokenIds = u32Array(value.stop_token_ids, "stop_token_ids", 0);
  if (present(value, "ignore_eos")) {
    if (typeof value.ignore_eos !== "boolean") throw new FieldError(`ignore_eos must be a boolean, not ${describe(value.ignore_eos)}`);
    out.ignoreEos = value.ignore_eos;
  }
  const minTokens = optU32(value, "min_tokens");
  if (minTokens !== undefined) out.minTokens = minTokens;
  const logprobs = optU32(value, "logprobs");
  if (logprobs !== undefined) out.logprobs = logprobs;
  return out;
}

export function parseGenerate(fields: Fields, id: number | null): Parsed<GenerateCommand> {
  return attempt(id, ErrorCode.invalidRequest, () => {
    const request: GenerateRequest & { promptTokenIds: number[] } = {
      promptTokenIds: u32Array(fields.prompt_token_ids, "prompt_token_ids", 1),
      sampling: parseSampling(fields.sampling),
    };
    const overlap = optU32(fields, "overlap_blocks");
    if (overlap !== undefined) request.overlapBlocks = overlap;
    const lora = optStr(fields, "lora_name");
    if (lora !== undefined) request.loraName = lora;
    const salt = optStr(fields, "cache_salt");
    if (salt !== undefined) request.cacheSalt = salt;
    const requestId = optStr(fields, "request_id");
    if (requestId !== undefined) request.requestId = requestId;
    const rank = optU32(fields, "data_parallel_rank");
    if (rank !== undefined) request.dataParallelRank = rank;
    const kvTransferParams = optKvTransferParams(fields);
    if (kvTransferParams !== undefined) request.kvTransferParams = kvTransferParams;
    return { id: u32(fields, "id"), request };
  });
}

export function parseAbort(fields: Fields): Parsed<{ id: number }> {
  return attempt(null, ErrorCode.badMessage, () => ({ id: u32(fields, "id") }));
}

/** The heartbeat's `ts`, echoed back as it came (any number; nil when absent or not a number). */
export function heartbeatTs(fields: Fields): number | null {
  const ts = fields.ts;
  return typeof ts === "number" ? ts : null;
}

// --- engine to router -------------------------------------------------------------------------------

function parseLayout(value: unknown): KvEventsLayout | null {
  return value === "array" || value === "map" ? value : null;
}

/** The engine's `welcome` as Welcome, endpoints as the engine sent them. */
export function parseWelcome(fields: Fields): Parsed<Welcome> {
  return attempt(null, ErrorCode.badMessage, () => {
    let kvEvents: Welcome["kvEvents"] = null;
    if (present(fields, "kv_events")) {
      const kv = fields.kv_events;
      if (!isPlainObject(kv)) throw new FieldError(`kv_events must be a map or nil, not ${describe(kv)}`);
      kvEvents = {
        endpoint: str(kv, "endpoint"),
        topic: optStr(kv, "topic") ?? "",
        dataParallelSize: optU32(kv, "data_parallel_size", 1) ?? 1,
        replayEndpoint: optStr(kv, "replay_endpoint") ?? null,
        layout: parseLayout(kv.layout),
        medium: optStr(kv, "medium") ?? null,
      };
    }
    const dataParallelStartRank = optU32(fields, "data_parallel_start_rank") ?? 0;
    const dataParallelLocalSize = optU32(fields, "data_parallel_local_size", 1) ?? 1;
    if (dataParallelStartRank + dataParallelLocalSize - 1 > U32_MAX) {
      throw new FieldError(`data_parallel_start_rank ${dataParallelStartRank} plus data_parallel_local_size ${dataParallelLocalSize} runs past ${U32_MAX}`);
    }
    return {
      protocolVersion: u32(fields, "protocol"),
      engineId: str(fields, "engine_id"),
      engine: optStr(fields, "engine") ?? "unknown",
      model: str(fields, "model"),
      blockSize: u32(fields, "block_size", 1),
      numBlocks: optU32(fields, "num_blocks") ?? null,
      maxModelLen: u32(fields, "max_model_len", 1),
      maxFrameBytes: u32(fields, "max_frame_bytes", 1),
      dataParallelStartRank,
      dataParallelLocalSize,
      kvEvents,
    };
  });
}

function parseLogprobs(value: unknown): TokenLogprobs[] {
  if (!Array.isArray(value)) throw new FieldError(`logprobs must be an array, not ${describe(value)}`);
  return value.map((entry: unknown, i) => {
    if (!Array.isArray(entry)) throw new FieldError(`logprobs[${i}] must be an array of [token_id, logprob] pairs`);
    return entry.map((pair: unknown): [number, number] => {
      if (!Array.isArray(pair) || pair.length < 2 || !isU32(pair[0]) || typeof pair[1] !== "number") {
        throw new FieldError(`logprobs[${i}] must hold [token_id, logprob] pairs, not ${describe(pair)}`);
      }
      return [pair[0], pair[1]];
    });
  });
}

export function parseDelta(fields: Fields, id: number | null): Parsed<DeltaEvent> {
  return attempt(id, ErrorCode.badMessage, () => {
    const event: DeltaEvent = { type: "delta", tokenIds: u32Array(fields.token_ids, "token_ids", 0), text: optStr(fields, "text") ?? "" };
    if (present(fields, "logprobs")) event.logprobs = parseLogprobs(fields.logprobs);
    return event;
  });
}

export function parseFinish(fields: Fields, id: number | null): Parsed<FinishEvent> {
  return attempt(id, ErrorCode.badMessage, () => {
    const usage = fields.usage;
    if (!isPlainObject(usage)) throw new FieldError(`usage must be a map, not ${describe(usage)}`);
    const stop = fields.stop_reason;
    if (stop !== undefined && stop !== null && typeof stop !== "string" && !isU32(stop)) {
      throw new FieldError(`stop_reason must be a string, a token id or nil, not ${describe(stop)}`);
    }
    const event: FinishEvent = {
      type: "finish",
      finishReason: str(fields, "finish_reason"),
      stopReason: stop ?? null,
      usage: {
        promptTokens: u32(usage, "prompt_tokens"),
        completionTokens: u32(usage, "completion_tokens"),
        cachedTokens: optU32(usage, "cached_tokens") ?? null,
      },
    };
    const kvTransferParams = optKvTransferParams(fields);
    if (kvTransferParams !== undefined) event.kvTransferParams = kvTransferParams;
    return event;
  });
}

export function parseError(fields: Fields, id: number | null): Parsed<EngineError> {
  return attempt(id, ErrorCode.badMessage, () => ({
    id,
    code: optStr(fields, "code") ?? "unknown",
    message: optStr(fields, "message") ?? "",
  }));
}
