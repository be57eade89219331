// What the HTTP frontend and the routing side both need, owned by neither. The frontend owns HTTP and the
// OpenAI shapes (statuses included); the router owns tokenizing, routing and engines. Errors here carry a
// kind, never an HTTP status: the frontend maps kinds to statuses.
import type { ChatMessage } from "./prepare/tokenize/index.js";
import type { AbortSignalLike } from "../util/abort.js";

export type Prompt =
  | { kind: "text"; text: string }
  | { kind: "tokens"; tokens: Uint32Array }
  | { kind: "chat"; messages: ChatMessage[]; templateKwargs: Record<string, unknown> };

export interface Sampling {
  /** null: as many as the context allows. */
  maxTokens: number | null;
  temperature: number;
  topP: number;
  topK: number;
  seed: number | null;
  stop: string[];
  stopTokenIds: number[];
  ignoreEos: boolean;
  minTokens: number;
}

/** One prompt to generate from, with what the router needs besides it. */
export interface GenerateInput {
  prompt: Prompt;
  sampling: Sampling;
  cacheSalt: string | undefined;
}

export type CachedTokensSource = "engine" | "router" | "none";

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  cachedTokensSource: CachedTokensSource;
}

export type GenerationEvent =
  /**
   * The engine that answers is fixed (after any retry); comes before the first delta. With engine roles,
   * `prefillEngine` names the engine that computed the prompt (the answering engine itself when it
   * prefilled locally), and `overlapBlocks` is that engine's overlap.
   */
  | { type: "start"; engine: string; overlapBlocks: number; promptTokens: number; cachedTokensSource: CachedTokensSource; prefillEngine?: string }
  | { type: "delta"; text: string; tokenCount: number }
  | { type: "finish"; finishReason: string; usage: Usage }
  /**
   * The request failed; `code` says how (an engine protocol error code, or one of the router's). `status`:
   * the HTTP status an HTTP engine refused the request with, which the client then gets too.
   */
  | { type: "error"; message: string; code: string; status?: number };

export interface RouteEngineReport {
  engine: string;
  overlap_blocks: number;
  cost: number;
  active_blocks: number;
  peer_blocks: number;
  external_blocks: number;
  /** kv: how fast the engine's cache turns over against the others' (1: an even share of new blocks). */
  cache_turnover: number;
}

export interface RouteReport {
  /** The engine that would answer (disaggregated: the decode engine). */
  engine: string;
  /** The overlap of the engine that would compute the prompt (disaggregated: the prefill engine's). */
  overlap_blocks: number;
  block_size: number;
  prompt_tokens: number;
  /**
   * `active_blocks` counts the router's bookings, other replicas' (`peer_blocks`) and the engine's external
   * load (`external_blocks`).
   */
  engines: RouteEngineReport[];
  /**
   * With engine roles: `split` (prefill, then decode elsewhere), or `local` with why (`short`: the uncached
   * part is under --disagg-min-prefill-tokens; `no_prefill_engine`), and each stage's decision.
   */
  disaggregation?: {
    plan: "split" | "local";
    why?: "short" | "no_prefill_engine";
    prefill: { engine: string; overlap_blocks: number; engines: RouteEngineReport[] };
    decode: { engine: string; overlap_blocks: number; engines: RouteEngineReport[] };
  };
}

export interface ModelCard {
  id: string;
  object: "model";
  created: number;
  owned_by: string;
  max_model_len: number;
}

/** This replica's link to the others (`kvroute serve --nats`), as /health shows it. */
export interface ReplicationReport {
  replica: string;
  nats: string;
  connected: boolean;
  /** Why this replica routes alone (NATS unreachable), or null while connected. */
  reason: string | null;
  /** The other replicas heard from within the expiry, with the engines' health as each sees it. */
  peers: { replica: string; last_heard_ms: number; synced: boolean; engines: { engine: string; state: string; reason?: string; routing?: string }[] }[];
}

export interface HealthReport {
  ready: boolean;
  /** Present when the router runs as one of several replicas. */
  replication?: ReplicationReport;
  /**
   * Per engine: its state, why it is down or refused, and how it is routed: by `cache` (its KV events are
   * followed), `approx` (no KV events: its cache is predicted from the router's own decisions) or by `load`
   * alone (approximate mode turned off).
   */
  engines: { engine: string; state: string; reason?: string; routing?: "cache" | "approx" | "load"; role?: "prefill" | "decode" }[];
}

/** What the HTTP frontend needs from the router behind it. */
export interface Backend {
  models(): ModelCard[];
  /** Throws a RouterError (not_found) when `model` is not served. */
  checkModel(model: string): void;
  health(): HealthReport;
  route(input: GenerateInput): Promise<RouteReport>;
  /**
   * Prepares, routes and dispatches one prompt. Rejects with a RouterError for input the model cannot take
   * (out-of-vocabulary ids, too long) or when no engine is available; later failures arrive as an error event.
   */
  generate(input: GenerateInput, signal: AbortSignalLike): Promise<AsyncIterable<GenerationEvent>>;
  metrics(): Promise<{ contentType: string; body: string }>;
}

/**
 * Why the router refused a request before generating: bad input (`invalid_request`), a model it does not
 * serve (`not_found`), or no engine to send it to (`unavailable`).
 */
export type RouterErrorKind = "invalid_request" | "not_found" | "unavailable";

export class RouterError extends Error {
  constructor(
    readonly kind: RouterErrorKind,
    message: string,
    /** The request field at fault, when there is one. */
    readonly param: string | null,
    readonly code: string,
  ) {
    super(message);
  }
}

export function noEngineError(): RouterError {
  return new RouterError("unavailable", "no engine is available: none is connected and healthy", null, "no_engine_available");
}
