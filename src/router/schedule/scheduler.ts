import { ActiveLoad, type Booking, type EngineLoad } from "./active-load.js";
import { externalLoad, NO_EXTERNAL_LOAD, type EngineReport, type ExternalLoad, type PrefillCounters } from "./external-load.js";
import { CacheTurnover } from "./cache-turnover.js";
import { DEFAULT_EVICTION_WEIGHT, pickByCost, pickLeastLoaded, score, type PolicyName, type Scored } from "./policy.js";
import type { Stage } from "./roles.js";
import { TAKE_BACK_TOKENS, TakeBacks } from "./take-back.js";
import { DEFAULT_MAX_BATCHED_TOKENS, DEFAULT_PRIOR, EngineTimeModel, type TimeFeatures, type TimeModelOptions } from "./time-model.js";

/** First tokens an engine's own time model needs before its predictions are trusted over the fleet's. */
const WARM_UP = 16;

const NO_PEER_LOAD: EngineLoad = Object.freeze({ prefillBlocks: 0, prefillTokens: 0, decodeBlocks: 0, decodeRequests: 0, requests: 0 });

export interface SchedulerOptions {
  policy?: PolicyName;
  /** kv-blocks: the cost's weight on blocks to prefill (default 1). */
  overlapWeight?: number;
  /** kv: the cost's weight on what a request's new blocks evict (default DEFAULT_EVICTION_WEIGHT; 0: none). */
  evictionWeight?: number;
  /** kv: the blocks inserted over which each engine's cache turnover is counted (cache-turnover.ts). */
  turnoverHorizonBlocks?: number;
  temperature?: number;
  /**
   * kv: hold a request in the router while its engine computes prompts it would slow down (prefill-gate.ts;
   * default true). Other policies send at once.
   */
  prefillGate?: boolean;
  /** kv: decide prompts that arrive together as together.ts says (default true). Other policies take them in arrival order. */
  decideTogether?: boolean;
  /** kv: a short prompt goes before the long ones its engine is computing (take-back.ts; default true). */
  takeBack?: boolean;
  /** Every engine's time model starts from this (default: DEFAULT_PRIOR, C 8192, 256 sequences). */
  timeModel?: TimeModelOptions;
  /** Injected for reproducible simulations; Math.random otherwise. */
  random?: () => number;
}

/** A prompt as routing sees it: its length, its full blocks, and each engine's overlap with it. */
export interface RoutablePrompt {
  promptTokens: number;
  blocks: number;
  /** Leading blocks of the prompt each engine holds, indexed by engine. */
  overlaps: ArrayLike<number>;
  /** The output budget, when known: a decode stage weighs each engine's step time by it. */
  outputTokens?: number;
}

export interface Decision {
  engine: number;
  /** What the attempt asks of the engine. */
  stage: Stage;
  overlapBlocks: number;
  /** The chosen engine's scoring. */
  chosen: Scored;
  /** Every engine considered, with its cost, in engine order. */
  scored: Scored[];
}

/**
 * Picks an engine per prompt and keeps the books on what each engine is doing, and what each engine's
 * time model has learned of it. Engines are the small integers the prefix index uses; only available ones
 * are considered.
 */
