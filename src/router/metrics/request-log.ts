import type { Logger } from "pino";
import type { RequestRecord } from "../http/telemetry.js";

const ms = (seconds: number | null) => (seconds === null ? null : Math.round(seconds * 1e6) / 1e3);

/** One log line per request: info for answered ones, warn for failures on the router's or engine's side. */
export function requestLogger(log: Logger): (r: RequestRecord) => void {
  return (r) => {
    if (!log.isLevelEnabled("info")) return;
    const line = {
      endpoint: r.endpoint,
      status: r.status,
      stream: r.stream,
      engine: r.engines.join(",") || null,
      ...(r.prefillEngines ? { prefill_engine: r.prefillEngines.join(",") } : {}),
      overlap_blocks: r.overlapBlocks.join(",") || null,
      prompt_tokens: r.promptTokens,
      completion_tokens: r.completionTokens,
      cached_tokens: r.cachedTokens,
      cached_tokens_source: r.cachedTokensSource,
      ttft_ms: ms(r.ttft),
      duration_ms: ms(r.duration),
      ...(r.error ? { error: r.error } : {}),
    };
    if (r.status >= 500) log.warn(line, "request failed");
    else log.info(line, "request");
  };
}
