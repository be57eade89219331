// /v1/completions and /v1/chat/completions: dispatch every prompt, then stream or collect the answers.
import { LeanAbortSignal } from "../../util/abort.js";
import type { Backend, CachedTokensSource, GenerationEvent, Usage } from "../types.js";
import { ApiError, generationError, generationErrorStatus } from "./errors.js";
import type { Exchange, Headers } from "./exchange.js";
import { chunkBody, completionBody, responseId, sumUsage, usageChunkBody, type ResponseMeta } from "./openai.js";
import { generateInput, type ApiRequest } from "./request.js";
import type { RequestRecord, Telemetry } from "./telemetry.js";

type StartEvent = Extract<GenerationEvent, { type: "start" }>;

interface Lane {
  index: number;
  events: AsyncIterator<GenerationEvent>;
  start: StartEvent | null;
}

export interface GenerateOptions {
  /** How long a stream may wait for a slow client to drain a buffered frame before giving up on it. */
  drainTimeoutMs: number;
}

export async function handleGenerate(
  ex: Exchange,
  backend: Backend,
  request: ApiRequest,
  telemetry: Telemetry,
  record: RequestRecord,
  startedAt: number,
  options: GenerateOptions,
): Promise<void> {
  // The client leaving cancels every engine request; in a batch, so does one prompt failing. Each prompt of
  // a batch gets a signal of its own, linked to the client's by one listener, so that a failed prompt can
  // cancel its siblings without the client's signal saying that the client left. A single prompt needs no
  // more than the client's signal.
  const batch = request.prompts.length > 1 ? request.prompts.map(() => new LeanAbortSignal()) : null;
  const abortBatch = (reason: unknown) => {
    for (const signal of batch!) signal.abort(reason);
  };
  const onClientAbort = () => abortBatch(ex.signal.reason);
  if (batch) ex.signal.addEventListener("abort", onClientAbort, { once: true });
  let lanes: Lane[] = [];
  try {
    const iterables = await Promise.all(request.prompts.map((p, i) => backend.generate(generateInput(request, p), batch ? batch[i]! : ex.signal)));
    lanes = iterables.map((it, index) => ({ index, events: it[Symbol.asyncIterator](), start: null }));
    const failure = await startAll(lanes);
    if (failure) throw generationError(failure.code, failure.message, failure.status);
    const starts = lanes.map((l) => l.start!);
    record.engines = starts.map((s) => s.engine);
    if (starts.some((s) => s.prefillEngine !== undefined)) record.prefillEngines = starts.map((s) => s.prefillEngine ?? s.engine);
    record.overlapBlocks = starts.map((s) => s.overlapBlocks);
    const meta: ResponseMeta = { id: responseId(request.endpoint), created: Math.floor(Date.now() / 1000), model: request.model };
    const timing = new Timing(telemetry, startedAt);
    if (request.stream) {
      await stream(ex, request, lanes, meta, headersFor(starts, sourceOf(starts)), record, timing, options);
    } else {
      await collect(ex, request, lanes, meta, starts, record, timing);
    }
    record.ttft = timing.ttft;
  } catch (err) {
    if (batch) abortBatch(err);
    throw err;
  } finally {
    if (batch) ex.signal.removeEventListener("abort", onClientAbort);
    // Finish every lane's generator, so that its engine request and booked load are released even when
    // this handler stopped reading it (a client gone, a sibling failed).
    for (const lane of lanes) void lane.events.return?.(undefined)?.catch(() => undefined);
  }
}

/** Pulls each lane up to its start event; returns the first failure, if any lane failed before starting. */
async function startAll(lanes: Lane[]): Promise<Extract<GenerationEvent, { type: "error" }> | null> {
  const results = await Promise.all(
    lanes.map(async (lane) => {
      const first = await lane.events.next();
      if (first.done) return { type: "error" as const, message: "the engine ended the request without answering", code: "engine_error" };
      if (first.value.type === "error") return first.value;
      if (first.value.type !== "start") return { type: "error" as const, message: "the router produced output before choosing an engine", code: "internal_error" };
      lane.start = first.value;
      return null;
    }),
  );
  return results.find((r) => r !== null) ?? null;
}

class Timing {
  ttft: number | null = null;
  #last = 0;
  constructor(
    private readonly telemetry: Telemetry,
    private readonly startedAt: number,
  ) {}

