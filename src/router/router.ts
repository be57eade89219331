// The router behind the HTTP frontend: prepares a prompt (pool), asks the routing core for a plan (a
// decision, or with engine roles a prefill decision to split on) and a booking, and sends it (dispatch,
// with retry as a wrapper; split requests through dispatch/split.ts). On an aggregated fleet the requests
// first read in one event-loop turn are decided together (dispatch/decision-turn.ts). It holds no routing
// rule of its own: those are in the routing core (schedule/routing-core.ts), which `kvroute simulate`
// drives too.
import type { Logger } from "pino";
import { rootSeed } from "./prepare/hashing/index.js";
import type { RouterMetrics } from "./metrics/index.js";
import type { PreparePool, Prepared } from "./prepare/index.js";
import type { Attempt, Decision, RoutablePrompt, RoutingCore } from "./schedule/index.js";
import type { EngineHandle, Fleet } from "./dispatch/fleet.js";
import { DecisionTurn } from "./dispatch/decision-turn.js";
import { NO_ENGINE, withRetry } from "./dispatch/retry.js";
import { sendAttempt, type Job } from "./dispatch/send.js";
import { asLocal, splitRequest } from "./dispatch/split.js";
import { splitNoticeReporter } from "./split-notices.js";
import { noEngineError, RouterError, type Backend, type GenerateInput, type GenerationEvent, type HealthReport, type ModelCard, type ReplicationReport, type RouteEngineReport, type RouteReport } from "./types.js";
import type { AbortSignalLike } from "../util/abort.js";

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
  readonly #notice: ReturnType<typeof splitNoticeReporter>;
  readonly #turn: DecisionTurn;

  constructor(private readonly o: RouterParts) {
    this.#notice = splitNoticeReporter(o.metrics, o.log, (engine) => this.#handle(engine).name, () => o.fleet.blockSize!);
    this.#turn = new DecisionTurn(o.core, (seconds, requests) => {
      o.metrics.decidedTogether(requests);
      for (let i = 0; i < requests; i++) o.metrics.overhead("schedule", seconds / requests);
    });
  }

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
    const engines = this.o.fleet.engines.map((e) => ({ ...e.health(), ...(e.spec.role !== "both" ? { role: e.spec.role } : {}) }));
    const replication = this.o.replication?.();
    return { ready: this.o.fleet.ready, engines, ...(replication ? { replication } : {}) };
  }

  metrics(): Promise<{ contentType: string; body: string }> {
    return this.o.metrics.scrape();
  }

  async route(input: GenerateInput): Promise<RouteReport> {
    const { core } = this.o;
    const prepared = await this.#prepare(input, undefined);
    const prompt = { ...routable(prepared), ...(input.sampling.maxTokens !== null ? { outputTokens: input.sampling.maxTokens } : {}) };
    const plan = core.plan(prompt);
    if (!plan) throw noEngineError();
    const scored = (d: Decision): RouteEngineReport[] =>
      d.scored.map((s) => ({
        engine: this.#handle(s.engine).name,
        overlap_blocks: s.overlapBlocks,
        cost: s.cost,
        active_blocks: s.activeBlocks,
        peer_blocks: s.peer.prefillBlocks + s.peer.decodeBlocks,
        external_blocks: s.external.prefillBlocks + s.external.decodeBlocks,
        cache_turnover: s.turnover,
      }));
    const stage = (d: Decision) => ({ engine: this.#handle(d.engine).name, overlap_blocks: d.overlapBlocks, engines: scored(d) });
    const report = (answering: Decision, computing: Decision): RouteReport => ({
      engine: this.#handle(answering.engine).name,
      overlap_blocks: computing.overlapBlocks,
      block_size: this.o.fleet.blockSize!,
      prompt_tokens: prepared.tokens.length,
      engines: scored(answering),
    });
    if (plan.kind === "whole") {
      if (plan.why === "aggregated") return report(plan.decision, plan.decision);
      return { ...report(plan.decision, plan.decision), disaggregation: { plan: "local", why: plan.why, prefill: stage(plan.decision), decode: stage(plan.decision) } };
    }
    // The decode stage is decided when the prefill has finished; as the engines' loads are now, it would be:
    const decode = core.decide(prompt, undefined, "decode");
    if (!decode) throw noEngineError();
    return { ...report(decode, plan.prefill), disaggregation: { plan: "split", prefill: stage(plan.prefill), decode: stage(decode) } };
  }

  async generate(input: GenerateInput, signal: AbortSignalLike): Promise<AsyncIterable<GenerationEvent>> {
    const { core, fleet, metrics } = this.o;
    const prepared = await this.#prepare(input, signal);
    const maxModelLen = fleet.maxModelLen;
    if (maxModelLen === null) throw noEngineError();
    const maxTokens = core.budget(input.sampling.maxTokens, prepared.tokens.length, maxModelLen);
    const prompt = { ...routable(prepared), outputTokens: maxTokens };
    const timed = <T>(decide: () => T): T => {
      const t0 = performance.now();
      const result = decide();
      metrics.overhead("schedule", (performance.now() - t0) / 1000);
      return result;
    };
    const job: Job = { tokens: prepared.tokens, sampling: input.sampling, maxTokens, cacheSalt: input.cacheSalt };
    // Called as an attempt is sent (whole, prefill or decode): in approximate mode the engine is from then
    // on predicted to hold the prompt's blocks.
    const target = (engine: number) => {
      const handle = this.#handle(engine);
      if (handle.routing === "approx") this.o.approx.record(engine, prepared.hashes);
      return { name: handle.name, engine: handle.engine };
    };
    const send = (attempt: Attempt) => {
      metrics.predicted(attempt.overlapBlocks * fleet.blockSize!, prompt.promptTokens);
      return sendAttempt(core, attempt, target(attempt.engine), job, signal);
    };
    const whole = (first: () => Attempt | null | Promise<Attempt | null>) =>
      withRetry(core, first, prompt, send, signal, (failed, _next, failure) => {
        metrics.retried();
        this.o.log.warn({ engine: this.#handle(failed.engine).name, code: failure.code, reason: failure.message }, "engine failed before the first token; retrying on another engine");
      });
    // Decided when the stream is first read, with the others read in the same turn.
    if (!core.disaggregated) return whole(() => this.#turn.begin(prompt, signal));
    // Planned when the stream is first read, as withRetry decides: the plan sees the load of the requests before it.
    const notice = this.#notice;
    return (async function* (): AsyncGenerator<GenerationEvent> {
      const plan = timed(() => core.plan(prompt));
      if (!plan) {
        yield NO_ENGINE;
        return;
      }
      if (plan.kind === "split") {
        metrics.disaggregation("split");
        yield* splitRequest({ core, prompt, job, target, signal, whole: (decision) => whole(() => core.begin(decision, prompt)), notice }, plan.prefill);
        return;
      }
      metrics.disaggregation(plan.why === "short" ? "local_short" : "local_degraded");
      if (plan.why === "no_prefill_engine") notice({ kind: "prefill_unavailable", reason: "no prefill engine is available" });
      yield* asLocal(whole(() => core.begin(plan.decision, prompt)));
    })();
  }

  /** Tokenizing stops at the context length, and when `signal` says the client has left. */
  async #prepare(input: GenerateInput, signal: AbortSignalLike | undefined): Promise<Prepared> {
    const { model, blockSize, maxModelLen } = this.o.fleet;
    if (model === null || blockSize === null || maxModelLen === null) throw noEngineError();
    const result = await this.o.pool.prepare(input.prompt, blockSize, this.#seed(model, input.cacheSalt), { maxModelLen, signal });
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
