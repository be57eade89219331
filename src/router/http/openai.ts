// Response bodies as the OpenAI API reference gives them, field for field.
import type { Endpoint } from "./request.js";
import type { Usage } from "../types.js";

export interface UsageBody {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

export function usageBody(u: Usage): UsageBody {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: { cached_tokens: u.cachedTokens },
  };
}

export function sumUsage(list: Usage[]): Usage {
  const sources = new Set(list.map((u) => u.cachedTokensSource));
  return {
    promptTokens: list.reduce((n, u) => n + u.promptTokens, 0),
    completionTokens: list.reduce((n, u) => n + u.completionTokens, 0),
    cachedTokens: list.reduce((n, u) => n + u.cachedTokens, 0),
    // A batch mixing sources reports the weakest one: the header must not claim more than was measured.
    cachedTokensSource: sources.has("none") ? "none" : sources.has("router") ? "router" : "engine",
  };
}

export interface ResponseMeta {
  id: string;
  created: number;
  model: string;
}

export function responseId(endpoint: Endpoint): string {
  const random = Math.random().toString(36).slice(2, 14).padEnd(12, "0");
  return `${endpoint === "chat" ? "chatcmpl" : "cmpl"}-${Date.now().toString(36)}${random}`;
}

export interface Choice {
  text: string;
  finishReason: string;
}

export function completionBody(endpoint: Endpoint, meta: ResponseMeta, choices: Choice[], usage: Usage): object {
  if (endpoint === "chat") {
    return {
      id: meta.id,
      object: "chat.completion",
      created: meta.created,
      model: meta.model,
      choices: choices.map((c, index) => ({
        index,
        message: { role: "assistant", content: c.text },
        logprobs: null,
        finish_reason: c.finishReason,
      })),
      usage: usageBody(usage),
    };
  }
  return {
    id: meta.id,
    object: "text_completion",
    created: meta.created,
    model: meta.model,
    choices: choices.map((c, index) => ({ index, text: c.text, logprobs: null, finish_reason: c.finishReason })),
    usage: usageBody(usage),
  };
}

/**
 * One streamed chunk. `delta` is the new text (chat: undefined for the opening role-only delta), and
 * `finishReason` is set on a choice's last chunk. With include_usage every chunk carries `usage: null`.
 */
export function chunkBody(
  endpoint: Endpoint,
  meta: ResponseMeta,
  index: number,
  delta: string | undefined,
  finishReason: string | null,
  includeUsage: boolean,
): object {
  const base =
    endpoint === "chat"
      ? {
          id: meta.id,
          object: "chat.completion.chunk",
          created: meta.created,
          model: meta.model,
          choices: [
            {
              index,
              delta: delta === undefined ? (finishReason === null ? { role: "assistant", content: "" } : {}) : { content: delta },
              logprobs: null,
              finish_reason: finishReason,
            },
          ],
        }
      : {
          id: meta.id,
          object: "text_completion",
          created: meta.created,
          model: meta.model,
          choices: [{ index, text: delta ?? "", logprobs: null, finish_reason: finishReason }],
        };
  return includeUsage ? { ...base, usage: null } : base;
}

/** The final chunk of a stream with include_usage: no choices, the usage of the whole request. */
export function usageChunkBody(endpoint: Endpoint, meta: ResponseMeta, usage: Usage): object {
  return {
    id: meta.id,
    object: endpoint === "chat" ? "chat.completion.chunk" : "text_completion",
    created: meta.created,
    model: meta.model,
    choices: [],
    usage: usageBody(usage),
  };
}
