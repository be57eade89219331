// One streamed `/v1/completions` request, timed frame by frame.
//
// Works against any OpenAI-compatible server. kvroute's own response headers (which engine served the
// request, where cached_tokens came from) are read when present and reported as null otherwise.
import { createParser } from "eventsource-parser";
import { request, type Dispatcher } from "undici";
import { errorMessage, readBoundedText } from "../../util/openai-wire.js";

export type RequestErrorKind = "http" | "connect" | "timeout" | "stream" | "aborted";

export interface RequestError {
  kind: RequestErrorKind;
  message: string;
}

export interface ReportedUsage {
  promptTokens: number | null;
  completionTokens: number | null;
  /** `usage.prompt_tokens_details.cached_tokens`; null when the server does not report it. */
  cachedTokens: number | null;
}

export interface Measurement {
  /** HTTP status, null when no response arrived. */
  status: number | null;
  /** From sending to the first SSE data frame that carries a token. */
  ttftMs: number | null;
  /** From sending to the end of the stream (`[DONE]`), or to the failure. */
  e2eMs: number | null;
  /** Gaps between consecutive token frames, in order. */
  gapsMs: number[];
  /** SSE data frames that carried a token. */
  tokenFrames: number;
  usage: ReportedUsage | null;
  /** `x-kvroute-engine` (kvroute only). */
  engine: string | null;
  /** `x-kvroute-cached-tokens-source` (kvroute only). */
  cachedTokensSource: string | null;
  error: RequestError | null;
}

export interface CompletionCall {
  url: string;
  body: string;
  headers: Record<string, string>;
  dispatcher: Dispatcher;
  /** Aborts the request when the whole run stops. */
  signal?: AbortSignal;
  timeoutMs: number;
  /** Monotonic milliseconds; performance.now() by default. */
  clock?: () => number;
}

export const ENGINE_HEADER = "x-kvroute-engine";
export const CACHED_SOURCE_HEADER = "x-kvroute-cached-tokens-source";
/** A server's error body is read up to this many bytes. */
const ERROR_BODY_LIMIT = 64 << 10;
/** A single SSE event larger than this is a broken stream, not a completion chunk. */
const MAX_EVENT_CHARS = 16 << 20;

class StreamFailure extends Error {}

function headerValue(headers: Record<string, string | string[] | undefined>, name: string): string | null {
  const value = headers[name];
  return Array.isArray(value) ? (value[0] ?? null) : (value ?? null);
}

function count(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : null;
}

function parseUsage(value: unknown): ReportedUsage | null {
  if (value === null || typeof value !== "object") return null;
  const u = value as { prompt_tokens?: unknown; completion_tokens?: unknown; prompt_tokens_details?: { cached_tokens?: unknown } | null };
  return {
    promptTokens: count(u.prompt_tokens),
    completionTokens: count(u.completion_tokens),
    cachedTokens: count(u.prompt_tokens_details?.cached_tokens),
  };
}

