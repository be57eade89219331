// The routing core: every rule a request's routing follows, shared by `kvroute serve` and `kvroute
// simulate`, with no sockets and no clock. It decides (prepared prompt → scored engines), sets the output
// budget, books the request against its engine's load and moves the booking along with what the engine
// reports, feeds the engine's time model with the TTFT and the gaps it observes, and applies the retry
// rule and the cached-tokens rule. Sending is not its business: the live dispatcher and the simulator each
// drive an Attempt with what their engines do, and tell it how long things took (the core reads no clock).
//
// With engine roles (roles.ts) a request is planned first: whole on one engine, or split into a prefill
// attempt on the prefill pool and, once that has finished, a decode attempt on the decode pool. A prompt
// whose uncached part is short is prefilled where it decodes (`disaggMinPrefillTokens`, as Dynamo's and
// llm-d's thresholds do), and so is every prompt while no prefill engine is available (degraded). Each
// attempt is decided, booked and retried within its stage's pool.
//
// With the kv policy, an attempt may be held in the router before it is sent (prefill-gate.ts): the time
// model judges whether sending it now would slow the prompts its engine is computing for this router by
// more than one step costs the held one.
//
// With the kv policy, a short prompt sent to an engine computing long prompts for this router takes the
// engine back from them (take-back.ts): they are paused (aborted there) and sent again once it has its first
// token. An attempt can be taken back only when its dispatcher says how (`admit`'s handler).
//
// Prompts that arrive together (at one instant in a simulation, in one event-loop turn live) are decided
// together on aggregated fleets (together.ts): the one with the most cache to lose first, that assignment
// improved as a whole, and sent to their engines shortest first.
//
// Invariant: every Attempt's booking is released exactly once, by finish(), fail() or release(),
// whichever comes first; later calls change nothing. An attempt held by the gate leaves it the same way,
// and so it leaves take-back.ts's books: it can no longer be taken back, and what it took back goes again
// (at its first token already).
import type { CachedTokensSource } from "../types.js";
import type { Booking } from "./active-load.js";
import { outputBudget } from "./budget.js";
import { cachedTokens, expectedSource, transferFailed, type CachedTokens, type CachedTokensFallback } from "./cached-tokens.js";
import { PrefillGate, type GateEntry } from "./prefill-gate.js";
import { shouldRetry, type Failure } from "./retry.js";
import { isDisaggregated, servesStage, type EngineRole, type Stage } from "./roles.js";
import { holds, type Scored } from "./policy.js";
import { TAKE_BACK_TOKENS, type TakeBackEntry, type TakeBackHandler } from "./take-back.js";
import type { Decision, RoutablePrompt, Scheduler } from "./scheduler.js";
import { decisionOrder, improveAssignment, MAX_IMPROVED_BURST, placeInOrder, sendOrder, type BurstCosts } from "./together.js";

export interface RoutingCoreOptions {
  scheduler: Scheduler;
  cachedTokensFallback: CachedTokensFallback;
  /** Tokens per block, for booking and for the cached-tokens estimate. */
  blockSize: () => number;
  /** Told of every first token: the time model's prediction for its engine, and what it took (ms). */
  onTtft?: (engine: number, predictedMs: number, observedMs: number) => void;
  /** Each engine's role, by engine number (absent: both). All `both`: aggregated serving. */
  roles?: readonly EngineRole[];
  /** Disaggregated: a prompt with fewer uncached tokens than this is prefilled on its decode engine (default 0). */
  disaggMinPrefillTokens?: number;
}

/** How a request is served: whole on one engine, or prefilled on one and decoded on another. */
export type Plan =
  | {
      kind: "whole";
      decision: Decision;
      /** Why not split: an aggregated fleet, a short uncached part, or no prefill engine available (degraded). */
      why: "aggregated" | "short" | "no_prefill_engine";
    }
  | { kind: "split"; prefill: Decision };

/** What a finished prefill attempt left for the answer. */
export interface PrefillOutcome {
  engine: number;
  /** The answer's cached tokens while the transfer holds: the prefill engine's count, else its overlap estimate. */
  cached: CachedTokens;
}

export type RetryOutcome =
  /** Try again on this attempt's engine, already booked. */
  | { kind: "retry"; attempt: Attempt }
  /** The failure is final: report it. */
  | { kind: "final" }
  /** The rule allowed a retry, but no other engine is available. */
  | { kind: "no_engine" };

