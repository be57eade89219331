// The outcome of one replayed request: one line of requests.jsonl, and the input of the statistics.
// Times are milliseconds from the start of the run, on the run's clock (wall time for a live replay,
// virtual time for a simulation), so both produce the same records and the same report.
import type { TraceRecord } from "../trace/index.js";
import type { Measurement, RequestErrorKind } from "./request.js";

export interface RequestResult {
  /** 0-based, in sending order. */
  index: number;
  /** The trace line it replays. */
  line: number;
  /** When the trace's clock (after speed-up) said to send it. */
  scheduledMs: number;
  /** When it was sent: later than scheduledMs when a concurrency cap or a busy event loop held it back. */
  sentMs: number;
  /** usage.prompt_tokens when reported, else the prompt length sent. */
  promptTokens: number;
  /** usage.completion_tokens when reported, else the token frames counted. */
  outputTokens: number;
  maxTokens: number;
  ttftMs: number | null;
  e2eMs: number | null;
  /** Mean and largest gap between token frames; null with fewer than two token frames. */
  itlMeanMs: number | null;
  itlMaxMs: number | null;
  /** usage.prompt_tokens_details.cached_tokens; null when the server did not report it. */
  cachedTokens: number | null;
  cachedTokensSource: string | null;
  engine: string | null;
  status: number | null;
  ok: boolean;
  errorKind: RequestErrorKind | null;
  error: string | null;
}

export function resultOf(
  record: TraceRecord,
  index: number,
  scheduledMs: number,
  sentMs: number,
  maxTokens: number,
  m: Measurement,
): RequestResult {
  const gaps = m.gapsMs;
  let sum = 0;
  let max = 0;
  for (const g of gaps) {
    sum += g;
    if (g > max) max = g;
  }
  return {
    index,
    line: record.line,
    scheduledMs,
    sentMs,
    promptTokens: m.usage?.promptTokens ?? record.inputLength,
    outputTokens: m.usage?.completionTokens ?? m.tokenFrames,
    maxTokens,
    ttftMs: m.ttftMs,
    e2eMs: m.e2eMs,
    itlMeanMs: gaps.length > 0 ? sum / gaps.length : null,
    itlMaxMs: gaps.length > 0 ? max : null,
    cachedTokens: m.usage?.cachedTokens ?? null,
    cachedTokensSource: m.cachedTokensSource,
    engine: m.engine,
    status: m.status,
    ok: m.error === null,
    errorKind: m.error?.kind ?? null,
    error: m.error?.message ?? null,
  };
}