function describeFailure(err: unknown, call: CompletionCall, timedOut: boolean): RequestError {
  if (call.signal?.aborted) return { kind: "aborted", message: "the run was stopped" };
  if (timedOut) return { kind: "timeout", message: `no complete response within ${call.timeoutMs} ms` };
  const e = err as { code?: string; message?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code;
  const where = new URL(call.url).host;
  if (code === "ECONNREFUSED") return { kind: "connect", message: `connection refused by ${where}` };
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return { kind: "connect", message: `cannot resolve ${where}` };
  return { kind: "connect", message: `${code ?? "request failed"}: ${e.message ?? String(err)}` };
}

/** Sends one streaming completion and measures it. Never throws: every failure is in `error`. */
export async function streamCompletion(call: CompletionCall): Promise<Measurement> {
  const clock = call.clock ?? (() => performance.now());
  const m: Measurement = {
    status: null,
    ttftMs: null,
    e2eMs: null,
    gapsMs: [],
    tokenFrames: 0,
    usage: null,
    engine: null,
    cachedTokensSource: null,
    error: null,
  };
  const timeout = AbortSignal.timeout(call.timeoutMs);
  const signal = call.signal ? AbortSignal.any([call.signal, timeout]) : timeout;
  const sent = clock();
  let lastFrame = 0;
  let done = false;
  let doneAt = 0;
  let now = sent;

  const onData = (data: string) => {
    if (done) return;
    if (data === "[DONE]") {
      done = true;
      doneAt = now;
      return;
    }
    let frame: { choices?: unknown; usage?: unknown; error?: unknown };
    try {
      frame = JSON.parse(data) as typeof frame;
    } catch {
      throw new StreamFailure(`malformed SSE data frame: ${data.slice(0, 120)}`);
    }
    if (frame === null || typeof frame !== "object") throw new StreamFailure(`SSE data frame is not a JSON object: ${data.slice(0, 120)}`);
    if (frame.error !== undefined && frame.error !== null) throw new StreamFailure(`error in stream: ${errorMessage(data)}`);
    const choice = Array.isArray(frame.choices) ? (frame.choices[0] as { text?: unknown; finish_reason?: unknown } | undefined) : undefined;
    // A token frame: text, or a token whose text is still held back (no finish_reason yet). The closing
    // frame with finish_reason and no text, and the usage frame with no choices, carry no token.
    if (choice !== undefined && ((typeof choice.text === "string" && choice.text !== "") || choice.finish_reason == null)) {
      if (m.ttftMs === null) m.ttftMs = now - sent;
      else m.gapsMs.push(now - lastFrame);
      lastFrame = now;
      m.tokenFrames++;
    }
    if (frame.usage !== undefined && frame.usage !== null) m.usage = parseUsage(frame.usage);
  };

  let body: (AsyncIterable<Buffer> & { destroy(): unknown }) | undefined;
  try {
    const res = await request(call.url, { method: "POST", headers: call.headers, body: call.body, dispatcher: call.dispatcher, signal });
    body = res.body;
    m.status = res.statusCode;
    m.engine = headerValue(res.headers, ENGINE_HEADER);
    m.cachedTokensSource = headerValue(res.headers, CACHED_SOURCE_HEADER);
    if (res.statusCode < 200 || res.statusCode > 299) {
      const text = await readBoundedText(res.body, ERROR_BODY_LIMIT);
      m.e2eMs = clock() - sent;
      m.error = { kind: "http", message: `HTTP ${res.statusCode}: ${errorMessage(text)}` };
      return m;
    }
    let failure: StreamFailure | undefined;
    const parser = createParser({
      maxBufferSize: MAX_EVENT_CHARS,
      onEvent: (event) => {
        if (failure !== undefined) return;
        try {
          onData(event.data);
        } catch (err) {
          if (!(err instanceof StreamFailure)) throw err;
          failure = err;
        }
      },
      onError: (err) => {
        if (err.type === "max-buffer-size-exceeded") failure ??= new StreamFailure(`an SSE event exceeds ${MAX_EVENT_CHARS} characters`);
      },
    });
    const decoder = new TextDecoder();
    // Read on past [DONE] to the end of the body, so the connection goes back to the pool for reuse.
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      now = clock();
      if (!done) parser.feed(decoder.decode(chunk, { stream: true }));
      if (failure !== undefined) break;
    }
    m.e2eMs = (done ? doneAt : now) - sent;
    if (failure !== undefined) m.error = { kind: "stream", message: failure.message };
    else if (!done) m.error = { kind: "stream", message: "the stream ended without data: [DONE]" };
  } catch (err) {
    if (done) {
      m.e2eMs = doneAt - sent;
      return m;
    }
    m.e2eMs = clock() - sent;
    const error = describeFailure(err, call, timeout.aborted);
    // A failure after the response started is a broken stream, whatever the socket said.
    m.error = m.status !== null && error.kind === "connect" ? { kind: "stream", message: `the stream broke: ${error.message}` } : error;
  } finally {
    body?.destroy();
  }
  return m;
}
