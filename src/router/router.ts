import type { Logger } from "pino";
import type { Backend, CachedTokensSource, GenerationEvent, HealthReport, ModelCard, RouteReport } from "./http/backend.js";
import { ApiError } from "./http/errors.js";
import type { ApiRequest, Prompt, Sampling } from "./http/request.js";
import { rootSeed } from "./prepare/hashing/index.js";
import type { RouterMetrics } from "./metrics/index.js";
import type { PreparePool, Prepared } from "./prepare/index.js";
import type { SamplingOptions } from "../engine-protocol/index.js";
import type { Decision, Scheduler } from "./schedule/index.js";
import { cachedTokens, type CachedTokensFallback } from "./schedule/cached-tokens.js";
import type { EngineHandle, Fleet } from "./dispatch/fleet.js";

export interface RouterOptions {
  fleet: Fleet;
  scheduler: Scheduler;
  pool: PreparePool;
  metrics: RouterMetrics;
  log: Logger;
  cachedTokensFallback: CachedTokensFallback;
  /** The name clients use for the model; defaults to the engines' model name. */
  servedModelName: string | null;
}

/** The path of one prompt: prepare, choose an engine, dispatch, retry once, account. */
export class Router implements Backend {
  readonly #created = Math.floor(Date.now() / 1000);
  readonly #seeds = new Map<string, bigint>();

  constructor(private readonly o: RouterOptions) {}

  get modelName(): string | null {
    return this.o.servedModelName ?? this.o.fleet.model;
  }

  models(): ModelCard[] {
    const id = this.modelName;
    const maxModelLen = this.o.fleet.maxModelLen;
    if (id === null || maxModelLen === null) return [];
    return [{ id, object: "model", created: this.#created, owned_by: "kvroute", max_model_len: maxModelLen }];
  }

  checkModel(model: string): void {
    const served = this.modelName;
    if (served === null) throw noEngine();
    if (model !== served) {
      throw new ApiError(404, `The model \`${model}\` does not exist. This router serves \`${served}\`.`, "not_found_error", "model", "model_not_found");
    }
  }

  health(): HealthReport {
    const engines = this.o.fleet.engines.map((e) => ({ engine: e.name, state: e.state, ...(e.reason ? { reason: e.reason } : {}) }));
    return { ready: this.o.fleet.up.length > 0, engines };
  }

  metrics(): Promise<{ contentType: string; body: string }> {
    return this.o.metrics.scrape();
  }

  async route(request: ApiRequest, prompt: Prompt): Promise<RouteReport> {
    const prepared = await this.#prepare(request, prompt);
    const decision = this.o.scheduler.decide(prepared.blocks, prepared.overlaps);
    if (!decision) throw noEngine();
    return {
      engine: this.#engine(decision.engine).name,
      overlap_blocks: decision.overlapBlocks,
      block_size: this.#blockSize(),
      prompt_tokens: prepared.tokens.length,
      engines: decision.scored.map((s) => ({
        engine: this.#engine(s.engine).name,
        overlap_blocks: s.overlapBlocks,
        cost: s.cost,
        active_blocks: s.activeBlocks,
      })),
    };
  }

  async generate(request: ApiRequest, prompt: Prompt, signal: AbortSignal): Promise<AsyncIterable<GenerationEvent>> {
    const prepared = await this.#prepare(request, prompt);
    const maxTokens = this.#maxTokens(request.sampling, prepared.tokens.length);
    const t0 = performance.now();
    const decision = this.o.scheduler.decide(prepared.blocks, prepared.overlaps);
    this.o.metrics.overhead("schedule", (performance.now() - t0) / 1000);
    if (!decision) throw noEngine();
    return this.#run(request, prepared, maxTokens, decision, signal);
  }

  async *#run(request: ApiRequest, prepared: Prepared, maxTokens: number, first: Decision, signal: AbortSignal): AsyncGenerator<GenerationEvent> {
    const { scheduler, metrics, log } = this.o;
    const blockSize = this.#blockSize();
    const promptTokens = prepared.tokens.length;
    let decision: Decision | null = first;
    const tried = new Set<number>();
    for (let attempt = 0; decision !== null; attempt++) {
      const engine = this.#engine(decision.engine);
      tried.add(engine.id);
      const booking = scheduler.book(decision, promptTokens, prepared.blocks, blockSize);
      metrics.predicted(decision.overlapBlocks * blockSize, promptTokens);
      let started = false;
      let retry = false;
      try {
        const events = engine.client.generate(
          {
            promptTokenIds: prepared.tokens,
            sampling: samplingOptions(request.sampling, maxTokens),
            overlapBlocks: decision.overlapBlocks,
            ...(request.cacheSalt !== undefined ? { cacheSalt: request.cacheSalt } : {}),
          },
          { signal },
        );
        for await (const event of events) {
          if (event.type === "delta") {
            if (!started) {
              started = true;
              booking.started();
              yield this.#start(engine, decision, promptTokens);
            }
            booking.generated(event.tokenIds.length);
            yield { type: "delta", text: event.text, tokenCount: event.tokenIds.length };
          } else if (event.type === "finish") {
            if (!started) yield this.#start(engine, decision, promptTokens);
            const cached = cachedTokens(event.usage.cachedTokens, decision.overlapBlocks, blockSize, event.usage.promptTokens, this.o.cachedTokensFallback);
            engine.reportsCachedTokens = event.usage.cachedTokens !== null;
            yield {
              type: "finish",
              finishReason: event.finishReason,
              usage: {
                promptTokens: event.usage.promptTokens,
                completionTokens: event.usage.completionTokens,
                cachedTokens: cached.cachedTokens,
                cachedTokensSource: cached.source,
              },
            };
            return;
          } else {
            const retriable = event.tokensProduced === 0 && attempt === 0 && !signal.aborted && isEngineFailure(event.code);
            if (retriable) {
              retry = true;
              log.warn({ engine: engine.name, code: event.code, reason: event.message }, "engine failed before the first token; retrying on another engine");
              break;
            }
            yield { type: "error", status: errorStatus(event.code), message: event.message, code: event.code };
            return;
          }
        }
      } finally {
        booking.release();
      }
      if (!retry) return; // aborted: the stream ended without a final event
      metrics.retried();
      decision = scheduler.decide(prepared.blocks, prepared.overlaps, tried);
    }
    yield { type: "error", status: 503, message: "the engine failed before answering and no other engine is available", code: "engine_unavailable" };
  }

  #start(engine: EngineHandle, decision: Decision, promptTokens: number): GenerationEvent {
    // Headers leave with the first token, before the engine's count exists: the source is predicted from
    // what this engine did last time, and the final usage carries the actual figure.
    const source: CachedTokensSource = engine.reportsCachedTokens === false ? (this.o.cachedTokensFallback === "router" ? "router" : "none") : "engine";
    return { type: "start", engine: engine.name, overlapBlocks: decision.overlapBlocks, promptTokens, cachedTokensSource: source };
  }