export class RoutingCore {
  readonly scheduler: Scheduler;
  readonly cachedTokensFallback: CachedTokensFallback;
  readonly #blockSize: () => number;
  readonly #onTtft: ((engine: number, predictedMs: number, observedMs: number) => void) | undefined;
  /** Per engine: whether its last answer carried its own cached-token count. */
  readonly #reportedCachedTokens = new Map<number, boolean>();
  /** Whether requests are split into a prefill and a decode stage. */
  readonly disaggregated: boolean;
  readonly disaggMinPrefillTokens: number;
  /** Per stage, the engines outside its pool (empty for every stage when aggregated). */
  readonly #outOfPool: Record<Stage, ReadonlySet<number>>;
  /** The prefill gate; null when attempts are sent at once. */
  readonly gate: PrefillGate | null;

  constructor(options: RoutingCoreOptions) {
    this.scheduler = options.scheduler;
    this.cachedTokensFallback = options.cachedTokensFallback;
    this.#blockSize = options.blockSize;
    this.#onTtft = options.onTtft;
    const roles = options.roles ?? [];
    this.disaggregated = isDisaggregated(roles);
    this.disaggMinPrefillTokens = options.disaggMinPrefillTokens ?? 0;
    if (!(this.disaggMinPrefillTokens >= 0)) throw new RangeError(`disaggMinPrefillTokens must be >= 0, got ${this.disaggMinPrefillTokens}`);
    const outside = (stage: Stage) => new Set(roles.flatMap((role, engine) => (servesStage(role, stage) ? [] : [engine])));
    this.#outOfPool = { whole: outside("whole"), prefill: outside("prefill"), decode: outside("decode") };
    this.gate = this.scheduler.prefillGate ? new PrefillGate(this.scheduler.maxBatchedTokens) : null;
  }

  /** The output budget; throws a RouterError (context_length_exceeded) when the request cannot fit. */
  budget(asked: number | null, promptTokens: number, maxModelLen: number): number {
    return outputBudget(asked, promptTokens, maxModelLen);
  }

