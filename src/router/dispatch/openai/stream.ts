// Reading an OpenAI-compatible engine's /v1/completions stream: one SSE data payload at a time, into what the
// router needs (text deltas with their token counts, the finish, the usage, an error), without sockets.
//
// Token counts. A chunk can carry several tokens (vLLM merges the outputs of steps its client has not read
// yet; speculative decoding emits several per step), so one chunk is not one token. The router asks for
// `stream_options.continuous_usage_stats`: vLLM and SGLang then put the cumulative `completion_tokens` on
// every chunk, and a chunk's tokens are the difference from the previous one. An engine that ignores the
// option is counted one token per chunk with text, which is exact for vLLM without speculative decoding and
// otherwise an estimate for the load booking only: the final usage's completion_tokens, reported to the
// client, is the engine's own.
//
// cached_tokens. vLLM reports `usage.prompt_tokens_details.cached_tokens` only with
// --enable-prompt-tokens-details, and (up to its completion serving rewrite) only when it is not 0; SGLang
// only with --enable-cache-report and when not 0. So an engine that has reported the field once is known to
// report it, and from then on a missing field means 0; before that the count is unknown (null), and the
// router's estimate stands in (see schedule/cached-tokens.ts). CachedTokensReporting keeps that knowledge
// per engine.

/** The usage an engine reported at the end of a stream. */
export interface UpstreamUsage {
  promptTokens: number | null;
  completionTokens: number | null;
  /** `prompt_tokens_details.cached_tokens`, null when absent. */
  cachedTokens: number | null;
}

export type StreamStep =
  | { type: "delta"; text: string; tokens: number }
  | { type: "finish"; finishReason: string; stopReason: string | number | null }
  | { type: "usage"; usage: UpstreamUsage }
  | { type: "error"; message: string; status: number | null };

import { errorOf } from "../../../util/openai-wire.js";

export { errorMessage, errorOf } from "../../../util/openai-wire.js";

type Json = Record<string, unknown>;

export class CompletionStreamReader {
  /** Cumulative completion tokens from continuous usage, or null before the first chunk that had it. */
  #reported: number | null = null;
  /** Tokens counted so far, however they were counted. */
  tokens = 0;

  /** One SSE data payload (not `[DONE]`). A payload that is not a completion chunk is an error step. */
  read(data: string): StreamStep[] {
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      return [{ type: "error", message: `the engine streamed a chunk that is not JSON: ${preview(data)}`, status: null }];
    }
    if (!isObject(chunk)) return [{ type: "error", message: `the engine streamed a chunk that is not an object: ${preview(data)}`, status: null }];
    if (chunk.error !== undefined || chunk.object === "error") {
      const { message, status } = errorOf(chunk);
      return [{ type: "error", message, status }];
    }
    const steps: StreamStep[] = [];
    const choices = chunk.choices;
    if (!Array.isArray(choices)) return [{ type: "error", message: `the engine streamed a chunk without choices: ${preview(data)}`, status: null }];
    const usage = isObject(chunk.usage) ? chunk.usage : null;
    const choice = choices[0];
    if (isObject(choice)) {
      const text = typeof choice.text === "string" ? choice.text : "";
      const finish = typeof choice.finish_reason === "string" ? choice.finish_reason : null;
      const cumulative = usage !== null ? count(usage.completion_tokens) : null;
      let tokens: number;
      if (cumulative !== null) {
        tokens = Math.max(0, cumulative - (this.#reported ?? 0));
        this.#reported = Math.max(cumulative, this.#reported ?? 0);
      } else {
        tokens = text !== "" ? 1 : 0;
      }
      this.tokens += tokens;
      if (text !== "" || tokens > 0) steps.push({ type: "delta", text, tokens });
      if (finish !== null) {
        const stop = choice.stop_reason ?? choice.matched_stop ?? null;
        steps.push({ type: "finish", finishReason: finish, stopReason: typeof stop === "string" || typeof stop === "number" ? stop : null });
      }
    } else if (usage !== null) {
      // The last chunk of include_usage: no choices, the whole request's usage.
      const details = isObject(usage.prompt_tokens_details) ? usage.prompt_tokens_details : null;
      steps.push({
        type: "usage",
        usage: { promptTokens: count(usage.prompt_tokens), completionTokens: count(usage.completion_tokens), cachedTokens: details ? count(details.cached_tokens) : null },
      });
    }
    return steps;
  }
}

/** A whole (non-streamed) completion response, as the router needs it. */
export interface WholeCompletion {
  text: string;
  finishReason: string;
  stopReason: string | number | null;
  usage: UpstreamUsage;
  /** The engine's KV connector's answer (vLLM puts it beside the usage), or null. */
  kvTransferParams: Record<string, unknown> | null;
}

/** Reads a whole completion response body; throws an Error naming what is wrong with it. */
export function readWholeCompletion(text: string): WholeCompletion {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`the engine answered with a body that is not JSON: ${preview(text)}`);
  }
  if (!isObject(body) || !Array.isArray(body.choices) || !isObject(body.choices[0])) throw new Error(`the engine answered without a choice: ${preview(text)}`);
  const choice = body.choices[0];
  if (typeof choice.finish_reason !== "string") throw new Error(`the engine's answer has no finish_reason: ${preview(text)}`);
  const usage = isObject(body.usage) ? body.usage : {};
  const details = isObject(usage.prompt_tokens_details) ? usage.prompt_tokens_details : null;
  const stop = choice.stop_reason ?? choice.matched_stop ?? null;
  return {
    text: typeof choice.text === "string" ? choice.text : "",
    finishReason: choice.finish_reason,
    stopReason: typeof stop === "string" || typeof stop === "number" ? stop : null,
    usage: { promptTokens: count(usage.prompt_tokens), completionTokens: count(usage.completion_tokens), cachedTokens: details ? count(details.cached_tokens) : null },
    kvTransferParams: isObject(body.kv_transfer_params) ? body.kv_transfer_params : null,
  };
}

/** Per engine: whether it has ever reported cached_tokens, which decides what a missing field means. */
export class CachedTokensReporting {
  #reports = false;

  /** The engine's count for one answer: the field when present; 0 when absent from an engine known to report it; else null. */
  count(reported: number | null): number | null {
    if (reported !== null) {
      this.#reports = true;
      return reported;
    }
    return this.#reports ? 0 : null;
  }

  /** Forget (the engine restarted, maybe with other flags). */
  reset(): void {
    this.#reports = false;
  }
}

function count(value: unknown): number | null {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : null;
}

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function preview(text: string): string {
  return JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}…` : text);
}