  async #prepare(request: ApiRequest, prompt: Prompt): Promise<Prepared> {
    const model = this.o.fleet.model;
    const blockSize = this.o.fleet.blockSize;
    if (model === null || blockSize === null) throw noEngine();
    const result = await this.o.pool.prepare(prompt, blockSize, this.#seed(model, request.cacheSalt));
    if (!result.ok) throw new ApiError(400, result.message, "invalid_request_error", result.param, result.code);
    const { metrics } = this.o;
    if (prompt.kind !== "tokens") metrics.overhead("tokenize", result.timings.tokenize);
    metrics.overhead("hash", result.timings.hash);
    metrics.overhead("index", result.timings.index);
    return result;
  }

  /** The output budget: what was asked for, or the rest of the context; refused when it does not fit. */
  #maxTokens(sampling: Sampling, promptTokens: number): number {
    const maxModelLen = this.o.fleet.maxModelLen;
    if (maxModelLen === null) throw noEngine();
    const asked = sampling.maxTokens;
    if (promptTokens >= maxModelLen || (asked !== null && promptTokens + asked > maxModelLen)) {
      const requested = asked === null ? "" : ` However, you requested ${promptTokens + asked} tokens (${promptTokens} in the prompt, ${asked} for the completion).`;
      throw new ApiError(
        400,
        `This model's maximum context length is ${maxModelLen} tokens.${requested || ` However, the prompt has ${promptTokens} tokens, leaving no room for the completion.`} Please reduce the length of the prompt or the completion.`,
        "invalid_request_error",
        asked === null || promptTokens >= maxModelLen ? "prompt" : "max_tokens",
        "context_length_exceeded",
      );
    }
    return asked ?? maxModelLen - promptTokens;
  }

  #seed(model: string, cacheSalt: string | undefined): bigint {
    const key = cacheSalt ?? "";
    let seed = this.#seeds.get(key);
    if (seed === undefined) {
      seed = rootSeed({ model, cacheSalt });
      // Salts are per tenant or per user: keep the table bounded.
      if (this.#seeds.size > 10_000) this.#seeds.clear();
      this.#seeds.set(key, seed);
    }
    return seed;
  }

  #engine(id: number): EngineHandle {
    return this.o.fleet.engines[id]!;
  }

  #blockSize(): number {
    return this.o.fleet.blockSize!;
  }
}

function samplingOptions(s: Sampling, maxTokens: number): SamplingOptions {
  const out: SamplingOptions = {
    maxTokens,
    temperature: s.temperature,
    topP: s.topP,
    topK: s.topK,
    ignoreEos: s.ignoreEos,
    minTokens: s.minTokens,
  };
  if (s.seed !== null) out.seed = s.seed;
  if (s.stop.length) out.stop = s.stop;
  if (s.stopTokenIds.length) out.stopTokenIds = s.stopTokenIds;
  return out;
}

/** Failures of the engine rather than of the request: worth one more try elsewhere. */
function isEngineFailure(code: string): boolean {
  return code === "engine_disconnected" || code === "engine_unavailable" || code === "engine_dead" || code === "engine_error";
}

function errorStatus(code: string): number {
  if (code === "invalid_request" || code === "prompt_too_long" || code === "unknown_lora" || code === "frame_too_large") return 400;
  if (code === "engine_unavailable") return 503;
  return 502;
}

function noEngine(): ApiError {
  return new ApiError(503, "no engine is available: none is connected and healthy", "service_unavailable_error", null, "no_engine_available");
}
