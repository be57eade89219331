// What the HTTP frontend needs from the router behind it. The frontend owns HTTP and the OpenAI shapes;
// the backend owns tokenizing, routing and engines.
import type { ApiRequest, Prompt } from "./request.js";

export type CachedTokensSource = "engine" | "router" | "none";

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  cachedTokensSource: CachedTokensSource;
}

export type GenerationEvent =
  /** The engine that answers is fixed (after any retry); comes before the first delta. */
  | { type: "start"; engine: string; overlapBlocks: number; promptTokens: number; cachedTokensSource: CachedTokensSource }
  | { type: "delta"; text: string; tokenCount: number }
  | { type: "finish"; finishReason: string; usage: Usage }
  /** The request failed after it started; `status` is what a not-yet-started response would carry. */
  | { type: "error"; status: number; message: string; code: string };

export interface RouteReport {
  engine: string;
  overlap_blocks: number;
  block_size: number;
  prompt_tokens: number;
  engines: { engine: string; overlap_blocks: number; cost: number; active_blocks: number }[];
}

export interface ModelCard {
  id: string;
  object: "model";
  created: number;
  owned_by: string;
  max_model_len: number;
}

export interface HealthReport {
  ready: boolean;
  engines: { engine: string; state: string }[];
}

export interface Backend {
  models(): ModelCard[];
  /** Throws an ApiError (404) when `model` is not served. */
  checkModel(model: string): void;
  health(): HealthReport;
  route(request: ApiRequest, prompt: Prompt): Promise<RouteReport>;
  /**
   * Prepares, routes and dispatches one prompt. Rejects with an ApiError for input the model cannot take
   * (out-of-vocabulary ids, too long) or when no engine is available; later failures arrive as an error event.
   */
  generate(request: ApiRequest, prompt: Prompt, signal: AbortSignal): Promise<AsyncIterable<GenerationEvent>>;
  metrics(): Promise<{ contentType: string; body: string }>;
}
