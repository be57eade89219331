// The router behind the HTTP frontend: prepares a prompt (pool), asks the routing core for a decision and
// a booking, and sends it (dispatch, with retry as a wrapper). It holds no routing rule of its own: those
// are in the routing core (schedule/routing-core.ts), which `kvroute simulate` drives too.
import type { Logger } from "pino";
import { rootSeed } from "./prepare/hashing/index.js";
import type { RouterMetrics } from "./metrics/index.js";
import type { PreparePool, Prepared } from "./prepare/index.js";
import type { Attempt, RoutablePrompt, RoutingCore } from "./schedule/index.js";
import type { EngineHandle, Fleet } from "./dispatch/fleet.js";
import { withRetry } from "./dispatch/retry.js";
import { sendAttempt, type Job } from "./dispatch/send.js";
import { noEngineError, RouterError, type Backend, type GenerateInput, type GenerationEvent, type HealthReport, type ModelCard, type ReplicationReport, type RouteReport } from "./types.js";

/** Where approximate mode's predictions go: a prompt with these block hashes was sent to this engine. */
export interface ApproxRecorder {
  record(engine: number, hashes: BigUint64Array): void;
}

export interface RouterParts {
  fleet: Fleet;
  /** Told of every attempt sent to an engine in approximate mode. */
  approx: ApproxRecorder;
  core: RoutingCore;
  pool: PreparePool;
  metrics: RouterMetrics;
  log: Logger;
  /** The name clients use for the model; defaults to the engines' model name. */
  servedModelName: string | null;
  /** With replicas: the link's state, for /health. */
  replication?: () => ReplicationReport;
}

/** Root seeds of prompts' first blocks, per cache salt; salts are per tenant or user, so the table is bounded. */
const MAX_SEEDS = 10_000;

export class Router implements Backend {
  readonly #created = Math.floor(Date.now() / 1000);
  readonly #seeds = new Map<string, bigint>();

  constructor(private readonly o: RouterParts) {}

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
    if (served === null) throw noEngineError();
    if (model !== served) {
      throw new RouterError("not_found", `The model \`${model}\` does not exist. This router serves \`${served}\`.`, "model", "model_not_found");
    }
  }

  health(): HealthReport {
    const engines = this.o.fleet.engines.map((e) => ({ engine: e.name, state: e.state, ...(e.reason ? { reason: e.reason } : {}), ...(e.routing ? { routing: e.routing } : {}) }));
    const replication = this.o.replication?.();
    return { ready: this.o.fleet.up.length > 0, engines, ...(replication ? { replication } : {}) };
  }

  metrics(): Promise<{ contentType: string; body: string }> {
    return this.o.metrics.scrape();
  }

  async route(input: GenerateInput): Promise<RouteReport> {
    const prepared = await this.#prepare(input);
    const decision = this.o.core.decide(routable(prepared));
    if (!decision) throw noEngineError();
    return {
      engine: this.#handle(decision.engine).name,
      overlap_blocks: decision.overlapBlocks,
      block_size: this.o.fleet.blockSize!,
      prompt_tokens: prepared.tokens.length,
      engines: decision.scored.map((s) => ({
        engine: this.#handle(s.engine).name,
        overlap_blocks: s.overlapBlocks,
        cost: s.cost,
        active_blocks: s.activeBlocks,
        peer_blocks: s.peer.prefillBlocks + s.peer.decodeBlocks,
        external_blocks: s.external.prefillBlocks + s.external.decodeBlocks,
      })),
    };
  }

  async generate(input: GenerateInput, signal: AbortSignal): Promise<AsyncIterable<GenerationEvent>> {
    const { core, fleet, metrics } = this.o;
    const prepared = await this.#prepare(input);
    const maxModelLen = fleet.maxModelLen;
    if (maxModelLen === null) throw noEngineError();
    const prompt = routable(prepared);
    const maxTokens = core.budget(input.sampling.maxTokens, prompt.promptTokens, maxModelLen);
    if (fleet.up.length === 0) throw noEngineError();
    const decide = () => {
      const t0 = performance.now();
      const decision = core.decide(prompt);
      metrics.overhead("schedule", (performance.now() - t0) / 1000);
      return decision;
    };
    const job: Job = { tokens: prepared.tokens, sampling: input.sampling, maxTokens, cacheSalt: input.cacheSalt };
    const send = (attempt: Attempt) => {
      metrics.predicted(attempt.overlapBlocks * fleet.blockSize!, prompt.promptTokens);
      const handle = this.#handle(attempt.engine);
      if (handle.routing === "approx") this.o.approx.record(attempt.engine, prepared.hashes);
      return sendAttempt(core, attempt, { name: handle.name, engine: handle.engine }, job, signal);
    };
    return withRetry(core, decide, prompt, send, signal, (failed, _next, failure) => {
      metrics.retried();
      this.o.log.warn({ engine: this.#handle(failed.engine).name, code: failure.code, reason: failure.message }, "engine failed before the first token; retrying on another engine");
    });
  }

  async #prepare(input: GenerateInput): Promise<Prepared> {
    const model = this.o.fleet.model;
    const blockSize = this.o.fleet.blockSize;
    if (model === null || blockSize === null) throw noEngineError();
    const result = await this.o.pool.prepare(input.prompt, blockSize, this.#seed(model, input.cacheSalt));
    if (!result.ok) throw new RouterError("invalid_request", result.message, result.param, result.code);
    const { metrics } = this.o;
    if (input.prompt.kind !== "tokens") metrics.overhead("tokenize", result.timings.tokenize);
    metrics.overhead("hash", result.timings.hash);
    metrics.overhead("index", result.timings.index);
    return result;
  }

  #seed(model: string, cacheSalt: string | undefined): bigint {
    const key = cacheSalt ?? "";
    let seed = this.#seeds.get(key);
    if (seed === undefined) {
      seed = rootSeed({ model, cacheSalt });
      if (this.#seeds.size >= MAX_SEEDS) this.#seeds.clear();
      this.#seeds.set(key, seed);
    }
    return seed;
  }

  #handle(id: number): EngineHandle {
    return this.o.fleet.engines[id]!;
  }
}

function routable(p: Prepared): RoutablePrompt {
  return { promptTokens: p.tokens.length, blocks: p.blocks, overlaps: p.overlaps };
}
