// The engine protocol as the router's code sees it (camelCase). The wire form is in wire.ts and
// docs/protocol.md.

export const PROTOCOL_VERSION = 1;

/** What an engine says about itself in the handshake (its welcome message). */
export interface Welcome {
  protocolVersion: number;
  /** Unique in the fleet, e.g. host:port. */
  engineId: string;
  /** What the engine is, e.g. "kvroute-sim 0.1.0" or "vllm 0.11.0". */
  engine: string;
  /** The served model name: the root of the router's block hashes. */
  model: string;
  blockSize: number;
  /** KV-cache capacity in blocks, summed over data-parallel ranks; null when the engine cannot say. */
  numBlocks: number | null;
  /** Context length: prompt plus output never exceed it. */
  maxModelLen: number;
  /** The largest frame the engine accepts. */
  maxFrameBytes: number;
  /**
   * The first data-parallel rank this engine serves (0 unless it is one of several engines that share a
   * data-parallel group, as with vLLM's external or hybrid load balancing). Ranks are numbered as in the
   * KV events' `data_parallel_rank`.
   */
  dataParallelStartRank: number;
  /** How many consecutive ranks from dataParallelStartRank the engine serves (at least 1). */
  dataParallelLocalSize: number;
  kvEvents: KvEventsInfo | null;
}

export type KvEventsLayout = "array" | "map";

export interface KvEventsInfo {
  /**
   * ZMQ PUB endpoint as configured, the port being rank 0's: rank r publishes on port + r, for the ranks
   * the welcome names (dataParallelStartRank onwards). The client has already replaced a wildcard host
   * (`*`, `0.0.0.0`, `::`) with the host it connected to.
   */
  endpoint: string;
  topic: string;
  dataParallelSize: number;
  /** ZMQ ROUTER endpoint answering replay requests (wildcard host replaced likewise), or null. */
  replayEndpoint: string | null;
  /** Payload layout when the engine knows it. */
  layout: KvEventsLayout | null;
  /** "GPU" for blocks in GPU memory. */
  medium: string | null;
}

export interface SamplingOptions {
  /** At least 1; absent: up to maxModelLen minus the prompt. */
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  /** -1: off. */
  topK?: number;
  /** A safe integer. */
  seed?: number;
  stop?: readonly string[];
  stopTokenIds?: readonly number[];
  ignoreEos?: boolean;
  minTokens?: number;
  /** Return the sampled token's log-probability and this many alternatives, where the engine supports it. */
  logprobs?: number;
}

export interface GenerateRequest {
  promptTokenIds: ArrayLike<number>;
  sampling?: SamplingOptions;
  /** How many leading prompt blocks the router believed this engine holds (logged by the engine). */
  overlapBlocks?: number;
  loraName?: string;
  cacheSalt?: string;
  /** The router's id for the request, for the engine's log. */
  requestId?: string;
  /**
   * The data-parallel rank to run on, numbered as in the welcome and the KV events; it must be one the
   * engine serves. Absent: the engine chooses.
   */
  dataParallelRank?: number;
  /** Opaque parameters for the engine's KV connector (disaggregated prefill), passed through as they are. */
  kvTransferParams?: KvTransferParams;
}

/** An opaque map with string keys, passed between the router and an engine's KV connector unread. */
export type KvTransferParams = Record<string, unknown>;

/** One output token's log-probability pairs `[tokenId, logprob]`, the sampled token first. */
export type TokenLogprobs = Array<[number, number]>;

export interface DeltaEvent {
  type: "delta";
  tokenIds: number[];
  text: string;
  logprobs?: TokenLogprobs[];
  /**
   * Output tokens in this delta, for an engine that reports how many but not which (an OpenAI-compatible
   * HTTP engine); absent: tokenIds.length.
   */
  tokenCount?: number;
}

export interface EngineUsage {
  promptTokens: number;
  completionTokens: number;
  /** The engine's count of prompt tokens served from its prefix cache; null when it cannot say. */
  cachedTokens: number | null;
}

export interface FinishEvent {
  type: "finish";
  /** "stop", "length", "abort" or "repetition" (an engine may add reasons; "error" arrives as an error event). */
  finishReason: string;
  /** The stop string or stop token id that ended the request, else null. */
  stopReason: string | number | null;
  usage: EngineUsage;
  /** What the engine's KV connector returned for the request (disaggregated prefill), when it returned any. */
  kvTransferParams?: KvTransferParams;
}

export interface ErrorEvent {
  type: "error";
  /** e.g. "engine_disconnected", "invalid_request", "engine_unavailable"; see docs/protocol.md. */
  code: string;
  message: string;
  /** Output tokens this request had received before the error: 0 means it is safe to retry elsewhere. */
  tokensProduced: number;
  /** The engine's own HTTP status, for an HTTP engine that refused the request with one. */
  upstreamStatus?: number;
}

/** A stream ends after one finish or one error event. */
export type EngineEvent = DeltaEvent | FinishEvent | ErrorEvent;
