// An engine that is an OpenAI-compatible HTTP server: vLLM's `vllm serve`, or SGLang's server.
//
// - Discovery and health: GET /health is polled (every healthIntervalMs while up; with jittered exponential
//   backoff while not). When it answers 200 after the engine was not up, GET /v1/models gives the model name
//   and max_model_len, and the engine is reported up. A failed poll, or a request that cannot connect,
//   reports it down; the fleet then stops scheduling it and drops its index entries, and it rejoins on the
//   next good poll.
// - The block size is the router's (--block-size, default 16, vLLM's default); an engine whose /metrics
//   reports another one in vLLM's cache_config_info is refused. The KV events' own block sizes are checked in
//   the KV-event thread, which has the last word.
// - Load: GET /metrics every metricsIntervalMs while up, read into an EngineReport (openai/metrics-text.ts)
//   for the scheduler; a report older than three intervals is withdrawn.
// - Requests: POST /v1/completions with the token ids as the prompt, streamed (openai/body.ts), read chunk by
//   chunk (openai/stream.ts); a prefill for a remote decode is sent unstreamed and read whole, for the
//   kv_transfer_params vLLM returns only there. Aborting the signal, or the consumer leaving the loop, closes the upstream
//   request (its connection is destroyed), which makes vLLM and SGLang abort it. Connections are pooled and
//   kept alive (undici), with connect, header and body timeouts; health, models and metrics use a pool of
//   their own, so that busy streams never delay a health poll.
// - Failures are events, never throws: a refused connection or a 5xx before any token is an engine failure
//   (retried elsewhere by the retry wrapper), a 4xx is the request's own fault and carries the engine's
//   status, a stream cut short is engine_disconnected with the tokens it had produced.
import { createParser } from "eventsource-parser";
import { Pool, type Dispatcher } from "undici";
import type { LogFn } from "../../engine-protocol/index.js";
import type { EngineReport } from "../schedule/index.js";
import type { Engine, EngineEvent, EngineInfo, EngineListener, GenerateRequest } from "./engine.js";
import { completionBody, wantsWholeResponse } from "./openai/body.js";
import { readEngineMetrics } from "./openai/metrics-text.js";
import { parseModels } from "./openai/models.js";
import { CachedTokensReporting, CompletionStreamReader, errorMessage, readWholeCompletion, type UpstreamUsage } from "./openai/stream.js";
import { readBoundedText as readText } from "../../util/openai-wire.js";
import type { AbortSignalLike } from "../../util/abort.js";

export interface HttpEngineOptions {
  /** Shown instead of the address in messages that can reach clients. */
  name: string;
  /** The block size the router hashes with; the engine must use the same. */
  blockSize: number;
  /** The engine's KV-event publisher (vLLM's --kv-events-config endpoint); null: routed by load alone. */
  kvEndpoint: string | null;
  replayEndpoint: string | null;
  /** How often /metrics is read while up; 0: never (the router's own bookings only). */
  metricsIntervalMs: number;
  /** How often /health is polled while up (default 1000). */
  healthIntervalMs?: number;
  /** First and longest wait between polls while the engine is not up (defaults 250 and 5000). */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** TCP connect (default 5000). */
  connectTimeoutMs?: number;
  /** Until a completion's response headers (default 300000: SGLang sends them with the first token). */
  headersTimeoutMs?: number;
  /** Longest silence between two chunks of a completion (default 300000). */
  bodyTimeoutMs?: number;
  /** Whole /health, /v1/models or /metrics request (default 5000). */
  controlTimeoutMs?: number;
  log: LogFn;
}

type State = "starting" | "up" | "down" | "closed";

type Probe = { ok: true; info: EngineInfo | null } | { ok: false; reason: string; refuse: boolean };

/** Error bodies and metrics texts are read up to these sizes. */
const ERROR_BODY_LIMIT = 64 << 10;
const CONTROL_BODY_LIMIT = 16 << 20;

export class HttpEngine implements Engine {
  readonly #o: Required<Omit<HttpEngineOptions, "kvEndpoint" | "replayEndpoint">> & Pick<HttpEngineOptions, "kvEndpoint" | "replayEndpoint">;
  readonly #pool: Pool;
  readonly #control: Pool;
  readonly #cached = new CachedTokensReporting();
  #listener: EngineListener | null = null;
  #state: State = "starting";
  #model: string | null = null;
  #retryMs: number;
  #healthTimer: NodeJS.Timeout | null = null;
  #metricsTimer: NodeJS.Timeout | null = null;
  #checking: Promise<void> | null = null;
  #lastReport = 0;
  #warnedNoGauges = false;

