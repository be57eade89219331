// Drives an OpenAI endpoint on a trace's clock: each record is sent at its timestamp divided by the speed-up,
// as a streamed `/v1/completions` request with token-id prompt, and measured.
import { setTimeout as sleep } from "node:timers/promises";
import { Agent } from "undici";
import type { PromptSynthesizer, TraceRecord } from "../trace/index.js";
import { streamCompletion } from "./request.js";
import { resultOf, type RequestResult } from "./result.js";
import { authHeaders } from "./target.js";

export interface ReplayOptions {
  /**
   * The API base, e.g. http://127.0.0.1:8000/v1 (see apiBase), or several (replicas of one router behind no
   * balancer): request i goes to base[i mod n], so the replicas share the load evenly.
   */
  base: string | readonly string[];
  model: string;
  trace: AsyncIterable<TraceRecord>;
  synthesize: PromptSynthesizer;
  /** Trace time runs this many times faster than wall time; default 1. */
  speedup?: number;
  /** At most this many requests in flight; a request due while the cap is reached waits for a free slot. */
  maxConcurrency?: number;
  /** Send at most this many requests. */
  maxRequests?: number;
  /** Send only the requests scheduled within this many seconds of the start (after speed-up). */
  durationSec?: number;
  /** Per request, from sending to the end of its stream; default 600,000 ms. */
  timeoutMs?: number;
  /** Send vLLM's `ignore_eos: true` so every request generates exactly its output length; default true. */
  ignoreEos?: boolean;
  apiKey?: string;
  /** Stops sending and aborts the requests in flight; what finished is kept. */
  signal?: AbortSignal;
  onSent?: (index: number, record: TraceRecord) => void;
  onResult?: (result: RequestResult, gapsMs: readonly number[]) => void;
}

export type StopReason = "trace-end" | "max-requests" | "duration" | "interrupted" | "trace-error";

export interface ReplayRun {
  startedAt: string;
  /** From the start to the last response. */
  durationMs: number;
  sent: number;
  stopped: StopReason;
  /** Why the trace could not be read on (a TraceError under strict, an unreadable file). */
  error?: Error;
}

/** The JSON body of one request; the token ids are joined by hand, which is faster than JSON.stringify of an array. */
export function completionRequestBody(model: string, prompt: Uint32Array, maxTokens: number, ignoreEos: boolean): string {
  return (
    `{"model":${JSON.stringify(model)},"prompt":[${prompt.join(",")}],"max_tokens":${maxTokens},` +
    `"stream":true,"stream_options":{"include_usage":true}${ignoreEos ? ',"ignore_eos":true' : ""}}`
  );
}

function positive(name: string, value: number | undefined, integer: boolean): void {
  if (value === undefined) return;
  if (!(value > 0) || !Number.isFinite(value) || (integer && !Number.isSafeInteger(value))) {
    throw new RangeError(`${name} must be a positive ${integer ? "integer" : "number"}, got ${value}`);
  }
}

export async function runReplay(options: ReplayOptions): Promise<ReplayRun> {
  const { speedup = 1, maxConcurrency, maxRequests, durationSec, timeoutMs = 600_000, ignoreEos = true, signal } = options;
  positive("speedup", speedup, false);
  positive("maxConcurrency", maxConcurrency, true);
  positive("maxRequests", maxRequests, true);
  positive("durationSec", durationSec, false);
  positive("timeoutMs", timeoutMs, false);

  // Timeouts are the request's own (timeoutMs), so undici's are off: a long prefill must not be cut short.
  // Idle connections are closed after 4 s (undici's default) unless the server gives its own timeout: a
  // server that closes them sooner than the client would (uvicorn, under vllm serve, after 5 s) can reset
  // the request sent on one just as it closes.
  const dispatcher = new Agent({ headersTimeout: 0, bodyTimeout: 0, keepAliveTimeout: 4_000 });
  const urls = (typeof options.base === "string" ? [options.base] : options.base).map((b) => `${b}/completions`);
  if (urls.length === 0) throw new RangeError("give at least one API base");
  const headers = { "content-type": "application/json", accept: "text/event-stream", ...authHeaders(options.apiKey) };
  const startedAt = new Date().toISOString();
  const start = performance.now();
  const clock = () => performance.now() - start;
  const inFlight = new Set<Promise<void>>();
  let lastEnd = 0;
  let sent = 0;
  let stopped: StopReason = "trace-end";
  let error: Error | undefined;
  let origin: number | undefined;

  const launch = (record: TraceRecord, body: string, maxTokens: number, scheduledMs: number) => {
    const index = sent++;
    const sentMs = clock();
    options.onSent?.(index, record);
    const task = streamCompletion({ url: urls[index % urls.length]!, body, headers, dispatcher, timeoutMs, ...(signal ? { signal } : {}) }).then((m) => {
      lastEnd = Math.max(lastEnd, clock());
      options.onResult?.(resultOf(record, index, scheduledMs, sentMs, maxTokens, m), m.gapsMs);
    });
    const tracked = task.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };

  const records = options.trace[Symbol.asyncIterator]();
  try {
    for (;;) {
      if (signal?.aborted) {
        stopped = "interrupted";
        break;
      }
      if (maxRequests !== undefined && sent >= maxRequests) {
        stopped = "max-requests";
        break;
      }
      let next: IteratorResult<TraceRecord>;
      try {
        next = await records.next();
      } catch (err) {
        stopped = "trace-error";
        error = err as Error;
        break;
      }
      if (next.done) break;
      const record = next.value;
      origin ??= record.timestampMs;
      const scheduledMs = (record.timestampMs - origin) / speedup;
      if (durationSec !== undefined && scheduledMs > durationSec * 1000) {
        stopped = "duration";
        break;
      }
      // The body is built before waiting, so the time it takes does not delay the send.
      const maxTokens = Math.max(1, record.outputLength);
      let body: string;
      try {
        body = completionRequestBody(options.model, options.synthesize(record), maxTokens, ignoreEos);
      } catch (err) {
        stopped = "trace-error";
        error = err as Error;
        break;
      }
      // Node's timers work in whole milliseconds of a clock sampled at the start of the loop turn, so
      // they can fire a little early: sleep again until the scheduled time has really come.
      for (let wait = scheduledMs - clock(); wait > 0 && !signal?.aborted; wait = scheduledMs - clock()) {
        await sleep(Math.ceil(wait), undefined, signal ? { signal } : {}).catch(() => undefined);
      }
      while (maxConcurrency !== undefined && inFlight.size >= maxConcurrency) await Promise.race(inFlight);
      if (signal?.aborted) {
        stopped = "interrupted";
        break;
      }
      launch(record, body, maxTokens, scheduledMs);
    }
  } finally {
    await records.return?.();
    await Promise.all(inFlight);
    await dispatcher.close();
  }
  return { startedAt, durationMs: sent > 0 ? lastEnd : clock(), sent, stopped, ...(error ? { error } : {}) };
}