  /** Scores the available engines of the stage's pool (minus `exclude`) and picks one; null when none is available. */
  decide(prompt: RoutablePrompt, exclude?: ReadonlySet<number>, stage: Stage = "whole"): Decision | null {
    const out = this.#outOfPool[stage];
    const skip = out.size === 0 ? exclude : exclude && exclude.size > 0 ? new Set([...exclude, ...out]) : out;
    return this.scheduler.decide(prompt, this.#blockSize(), skip, stage);
  }

  /**
   * How to serve a prompt: whole on the engine `decide` picks (aggregated), or, disaggregated, whole on a
   * decode engine when its uncached part is short or no prefill engine is available, else split, with the
   * prefill attempt decided. Null when no engine can take it.
   */
  plan(prompt: RoutablePrompt): Plan | null {
    const local = this.decide(prompt, undefined, "whole");
    if (!local) return null;
    if (!this.disaggregated) return { kind: "whole", decision: local, why: "aggregated" };
    if (prompt.promptTokens - local.overlapBlocks * this.#blockSize() < this.disaggMinPrefillTokens) return { kind: "whole", decision: local, why: "short" };
    const prefill = this.decide(prompt, undefined, "prefill");
    return prefill ? { kind: "split", prefill } : { kind: "whole", decision: local, why: "no_prefill_engine" };
  }

  /**
   * Decides and books prompts that arrived together, on an aggregated fleet: their first attempts, in the
   * prompts' order (null where no engine is available). When `scheduler.decideTogether`, as together.ts
   * says; else each is decided and booked in arrival order. Send them in `sendOrder`'s.
   */
  beginTogether(prompts: readonly RoutablePrompt[]): (Attempt | null)[] {
    if (this.disaggregated) throw new Error("beginTogether is for aggregated fleets: with engine roles, plan each request");
    const scheduler = this.scheduler;
    const together = scheduler.decideTogether && prompts.length > 1;
    const order = together ? decisionOrder(prompts, scheduler.available) : prompts.map((_, i) => i);
    // Sampling (temperature above 0) is a choice per prompt: the greedy decisions are kept.
    if (together && prompts.length <= MAX_IMPROVED_BURST && scheduler.temperature === 0) return this.#assignTogether(prompts, order);
    const attempts: (Attempt | null)[] = prompts.map(() => null);
    for (const i of order) {
      const decision = this.decide(prompts[i]!);
      if (decision) attempts[i] = this.begin(decision, prompts[i]!);
    }
    return attempts;
  }

  /**
   * together.ts: the prompts placed one by one in decision order, that assignment improved as a whole, then
   * booked in the order they will be sent, each decided on its engine alone, so that its booking and its
   * prediction count the burst's prompts sent before it there.
   */
  #assignTogether(prompts: readonly RoutablePrompt[], order: readonly number[]): (Attempt | null)[] {
    const scheduler = this.scheduler;
    const blockSize = this.#blockSize();
    const engines = scheduler.available;
    // Each prompt is scored when it is placed, against the engines' loads before the burst (the burst's
    // own prompts are counted by the costs below instead) and the cache turnover with the blocks of those
    // placed before it: what its new blocks evict weighs as it would on a decision made after theirs. Those
    // insertions are tentative and undone before the prompts are booked.
    const scored: Scored[][] = [];
    const scoredOf = (i: number) => (scored[i] ??= scheduler.scoreEngines(prompts[i]!, blockSize));
    const costs: BurstCosts = {
      engines: engines.length,
      tokens: (i, slot) => scoredOf(i)[slot]!.features.uncachedTokens,
      cost: (i, slot, aheadTokens) => {
        const s = scoredOf(i)[slot]!;
        if (aheadTokens === 0) return s.cost;
        // Behind others of the burst, a prompt waits for their compute and loses a step besides: the prefill
        // gate holds it until they have their first token, or, let through, its head lengthens their step.
        const model = scheduler.predictor(s.engine);
        const f = s.features;
        return s.cost - s.predictedTtftMs + model.ttft({ ...f, queuedTokens: f.queuedTokens + aheadTokens }) + model.stepTime(f.decoding, f.decodeBlocks);
      },
    };
    const turnover = scheduler.turnover.save();
    const start = placeInOrder(costs, prompts.length, order, (i, slot) => scheduler.turnover.insert(engines[slot]!, prompts[i]!.blocks - scoredOf(i)[slot]!.overlapBlocks));
    scheduler.turnover.restore(turnover);
    const slots = improveAssignment(costs, start, order);
    const sending = prompts.map((_, i) => i).filter((i) => slots[i]! >= 0);
    sending.sort((a, b) => costs.tokens(a, slots[a]!) - costs.tokens(b, slots[b]!) || a - b);
    const attempts: (Attempt | null)[] = prompts.map(() => null);
    for (const i of sending) {
      const engine = engines[slots[i]!]!;
      const decision = this.decide(prompts[i]!, new Set(engines.filter((e) => e !== engine)));
      if (decision) attempts[i] = this.begin(decision, prompts[i]!);
    }
    return attempts;
  }

  /** Indices of attempts begun together, in the order to send them. */
  sendOrder(attempts: readonly (Attempt | null)[]): number[] {
    return this.scheduler.decideTogether && attempts.length > 1 ? sendOrder(attempts) : attempts.map((_, i) => i);
  }

  /** Books a decided request on its engine: the first attempt. */
  begin(decision: Decision, prompt: RoutablePrompt): Attempt {
    return new Attempt(this, decision, prompt, 0, new Set([decision.engine]));
  }

  /** Applies the retry rule to a failed attempt (whose booking it releases) and books the next one, if any. */
  retry(failed: Attempt, failure: Failure, aborted: boolean): RetryOutcome {
    failed.release();
    if (!shouldRetry(failure, failed.number, aborted)) return { kind: "final" };
    const decision = this.decide(failed.prompt, failed.tried, failed.decision.stage);
    if (!decision) return { kind: "no_engine" };
    return { kind: "retry", attempt: new Attempt(this, decision, failed.prompt, failed.number + 1, new Set([...failed.tried, decision.engine])) };
  }

  /**
   * @internal Called by Attempt. An attempt that was taken back waited for another prompt the prediction
   * did not count: its TTFT says nothing of the engine's speed.
   */
  firstToken(decision: Decision, ttftMs: number, takenBack: boolean): void {
    if (takenBack) return;
    const { features, transferBlocks } = decision.chosen;
    // A decode attempt's first token waited for its transfer: that calibrates the transfer, not the prefill.
    if (decision.stage === "decode") this.scheduler.observeTransfer(decision.engine, features, transferBlocks, ttftMs);
    else this.scheduler.observeTtft(decision.engine, features, ttftMs);
    this.#onTtft?.(decision.engine, decision.chosen.predictedTtftMs, ttftMs);
  }

  /**
   * @internal Called by Attempt. Whether the gate should hold the attempt (policy.ts, `holds`) behind
   * `inFlight` prompts: as booked at its decision, or, at a release, the `aheadTokens` released before it.
   */
  shouldHold(decision: Decision, inFlight: number, aheadTokens?: number): boolean {
    const f = decision.chosen.features;
    return holds(this.scheduler.predictor(decision.engine), aheadTokens === undefined ? f : { ...f, queuedTokens: aheadTokens }, inFlight);
  }

  /** @internal Called by Attempt. */
  book(decision: Decision, prompt: RoutablePrompt): Booking {
    return this.scheduler.book(decision, prompt, this.#blockSize());
  }

  /**
   * @internal Called by Attempt. An attempt that was taken back is settled as if the engine gave no count:
   * the engine's count includes the blocks its own first sends computed, which no earlier request left there.
   */
  settleCachedTokens(engine: number, engineCount: number | null, overlapBlocks: number, promptTokens: number, takenBack: boolean): CachedTokens {
    this.#reportedCachedTokens.set(engine, engineCount !== null);
    return cachedTokens(takenBack ? null : engineCount, overlapBlocks, this.#blockSize(), promptTokens, this.cachedTokensFallback);
  }

  /**
   * The answer's cached tokens for a split request whose decode attempt finished with `decodeCount`: the
   * prefill's, unless the decode engine's count shows its transfer failed; then the decode engine's own
   * (its count, else its overlap estimate). `failed` says which.
   */
  settleSplit(prefill: PrefillOutcome, decode: Attempt, decodeCount: number | null, promptTokens: number): CachedTokens & { failed: boolean } {
    if (!transferFailed(decodeCount, promptTokens)) return { ...prefill.cached, failed: false };
    return { ...cachedTokens(decodeCount, decode.overlapBlocks, this.#blockSize(), promptTokens, this.cachedTokensFallback), failed: true };
  }

  /** The source an answer from `engine` will most likely report, before it has answered. */
  expectedSource(engine: number): CachedTokensSource {
    return expectedSource(this.#reportedCachedTokens.get(engine) ?? null, this.cachedTokensFallback);
  }
}

/** One try of a request on one engine: its booking, moved along by what the engine reports. */
export class Attempt {
  readonly #core: RoutingCore;
  readonly #booking: Booking;
  /** While it is held or in flight at the gate. */
  #gateEntry: GateEntry | null = null;
  /** A long prompt, sent with a take-back handler, until its first token or its end. */
  #takeBackEntry: TakeBackEntry | null = null;
  /** A short prompt that took its engine back, until its first token or its end. */
  #holding = false;
  /** Whether it was ever taken back. */
  #takenBack = false;

  constructor(
    core: RoutingCore,
    readonly decision: Decision,
    readonly prompt: RoutablePrompt,
    /** 0 for the first attempt. */
    readonly number: number,
    /** Engines tried so far, this one included. */
    readonly tried: ReadonlySet<number>,
  ) {
    this.#core = core;
    this.#booking = core.book(decision, prompt);
  }

  get engine(): number {
    return this.decision.engine;
  }

  get overlapBlocks(): number {
    return this.decision.overlapBlocks;
  }

  /**
   * Whether the attempt may be sent now: true, or false when the prefill gate holds it, and `send` is then
   * called once it may go (never, if the attempt is released first). Decode attempts compute no prompt and
   * are never held. Time its TTFT from before this call, as the decision's prediction counts the wait.
   * With `takeBack`, a long prompt may be taken back once sent: the handler pauses and resumes it.
   */
  admit(send: () => void, takeBack?: TakeBackHandler): boolean {
    const gate = this.#core.gate;
    // A prompt that takes its engine back goes at once: held, it would wait for the very prompts it goes before.
    if (gate === null || this.decision.stage === "decode" || this.#takesBack()) {
      this.#sent(takeBack);
      return true;
    }
    const core = this.#core;
    const decision = this.decision;
    const entry: GateEntry = {
      tokens: decision.chosen.features.uncachedTokens,
      send: () => {
        this.#sent(takeBack);
        send();
      },
      joins: (aheadTokens, ahead) => !core.shouldHold(decision, ahead, aheadTokens),
    };
    this.#gateEntry = entry;
    const inFlight = gate.inFlight(this.engine);
    const now = gate.enter(this.engine, entry, inFlight > 0 && this.#core.shouldHold(this.decision, inFlight));
    if (now) this.#sent(takeBack);
    return now;
  }

  /** Whether a short prompt may take its engine back from this one once it is sent (with a handler). */
  get mayBeTakenBack(): boolean {
    return this.#takeBackRole() === "long";
  }

  /** Whether it was taken back at least once: its engine's cached-token count is then not used. */
  get takenBack(): boolean {
    return this.#takenBack;
  }

  /** With take-back on, a whole request is a short prompt (it may take its engine back) or a long one. */
  #takeBackRole(): "short" | "long" | null {
    if (this.#core.scheduler.takeBacks === null || this.decision.stage !== "whole") return null;
    return this.#booking.prefillTokens <= TAKE_BACK_TOKENS ? "short" : "long";
  }

  /** Whether sent now it would take its engine back from long prompts. */
  #takesBack(): boolean {
    if (this.#takeBackRole() !== "short") return false;
    return this.#core.scheduler.takeBacks!.withheld(this.engine, this.#core.scheduler.predictor(this.engine)).requests > 0;
  }

  /** It goes to its engine now: a short prompt takes the engine back from long ones, a long one may be taken back. */
  #sent(handler: TakeBackHandler | undefined): void {
    const role = this.#takeBackRole();
    if (role === null) return;
    const takeBacks = this.#core.scheduler.takeBacks!;
    const booking = this.#booking;
    if (role === "short") {
      this.#holding = true;
      takeBacks.takeBack(this.engine, this, this.#core.scheduler.predictor(this.engine));
    } else if (handler !== undefined) {
      const pause = () => {
        this.#takenBack = true;
        handler.pause();
      };
      const tokens = booking.prefillTokens;
      this.#takeBackEntry = { engine: this.engine, tokens, blocks: booking.prefillBlocks, left: tokens, handler: { ...handler, pause }, held: 0, holders: null };
      takeBacks.add(this.#takeBackEntry);
    }
  }

  /**
   * Its prompt is computed, or it ended: it can no longer be taken back, and what it took back goes again.
   * In that order, and the gate left between the two: an attempt the gate releases must not take this one
   * back, and may join the holders of those this one let go.
   */
  #leave(): void {
    const takeBacks = this.#core.scheduler.takeBacks;
    if (this.#takeBackEntry !== null) {
      takeBacks!.remove(this.#takeBackEntry);
      this.#takeBackEntry = null;
    }
    this.#leaveGate();
    if (this.#holding) {
      this.#holding = false;
      takeBacks!.letGo(this);
    }
  }

  /** The first output token arrived, `ttftMs` after the request was sent: the prompt is computed. */
  firstToken(ttftMs: number): void {
    this.#booking.started();
    this.#core.firstToken(this.decision, ttftMs, this.#takenBack);
    this.#leave();
  }

  /**
   * `count` more output tokens arrived, `gapMs` after the previous ones (null when the engine sent them
   * with the first token, or when the gap is not known).
   */
  generated(count: number, gapMs: number | null): void {
    if (gapMs !== null && count > 0) {
      // The step decodes every client's sequences: other replicas' and the engine's external load count
      // with the bookings, as they do in the features the model predicts from.
      const scheduler = this.#core.scheduler;
      const load = scheduler.active.load(this.engine);
      const peer = scheduler.peerLoad(this.engine);
      const external = scheduler.external(this.engine, this.prompt.blocks);
      scheduler.observeGap(this.engine, load.decodeRequests + peer.decodeRequests + external.running, load.decodeBlocks + peer.decodeBlocks + external.decodeBlocks, gapMs / count);
    }
    this.#booking.generated(count);
  }

  /** The engine finished: the booking is released and the answer's cached tokens settled. */
  finish(engineCachedTokens: number | null, promptTokens: number): CachedTokens {
    this.#booking.release();
    this.#leave();
    return this.#core.settleCachedTokens(this.engine, engineCachedTokens, this.overlapBlocks, promptTokens, this.#takenBack);
  }

  /** The request ended another way (failed, aborted, abandoned). Safe to call more than once. */
  release(): void {
    this.#booking.release();
    this.#leave();
  }

  /** Out of the gate: dropped if held, else no longer in flight, which may release the ones held behind it. */
  #leaveGate(): void {
    const entry = this.#gateEntry;
    if (entry === null) return;
    this.#gateEntry = null;
    const gate = this.#core.gate!;
    if (!gate.withdraw(this.engine, entry)) gate.settle(this.engine, entry);
  }
}