  constructor(
    readonly url: string,
    options: HttpEngineOptions,
  ) {
    this.#o = {
      healthIntervalMs: 1000,
      retryInitialMs: 250,
      retryMaxMs: 5000,
      connectTimeoutMs: 5000,
      headersTimeoutMs: 300_000,
      bodyTimeoutMs: 300_000,
      controlTimeoutMs: 5000,
      ...options,
    };
    this.#retryMs = this.#o.retryInitialMs;
    // Idle connections are closed after 4 s unless the engine names its own timeout: uvicorn, which serves
    // vLLM's and SGLang's APIs, closes them after 5 s without saying so, and a request sent on one just as
    // it closes would fail and be sent to another engine, away from its cache.
    const timeouts = { connect: { timeout: this.#o.connectTimeoutMs }, keepAliveTimeout: 4_000 };
    this.#pool = new Pool(url, { ...timeouts, headersTimeout: this.#o.headersTimeoutMs, bodyTimeout: this.#o.bodyTimeoutMs });
    this.#control = new Pool(url, { ...timeouts, connections: 2, headersTimeout: this.#o.controlTimeoutMs, bodyTimeout: this.#o.controlTimeoutMs });
  }

  start(listener: EngineListener): void {
    this.#listener = listener;
    void this.#check();
  }

  async close(): Promise<void> {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#clearTimers();
    await Promise.all([this.#pool.destroy(), this.#control.destroy()]);
  }

  async *generate(request: GenerateRequest, options: { signal?: AbortSignalLike }): AsyncGenerator<EngineEvent> {
    const { signal } = options;
    if (signal?.aborted) return;
    const model = this.#model;
    if (model === null || this.#state !== "up") {
      yield { type: "error", code: "engine_unavailable", message: `engine ${this.#o.name} is not up`, tokensProduced: 0 };
      return;
    }
    // Aborted by the caller's signal or, in `finally`, by the consumer leaving early: either way the
    // upstream connection is destroyed, which is how an HTTP client tells vLLM to abort.
    const upstream = new AbortController();
    const onAbort = () => upstream.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    let produced = 0;
    let completed = false;
    try {
      let res: Dispatcher.ResponseData;
      try {
        res = await this.#pool.request({
          method: "POST",
          path: "/v1/completions",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(completionBody(model, request)),
          signal: upstream.signal,
        });
      } catch (err) {
        if (upstream.signal.aborted) return;
        this.#suspect();
        yield { type: "error", code: "engine_unavailable", message: `engine ${this.#o.name} could not be reached: ${describe(err)}`, tokensProduced: 0 };
        return;
      }
      if (res.statusCode !== 200) {
        const message = errorMessage(await readText(res.body, ERROR_BODY_LIMIT).catch(() => ""));
        const status = res.statusCode;
        completed = true;
        if (status >= 400 && status < 500) {
          yield { type: "error", code: "invalid_request", message, tokensProduced: 0, upstreamStatus: status };
        } else {
          if (status === 503) this.#suspect();
          yield { type: "error", code: "engine_error", message: `engine ${this.#o.name} answered ${status}: ${message}`, tokensProduced: 0, upstreamStatus: status };
        }
        return;
      }
      if (wantsWholeResponse(request)) {
        let whole;
        try {
          whole = readWholeCompletion(await readText(res.body, CONTROL_BODY_LIMIT));
          completed = true;
        } catch (err) {
          if (upstream.signal.aborted) return;
          yield { type: "error", code: "engine_error", message: `engine ${this.#o.name}: ${(err as Error).message}`, tokensProduced: 0 };
          return;
        }
        const u = whole.usage;
        const tokens = u.completionTokens ?? (whole.text === "" ? 0 : 1);
        if (tokens > 0 || whole.text !== "") yield { type: "delta", tokenIds: [], text: whole.text, tokenCount: tokens };
        yield {
          type: "finish",
          finishReason: whole.finishReason,
          stopReason: whole.stopReason,
          usage: { promptTokens: u.promptTokens ?? request.promptTokenIds.length, completionTokens: tokens, cachedTokens: this.#cached.count(u.cachedTokens) },
          ...(whole.kvTransferParams ? { kvTransferParams: whole.kvTransferParams } : {}),
        };
        return;
      }
      const reader = new CompletionStreamReader();
      let pending: EngineEvent[] = [];
      let finish: { finishReason: string; stopReason: string | number | null } | null = null;
      let usage: UpstreamUsage | null = null;
      let failure: { message: string; status: number | null } | null = null;
      let done = false;
      const parser = createParser({
        onEvent: (event) => {
          if (done || failure) return;
          if (event.data === "[DONE]") {
            done = true;
            return;
          }
          for (const step of reader.read(event.data)) {
            if (step.type === "delta") pending.push({ type: "delta", tokenIds: [], text: step.text, tokenCount: step.tokens });
            else if (step.type === "finish") finish = { finishReason: step.finishReason, stopReason: step.stopReason };
            else if (step.type === "usage") usage = step.usage;
            else failure = { message: step.message, status: step.status };
          }
        },
      });
      const decoder = new TextDecoder();
      try {
        for await (const chunk of res.body) {
          parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
          const events = pending;
          pending = [];
          for (const event of events) {
            if (event.type === "delta") produced += event.tokenCount ?? 0;
            yield event;
          }
          // After [DONE] the body is read to its end, so that the connection goes back to the pool.
          if (failure) break;
        }
        completed = failure === null;
      } catch (err) {
        if (upstream.signal.aborted) return;
        yield { type: "error", code: "engine_disconnected", message: `engine ${this.#o.name}'s stream broke: ${describe(err)}`, tokensProduced: produced };
        return;
      }
      if (failure !== null) {
        const { message, status } = failure as { message: string; status: number | null };
        if (produced === 0 && status !== null && status >= 400 && status < 500) {
          yield { type: "error", code: "invalid_request", message, tokensProduced: 0, upstreamStatus: status };
        } else {
          yield { type: "error", code: "engine_error", message: `engine ${this.#o.name} failed the request: ${message}`, tokensProduced: produced };
        }
        return;
      }
      if (finish === null) {
        yield { type: "error", code: "engine_disconnected", message: `engine ${this.#o.name}'s stream ended before the request finished`, tokensProduced: produced };
        return;
      }
      const f = finish as { finishReason: string; stopReason: string | number | null };
      const u = usage as UpstreamUsage | null;
      yield {
        type: "finish",
        finishReason: f.finishReason,
        stopReason: f.stopReason,
        usage: {
          promptTokens: u?.promptTokens ?? request.promptTokenIds.length,
          completionTokens: u?.completionTokens ?? reader.tokens,
          cachedTokens: u === null ? null : this.#cached.count(u.cachedTokens),
        },
      };
    } finally {
      signal?.removeEventListener("abort", onAbort);
      if (!completed) upstream.abort();
    }
  }

  /** A request could not reach the engine: check its health now rather than at the next poll. */
  #suspect(): void {
    if (this.#state !== "up" || this.#checking) return;
    this.#clearHealthTimer();
    void this.#check();
  }

  #check(): Promise<void> {
    this.#checking ??= this.#probeAndReport().finally(() => (this.#checking = null));
    return this.#checking;
  }

  async #probeAndReport(): Promise<void> {
    const probe = await this.#probe();
    if (this.#state === "closed" || this.#listener === null) return;
    const listener = this.#listener;
    if (probe.ok) {
      if (probe.info !== null) {
        this.#state = "up";
        this.#retryMs = this.#o.retryInitialMs;
        this.#cached.reset(); // a restarted engine may run with other flags
        listener.up(probe.info);
        this.#scheduleMetrics(0);
      }
      this.#scheduleHealth(this.#o.healthIntervalMs);
      return;
    }
    if (probe.refuse) {
      listener.refused(probe.reason);
      return;
    }
    if (this.#state === "up") {
      this.#state = "down";
      this.#clearMetricsTimer();
      listener.load?.(null);
    }
    listener.down(probe.reason);
    const wait = this.#retryMs * (0.8 + 0.4 * Math.random());
    this.#retryMs = Math.min(this.#o.retryMaxMs, this.#retryMs * 2);
    this.#scheduleHealth(wait);
  }

  /** Health, and when the engine was not up, what it serves. `info` is null when it was up already. */
  async #probe(): Promise<Probe> {
    try {
      const health = await this.#get("/health");
      if (health.status !== 200) return { ok: false, reason: `GET /health answered ${health.status}: ${errorMessage(health.text)}`, refuse: false };
      if (this.#state === "up") return { ok: true, info: null };
      const models = await this.#get("/v1/models");
      if (models.status !== 200) return { ok: false, reason: `GET /v1/models answered ${models.status}: ${errorMessage(models.text)}`, refuse: false };
      const served = parseModels(JSON.parse(models.text));
      // The engine's configured block size and KV capacity, where its /metrics says (vLLM does).
      const metrics = this.#o.metricsIntervalMs > 0 ? await this.#get("/metrics").catch(() => null) : null;
      const reading = metrics?.status === 200 ? readEngineMetrics(metrics.text, this.#o.blockSize) : null;
      if (reading?.blockSize != null && reading.blockSize !== this.#o.blockSize) {
        return { ok: false, refuse: true, reason: `its /metrics reports block size ${reading.blockSize}, but the router hashes blocks of ${this.#o.blockSize} (set --block-size on both)` };
      }
      this.#model = served.model;
      return {
        ok: true,
        info: {
          software: `${served.ownedBy ?? "openai"} (HTTP)`,
          model: served.model,
          blockSize: this.#o.blockSize,
          maxModelLen: served.maxModelLen,
          numBlocks: reading?.report?.numBlocks ?? null,
          kvEvents: this.#o.kvEndpoint === null ? null : { endpoint: this.#o.kvEndpoint, replayEndpoint: this.#o.replayEndpoint, topic: "" },
          ranks: { start: 0, size: 1 },
        },
      };
    } catch (err) {
      return { ok: false, reason: describe(err), refuse: false };
    }
  }

  async #scrape(): Promise<void> {
    let report: EngineReport | null = null;
    try {
      const res = await this.#get("/metrics");
      if (res.status === 200) {
        report = readEngineMetrics(res.text, this.#o.blockSize).report;
        if (report === null && !this.#warnedNoGauges) {
          this.#warnedNoGauges = true;
          this.#o.log("warn", "its /metrics has neither vLLM's nor SGLang's request gauges: load from its other clients is not counted");
        }
      }
    } catch {
      // A failed scrape leaves the last report in place until it is stale.
    }
    if (this.#state !== "up") return;
    const now = performance.now();
    if (report !== null) {
      this.#lastReport = now;
      this.#listener?.load?.(report);
    } else if (now - this.#lastReport > 3 * this.#o.metricsIntervalMs) {
      this.#listener?.load?.(null);
    }
  }

  async #get(path: string): Promise<{ status: number; text: string }> {
    const res = await this.#control.request({ method: "GET", path, signal: AbortSignal.timeout(this.#o.controlTimeoutMs) });
    return { status: res.statusCode, text: await readText(res.body, CONTROL_BODY_LIMIT) };
  }

  #scheduleHealth(ms: number): void {
    this.#clearHealthTimer();
    if (this.#state === "closed") return;
    this.#healthTimer = setTimeout(() => void this.#check(), ms);
    this.#healthTimer.unref();
  }

  #scheduleMetrics(ms: number): void {
    this.#clearMetricsTimer();
    if (this.#o.metricsIntervalMs <= 0 || this.#state !== "up") return;
    this.#metricsTimer = setTimeout(() => {
      void this.#scrape().finally(() => this.#scheduleMetrics(this.#o.metricsIntervalMs));
    }, ms);
    this.#metricsTimer.unref();
  }

  #clearHealthTimer(): void {
    if (this.#healthTimer) clearTimeout(this.#healthTimer);
    this.#healthTimer = null;
  }

  #clearMetricsTimer(): void {
    if (this.#metricsTimer) clearTimeout(this.#metricsTimer);
    this.#metricsTimer = null;
  }

  #clearTimers(): void {
    this.#clearHealthTimer();
    this.#clearMetricsTimer();
  }
}

/** A connection failure in words: the system's code and message, undici's cause included. */
function describe(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e.code ?? e.cause?.code;
  const message = e.cause?.message ?? e.message ?? String(err);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}
