// The cached_tokens rule: the engine's own count when it gave one; otherwise, unless the fallback is off,
// the router's estimate overlap_blocks × block_size, capped below the prompt length (an engine always
// computes at least the last prompt token). 0 is reported like any other count.
//
// Disaggregated, the engine is the prefill engine, which computed the prompt: its count, else its overlap
// estimate. The decode engine counts the transferred blocks as cached too (vLLM's num_cached_tokens holds
// what a KV connector supplied), so its count says nothing of reuse, except when the transfer failed: the
// decode engine then prefilled the prompt itself (vLLM's kv_load_failure_policy "recompute"), and its own
// count (its local cache hits) is the answer's.
import type { CachedTokensSource } from "../types.js";

export type CachedTokensFallback = "router" | "none";

export interface CachedTokens {
  cachedTokens: number;
  source: CachedTokensSource;
}

export function cachedTokens(
  engineCount: number | null,
  overlapBlocks: number,
  blockSize: number,
  promptTokens: number,
  fallback: CachedTokensFallback,
): CachedTokens {
  if (engineCount !== null) return { cachedTokens: engineCount, source: "engine" };
  if (fallback === "none") return { cachedTokens: 0, source: "none" };
  return { cachedTokens: Math.max(0, Math.min(overlapBlocks * blockSize, promptTokens - 1)), source: "router" };
}

/**
 * The source a response will most likely report, before the engine has answered (a stream's headers leave
 * with its first token): what this engine did last time, or `engine` when it has not answered yet.
 */
export function expectedSource(reportedLastTime: boolean | null, fallback: CachedTokensFallback): CachedTokensSource {
  if (reportedLastTime !== false) return "engine";
  return fallback === "router" ? "router" : "none";
}

/**
 * Whether a decode engine's count shows that its KV transfer failed. After a transfer it holds every prompt
 * token but the last, which it computes (vLLM's NixlConnector), and counts them as cached; fewer means it
 * computed the rest itself. Unknown (null) counts show nothing.
 */
export function transferFailed(decodeCount: number | null, promptTokens: number): boolean {
  return decodeCount !== null && decodeCount < promptTokens - 1;
}
