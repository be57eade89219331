// The messages as they are on the wire (msgpack maps with snake_case keys). See docs/protocol.md.

export interface HelloMessage {
  type: "hello";
  protocol: number;
  client?: string;
  block_size?: number | null;
  heartbeat_ms?: number | null;
}

export interface WireKvEvents {
  endpoint: string;
  topic: string;
  data_parallel_size: number;
  replay_endpoint: string | null;
  layout: string | null;
  medium: string | null;
}

export interface WelcomeMessage {
  type: "welcome";
  protocol: number;
  engine_id: string;
  engine: string;
  model: string;
  block_size: number;
  num_blocks: number | null;
  max_model_len: number;
  max_frame_bytes: number;
  data_parallel_start_rank?: number;
  data_parallel_local_size?: number;
  kv_events: WireKvEvents | null;
}

export interface WireSampling {
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  seed?: number | bigint;
  stop?: string[];
  stop_token_ids?: number[];
  ignore_eos?: boolean;
  min_tokens?: number;
  logprobs?: number;
}

export interface GenerateMessage {
  type: "generate";
  id: number;
  prompt_token_ids: number[];
  sampling?: WireSampling;
  overlap_blocks?: number;
  lora_name?: string;
  cache_salt?: string;
  request_id?: string;
  data_parallel_rank?: number;
  kv_transfer_params?: Record<string, unknown>;
}

export interface AbortMessage {
  type: "abort";
  id: number;
}

export interface HeartbeatMessage {
  type: "heartbeat";
  ts: number;
}

export interface DeltaMessage {
  type: "delta";
  id: number;
  token_ids: number[];
  text: string;
  logprobs?: Array<Array<[number, number]>>;
}

export interface FinishMessage {
  type: "finish";
  id: number;
  finish_reason: string;
  stop_reason: string | number | null;
  usage: { prompt_tokens: number; completion_tokens: number; cached_tokens: number | null };
  kv_transfer_params?: Record<string, unknown>;
}

export interface ErrorMessage {
  type: "error";
  id: number | null;
  code: string;
  message: string;
}

export type RouterMessage = HelloMessage | GenerateMessage | AbortMessage | HeartbeatMessage;
export type EngineMessage = WelcomeMessage | DeltaMessage | FinishMessage | ErrorMessage | HeartbeatMessage;
export type WireMessage = RouterMessage | EngineMessage;

/** Error codes named in docs/protocol.md. */
export const ErrorCode = {
  frameTooLarge: "frame_too_large",
  badFrame: "bad_frame",
  badMessage: "bad_message",
  unknownType: "unknown_type",
  handshakeRequired: "handshake_required",
  versionMismatch: "version_mismatch",
  blockSizeMismatch: "block_size_mismatch",
  badHello: "bad_hello",
  invalidRequest: "invalid_request",
  duplicateId: "duplicate_id",
  promptTooLong: "prompt_too_long",
  unknownLora: "unknown_lora",
  engineError: "engine_error",
  engineDead: "engine_dead",
  // Made by the router's client, never sent by an engine:
  engineDisconnected: "engine_disconnected",
  engineUnavailable: "engine_unavailable",
  clientClosed: "client_closed",
} as const;