  /** Called on every delta that carries tokens. */
  token(): void {
    const now = performance.now();
    if (this.ttft === null) this.ttft = (now - this.startedAt) / 1000;
    else this.telemetry.interTokenLatency((now - this.#last) / 1000);
    this.#last = now;
  }
}

function sourceOf(starts: StartEvent[]): CachedTokensSource {
  return sumUsage(starts.map((s) => ({ promptTokens: 0, completionTokens: 0, cachedTokens: 0, cachedTokensSource: s.cachedTokensSource }))).cachedTokensSource;
}

function headersFor(starts: StartEvent[], source: CachedTokensSource): Headers {
  const headers: Headers = {
    "x-kvroute-engine": starts.map((s) => s.engine).join(","),
    "x-kvroute-overlap-blocks": starts.map((s) => String(s.overlapBlocks)).join(","),
    "x-kvroute-cached-tokens-source": source,
  };
  // With engine roles: the engine that computed each prompt (the answering one when it prefilled locally).
  if (starts.some((s) => s.prefillEngine !== undefined)) headers["x-kvroute-prefill-engine"] = starts.map((s) => s.prefillEngine ?? s.engine).join(",");
  return headers;
}

async function collect(
  ex: Exchange,
  request: ApiRequest,
  lanes: Lane[],
  meta: ResponseMeta,
  starts: StartEvent[],
  record: RequestRecord,
  timing: Timing,
): Promise<void> {
  const results = await Promise.all(
    lanes.map(async (lane) => {
      let text = "";
      for (;;) {
        const next = await lane.events.next();
        if (next.done) throw new ApiError(502, "the engine ended the request without finishing it", "server_error", null, "engine_error");
        const event = next.value;
        if (event.type === "delta") {
          text += event.text;
          if (event.tokenCount > 0) timing.token();
        } else if (event.type === "finish") {
          return { text, finishReason: event.finishReason, usage: event.usage };
        } else if (event.type === "error") {
          throw generationError(event.code, event.message, event.status);
        }
      }
    }),
  );
  const usage = sumUsage(results.map((r) => r.usage));
  fillUsage(record, usage);
  ex.json(200, completionBody(request.endpoint, meta, results, usage), headersFor(starts, usage.cachedTokensSource));
}

async function stream(
  ex: Exchange,
  request: ApiRequest,
  lanes: Lane[],
  meta: ResponseMeta,
  headers: Headers,
  record: RequestRecord,
  timing: Timing,
  options: GenerateOptions,
): Promise<void> {
  const sse = ex.stream(headers);
  const send = async (value: unknown) => {
    const drained = sse.send(value);
    if (drained) await withTimeout(drained, options.drainTimeoutMs, ex);
  };
  if (request.endpoint === "chat") {
    for (const lane of lanes) await send(chunkBody("chat", meta, lane.index, undefined, null, request.includeUsage));
  }
  const usages: Usage[] = [];
  let failed: Extract<GenerationEvent, { type: "error" }> | null = null;
  // Lanes are read concurrently; each frame is written (and drained) before the next is pulled.
  const pulls = new Map(lanes.map((lane) => [lane.index, pull(lane)]));
  while (pulls.size > 0 && !ex.aborted) {
    const { lane, result } = await Promise.race(pulls.values());
    if (result.done) {
      pulls.delete(lane.index);
      failed ??= { type: "error", message: "the engine ended the request without finishing it", code: "engine_error" };
      continue;
    }
    const event = result.value;
    if (event.type === "delta") {
      if (event.tokenCount > 0) timing.token();
      if (event.text !== "") await send(chunkBody(request.endpoint, meta, lane.index, event.text, null, request.includeUsage));
      pulls.set(lane.index, pull(lane));
    } else if (event.type === "finish") {
      usages.push(event.usage);
      await send(chunkBody(request.endpoint, meta, lane.index, request.endpoint === "chat" ? undefined : "", event.finishReason, request.includeUsage));
      pulls.delete(lane.index);
    } else if (event.type === "error") {
      failed = event;
      pulls.delete(lane.index);
    } else {
      pulls.set(lane.index, pull(lane));
    }
  }
  if (ex.aborted) {
    record.status = 499;
    record.error = "client disconnected";
    return;
  }
  if (failed) {
    record.status = generationErrorStatus(failed.code, failed.status);
    record.error = failed.message;
    await send({ error: { message: failed.message, type: "server_error", param: null, code: failed.code } });
    sse.end();
    return;
  }
  const usage = sumUsage(usages);
  fillUsage(record, usage);
  if (request.includeUsage) await send(usageChunkBody(request.endpoint, meta, usage));
  sse.end();
}

function pull(lane: Lane): Promise<{ lane: Lane; result: IteratorResult<GenerationEvent> }> {
  return lane.events.next().then((result) => ({ lane, result }));
}

function fillUsage(record: RequestRecord, usage: Usage): void {
  record.promptTokens = usage.promptTokens;
  record.completionTokens = usage.completionTokens;
  record.cachedTokens = usage.cachedTokens;
  record.cachedTokensSource = usage.cachedTokensSource;
}

/** A client that does not drain a frame in time is disconnected: its engine request is aborted with it. */
async function withTimeout(drained: Promise<void>, ms: number, ex: Exchange): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      ex.close();
      resolve();
    }, ms);
  });
  try {
    await Promise.race([drained, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