export class Scheduler {
  readonly policy: PolicyName;
  readonly overlapWeight: number;
  readonly evictionWeight: number;
  readonly temperature: number;
  /** Whether requests go through the prefill gate (kv only). */
  readonly prefillGate: boolean;
  /** Whether prompts that arrive together are decided and sent in together.ts's orders (kv only). */
  readonly decideTogether: boolean;
  /** The long prompts short ones may take their engines back from (take-back.ts); null when off. */
  readonly takeBacks: TakeBacks | null;
  /** New blocks each engine took in lately, against the fleet's (cache-turnover.ts). */
  readonly turnover: CacheTurnover;
  readonly active = new ActiveLoad();
  /**
   * The latest fresh report of each engine that reports its own load, with the router's own requests on
   * the engine when it arrived (see external-load.ts).
   */
  readonly #reports = new Map<number, { report: EngineReport; ownRequests: number }>();
  /**
   * Load other router replicas have booked on each engine (shared through NATS; replicas/): a separate
   * input, beside the router's own bookings and the engines' external load, added into every decision.
   */
  readonly #peers = new Map<number, EngineLoad>();
  /** Available engines, ascending: kept sorted on change rather than on every decision. */
  #available: number[] = [];
  readonly #random: () => number;
  readonly #timeModel: TimeModelOptions;
  readonly #models = new Map<number, EngineTimeModel>();
  /** Each engine's last prefill counters, with its take-back figures then (take-back.ts). */
  readonly #prefillCounters = new Map<number, { counters: PrefillCounters; pauses: number; unsettled: number }>();
  /** Every engine's observations together. */
  readonly #pooled: EngineTimeModel;
  #nextRoundRobin = 0;

  constructor(options: SchedulerOptions = {}) {
    this.policy = options.policy ?? "kv";
    this.overlapWeight = options.overlapWeight ?? 1;
    this.evictionWeight = options.evictionWeight ?? DEFAULT_EVICTION_WEIGHT;
    this.turnover = new CacheTurnover(options.turnoverHorizonBlocks);
    this.temperature = options.temperature ?? 0;
    this.prefillGate = (options.prefillGate ?? true) && this.policy === "kv";
    this.decideTogether = (options.decideTogether ?? true) && this.policy === "kv";
    this.takeBacks = (options.takeBack ?? true) && this.policy === "kv" ? new TakeBacks() : null;
    this.#random = options.random ?? Math.random;
    this.#timeModel = options.timeModel ?? { prior: DEFAULT_PRIOR };
    this.#pooled = new EngineTimeModel(this.#timeModel);
    if (!(this.overlapWeight >= 0)) throw new RangeError(`overlap weight must be >= 0, got ${this.overlapWeight}`);
    if (!(this.evictionWeight >= 0 && Number.isFinite(this.evictionWeight))) throw new RangeError(`eviction weight must be a number >= 0, got ${this.evictionWeight}`);
    if (!(this.temperature >= 0)) throw new RangeError(`temperature must be >= 0, got ${this.temperature}`);
  }

  /** Tokens an engine computes per step, as the time models take it (vLLM's max_num_batched_tokens). */
  get maxBatchedTokens(): number {
    return this.#timeModel.maxBatchedTokens ?? DEFAULT_MAX_BATCHED_TOKENS;
  }

  /** The engines decisions consider, ascending. */
  get available(): readonly number[] {
    return this.#available;
  }

  setAvailable(engine: number, available: boolean): void {
    const others = this.#available.filter((e) => e !== engine);
    this.#available = available ? [...others, engine].sort((a, b) => a - b) : others;
  }

  /**
   * What an engine reports about its own queue, or null when there is no fresh report: the external load
   * it implies is added to the router's bookings in every decision until the next report.
   */
  setReport(engine: number, report: EngineReport | null): void {
    if (report === null) this.#reports.delete(engine);
    // Other replicas' requests are the engine's clients too, but already counted as peer load.
    else this.#reports.set(engine, { report, ownRequests: this.active.load(engine).requests + this.peerLoad(engine).requests });
    if (report?.prefill) this.#observePrefillCounters(engine, report.prefill);
  }

  /** The load other router replicas have booked on the engine, or null when there is none. */
  setPeerLoad(engine: number, load: EngineLoad | null): void {
    if (load === null) this.#peers.delete(engine);
    else this.#peers.set(engine, { ...load });
  }

  /** The load other replicas have booked on the engine (all zeros when none). */
  peerLoad(engine: number): EngineLoad {
    return this.#peers.get(engine) ?? NO_PEER_LOAD;
  }

