import type { CachedTokensSource } from "../http/backend.js";

export type CachedTokensFallback = "router" | "none";

/**
 * The cached_tokens a response reports: the engine's own count when it gave one; otherwise, unless the
 * fallback is off, the router's estimate overlap_blocks × block_size, capped below the prompt length
 * (an engine always computes at least the last prompt token).
 */
export function cachedTokens(
  engineCount: number | null,
  overlapBlocks: number,
  blockSize: number,
  promptTokens: number,
  fallback: CachedTokensFallback,
): { cachedTokens: number; source: CachedTokensSource } {
  if (engineCount !== null) return { cachedTokens: engineCount, source: "engine" };
  if (fallback === "none") return { cachedTokens: 0, source: "none" };
  return { cachedTokens: Math.max(0, Math.min(overlapBlocks * blockSize, promptTokens - 1)), source: "router" };
}