  /**
   * Where an engine counts its prefills (vLLM's request_prefill_time histogram), the requests between two
   * reports are one more observation for its time model, every client's included: their mean prefill time,
   * with no queue (vLLM counts queueing apart), for their mean computed prompt.
   */
  #observePrefillCounters(engine: number, now: PrefillCounters): void {
    const last = this.#prefillCounters.get(engine);
    const pauses = this.takeBacks?.pausesOn(engine) ?? 0;
    const unsettled = this.takeBacks?.unsettledOn(engine) ?? 0;
    this.#prefillCounters.set(engine, { counters: now, pauses, unsettled });
    // A prompt taken back leaves its prompt tokens in the counters without a prefill time (an engine counts
    // an aborted request's prompt, not its prefill), and its next send's may fall in another interval than
    // its prefill time: an interval it overlaps says nothing of the engine's speed.
    if (!last || last.pauses !== pauses || last.unsettled > 0 || unsettled > 0) return;
    const before = last.counters;
    const requests = now.requests - before.requests;
    const computed = now.promptTokens - before.promptTokens - (now.cachedTokens - before.cachedTokens);
    const seconds = now.seconds - before.seconds;
    // Counters that went back (an engine restart) or moved too little say nothing.
    if (!(requests >= 1 && computed > 0 && seconds > 0)) return;
    // Other replicas' bookings are on the engine too, as in the features routing predicts from.
    const load = this.active.load(engine);
    const peer = this.peerLoad(engine);
    const features: TimeFeatures = {
      queuedTokens: 0,
      uncachedTokens: computed / requests,
      decoding: load.decodeRequests + peer.decodeRequests,
      decodeBlocks: load.decodeBlocks + peer.decodeBlocks,
      requests: load.requests + peer.requests,
    };
    this.observeTtft(engine, features, (1000 * seconds) / requests);
  }

  /** The engine's latest fresh report, or null. */
  report(engine: number): EngineReport | null {
    return this.#reports.get(engine)?.report ?? null;
  }

  /** The external load the engine's latest fresh report implies, for a prompt of `promptBlocks` blocks. */
  external(engine: number, promptBlocks: number): ExternalLoad {
    const reported = this.#reports.get(engine);
    return reported ? externalLoad(reported.report, reported.ownRequests, promptBlocks) : NO_EXTERNAL_LOAD;
  }

  /** The engine's own time model, made from the prior the first time it is asked for. */
  model(engine: number): EngineTimeModel {
    let model = this.#models.get(engine);
    if (!model) {
      model = new EngineTimeModel(this.#timeModel);
      this.#models.set(engine, model);
    }
    return model;
  }

  /**
   * The model the engine's predictions come from: its own once it has seen WARM_UP first tokens (a decode
   * engine's after a transfer included), the fleet's pooled model before. An engine predicted from a prior
   * that is far off might otherwise never be chosen, and so never learn; the fleet's figures are the better
   * guess for an engine not yet seen.
   */
  predictor(engine: number): EngineTimeModel {
    const own = this.model(engine);
    const seen = own.observations;
    return seen.ttft + seen.transfers >= WARM_UP ? own : this.#pooled;
  }

  /** A first token came `ttftMs` after a request with features `f` was sent to the engine. */
  observeTtft(engine: number, f: TimeFeatures, ttftMs: number): void {
    this.model(engine).observeTtft(f, ttftMs);
    this.#pooled.observeTtft(f, ttftMs);
  }

  /** A decode attempt's first token came `ttftMs` after it was sent, `blocks` KV blocks having been transferred to it. */
  observeTransfer(engine: number, f: TimeFeatures, blocks: number, ttftMs: number): void {
    this.model(engine).observeTransfer(f, blocks, ttftMs);
    this.#pooled.observeTransfer(f, blocks, ttftMs);
  }

  /** A token came `gapMs` after its previous one on the engine, with D sequences decoding over B blocks. */
  observeGap(engine: number, decoding: number, decodeBlocks: number, gapMs: number): void {
    this.model(engine).observeGap(decoding, decodeBlocks, gapMs);
    this.#pooled.observeGap(decoding, decodeBlocks, gapMs);
  }

  /** Every available engine (minus `exclude`) scored for the prompt's `stage`, in engine order; empty when none is available. */
  scoreEngines(prompt: RoutablePrompt, blockSize: number, exclude?: ReadonlySet<number>, stage: Stage = "whole"): Scored[] {
    const engines = exclude && exclude.size > 0 ? this.#available.filter((e) => !exclude.has(e)) : this.#available;
    if (engines.length === 0) return [];
    const turnover = this.turnover.relative(engines);
    const takeBacks = stage === "whole" ? this.takeBacks : null;
    return score(
      engines.map((engine, i) => {
        const overlapBlocks = Math.min(prompt.overlaps[engine] ?? 0, prompt.blocks);
        const load = this.active.snapshot(engine);
        // A short prompt would go before the long ones there (take-back.ts): they are not ahead of it, but
        // for the step under way, which an abort does not shorten (counted as one step's budget of them).
        if (takeBacks !== null && prompt.promptTokens - overlapBlocks * blockSize <= TAKE_BACK_TOKENS) {
          const withheld = takeBacks.withheld(engine, this.predictor(engine));
          if (withheld.requests > 0) {
            const step = Math.min(withheld.tokens, this.maxBatchedTokens);
            load.prefillTokens -= withheld.tokens - step;
            load.prefillBlocks -= withheld.blocks - Math.ceil(step / blockSize);
            load.requests -= withheld.requests - 1;
          }
        }
        return { engine, overlapBlocks, load, peer: this.peerLoad(engine), external: this.external(engine, prompt.blocks), turnover: turnover[i]! };
      }),
      {
        policy: this.policy,
        overlapWeight: this.overlapWeight,
        evictionWeight: this.evictionWeight,
        fleetMsPerToken: this.#pooled.prefillMsPerToken,
        promptTokens: prompt.promptTokens,
        promptBlocks: prompt.blocks,
        blockSize,
        model: (e) => this.predictor(e),
        stage,
        prefillGate: this.prefillGate,
        ...(prompt.outputTokens !== undefined ? { outputTokens: prompt.outputTokens } : {}),
      },
    );
  }

  /** Chooses an engine for a prompt's `stage`; null when no engine is available (minus `exclude`). */
  decide(prompt: RoutablePrompt, blockSize: number, exclude?: ReadonlySet<number>, stage: Stage = "whole"): Decision | null {
    const scored = this.scoreEngines(prompt, blockSize, exclude, stage);
    if (scored.length === 0) return null;
    const chosen = scored[this.#pick(scored)]!;
    return { engine: chosen.engine, stage, overlapBlocks: chosen.overlapBlocks, chosen, scored };
  }

  /**
   * Books a dispatched request on its engine; the booking must be released when the request ends. A decode
   * attempt receives its prompt's blocks rather than computing them: none are booked as prefill.
   */
  book(decision: Decision, prompt: RoutablePrompt, blockSize: number): Booking {
    const newBlocks = decision.stage === "decode" ? 0 : prompt.blocks - decision.overlapBlocks;
    // A decode engine's cache takes in the blocks it receives as a prefill engine's takes in those it computes.
    this.turnover.insert(decision.engine, decision.stage === "decode" ? decision.chosen.transferBlocks : newBlocks);
    return this.active.book(decision.engine, prompt.promptTokens, newBlocks, blockSize);
  }

  #pick(scored: Scored[]): number {
    switch (this.policy) {
      case "kv":
      case "kv-blocks":
        return pickByCost(scored, this.temperature, this.#random);
      case "least-loaded":
        return pickLeastLoaded(scored, this.#random);
      case "random":
        return Math.floor(this.#random() * scored.length);
      case "round-robin":
        return this.#nextRoundRobin++ % scored.length;
    }
  }
}
