// One routing policy over a trace, on virtual time: the router's own routing core, prefix index and
// KV-event applier in front of a fleet of simulated engines, without sockets.
//
// Requests arrive at their trace timestamps (divided by the speed-up). Each is made into tokens, hashed
// with the engines' block size and looked up in the index; the routing core sets its output budget,
// decides its engine and books it, all at its arrival instant. Requests with the same arrival instant are
// decided together (routing-core.ts, beginTogether), as `serve` decides those that reach it in one
// event-loop turn. The engine's outputs move the booking
// through the same Attempt calls the live dispatcher makes. An idle engine starts a step at once; a step's outputs and its KV
// events reach the router when it ends (the events after a further delay, when one is set), and the engine
// goes straight on to its next step while it has work. At equal times, steps end before requests arrive.
//
// Disaggregated runs (prefill and decode engines): the routing core plans each request, as `serve`'s does. A
// split request is added to its prefill engine with max_tokens 1 and {do_remote_decode: true}; when that
// finishes, the decode engine is decided and the request added to it with the returned kv_transfer_params.
// The decode engine's pull starts with the step that schedules it and takes the modelled transfer time
// (the blocks it lacks × block bytes / link bandwidth); then the prefill engine frees the held blocks and
// the decode engine stores them and computes the last prompt token. TTFT is from arrival to the decode
// engine's first token; the answer's cached tokens follow the disaggregated rule. Nothing fails here, so
// no request retries or degrades but for want of prefill engines.
// With kvEvents "none" the engines' KV events are dropped, as from engines that publish none: the index is
// fed by approximate mode instead (ApproxCache, as the router's KV-event thread runs it), each attempt's
// prompt recorded for its engine as it is sent (prefill and decode stages alike, as the router does), with
// the TTL on the virtual clock.
import { ApproxCache } from "../../router/kv-index/approx/index.js";
import { createBlockHasher, rootSeed } from "../../router/prepare/hashing/index.js";
import { KvEventApplier } from "../../router/kv-index/kv-events/index.js";
import { PrefixIndex } from "../../router/kv-index/prefix-index/index.js";
import { ReplayStats, type ReplaySummary, type RequestResult } from "../replay/index.js";
import { DEFAULT_PRIOR, RoutingCore, Scheduler, type Attempt, type EngineRole, type PolicyName, type PrefillOutcome, type RoutablePrompt, type TakeBackHandler } from "../../router/schedule/index.js";
import { RouterError } from "../../router/types.js";
import { atSpeed, type CoreFinish, type CoreOutput, type CoreRequest, type KvPull, Rng, type SimKvEvent, SimRequestError, transferMs } from "../../mock-engine/index.js";
import { createPromptSynthesizer, type TraceRecord, type TraceSource } from "../trace/index.js";
import type { SharedCacheBound } from "./bound.js";
import { SIM_MODEL, type EngineSettings } from "./engine-settings.js";
import { EventQueue } from "./event-queue.js";
import { toKvEvents } from "./kv-adapter.js";
import { SimEngine } from "./sim-engine.js";
import { TtftCalibration, type TtftCalibrationFigures } from "./ttft-calibration.js";

export interface SimulationOptions {
  policy: PolicyName;
  /** Number of engines (with prefill and decode engines: their sum). */
  engines: number;
  /**
   * Disaggregated serving: the first `prefillEngines` engines prefill and the other `engines -
   * prefillEngines` decode (default 0: every engine serves whole requests).
   */
  prefillEngines?: number;
  /** Disaggregated: prompts whose uncached part on their decode engine is shorter are prefilled there (default 0). */
  disaggMinPrefillTokens?: number;
  engine: EngineSettings;
  /**
   * Each engine's speed relative to `engine`'s timing (default 1 for all): an engine at 0.5 takes twice as
   * long for every step. The router is not told; its time models find out.
   */
  engineSpeeds?: readonly number[];
  /** The kv-blocks policy's cost weight on blocks to prefill (default 1). */
  overlapWeight?: number;
  /** The kv policy's weight on what new blocks evict (default: the router's, DEFAULT_EVICTION_WEIGHT). */
  evictionWeight?: number;
  /** The kv policy's softmax temperature (default 0: cheapest engine). */
  temperature?: number;
  /** The kv policy's prefill gate (prefill-gate.ts; default true). */
  prefillGate?: boolean;
  /** The kv policy's taking back engines from long prompts (take-back.ts; default true). */
  takeBack?: boolean;
  /** The kv policy decides requests that arrive at one instant together (together.ts; default true). */
  decideTogether?: boolean;
  /** Seeds the scheduler's random choices and the engines' outputs (default 0). */
  seed?: number;
  /** KV events reach the index this long after the step that produced them ends (default 0). */
  kvEventDelayMs?: number;
  /**
   * "events" (default): the index follows the engines' KV events. "none": the engines publish none, and the
   * index holds approximate mode's predictions from the routing decisions.
   */
  kvEvents?: KvEventsMode;
  /** Approximate mode: how long a prediction is believed (default 120,000 ms of virtual time). */
  approxTtlMs?: number;
  /** Trace time runs this many times faster: arrivals at timestamp / speedup (default 1). */
  speedup?: number;
  /** Simulate only the first N requests. */
  maxRequests?: number;
  /** Prompt synthesis: token ids below vocabSize, another seed for other tokens (defaults as in replay). */
  vocabSize?: number;
  promptSeed?: number;
  /** Every routed prompt is also added to these bounds (its hashes are at hand here). */
  bounds?: SharedCacheBound[];
  onResult?: (result: RequestResult) => void;
  /** Called every 256 requests with the requests sent and the virtual time. */
  onProgress?: (sent: number, virtualMs: number) => void;
}

export type KvEventsMode = "events" | "none";
export const KV_EVENTS_MODES: readonly KvEventsMode[] = ["events", "none"];
export const DEFAULT_APPROX_TTL_MS = 120_000;

export interface EngineFigures {
  engine: string;
  role: EngineRole;
  requests: number;
  prefillTokens: number;
  busyMs: number;
}

export interface PolicyRun {
  policy: PolicyName;
  mode: "aggregated" | "disaggregated";
  /** How the requests were served: split, or whole (in an aggregated fleet, every one). */
  paths: { split: number; whole: number; local_short: number; local_degraded: number };
  /** The replay summary of the run, on virtual time. */
  summary: ReplaySummary;
  engines: EngineFigures[];
  /** Virtual time from the start of the trace to the last response. */
  virtualMs: number;
  wallMs: number;
  /** Index entries evicted for lack of room (0 when the index is sized right). */
  indexEvictions: number;
  /** KV events the applier could not place (0 when the simulation is consistent). */
  unknownParents: number;
  unknownBlocks: number;
  /** Approximate mode's figures (null when the index followed KV events). */
  approx: { predictions: number; expired: number; evicted: number } | null;
  /** The time model's predicted TTFTs against the observed ones. */
  ttftPrediction: TtftCalibrationFigures;
}

interface InFlight {
  record: TraceRecord;
  index: number;
  arrivalMs: number;
  maxTokens: number;
  prompt: RoutablePrompt;
  tokens: Uint32Array;
  /** Approximate mode: the prompt's block hashes, recorded for each engine an attempt is sent to. */
  hashes: BigUint64Array | null;
  /** The stage under way: the whole request, or a split request's prefill or decode. */
  stage: "whole" | "prefill" | "decode";
  engine: SimEngine;
  attempt: Attempt;
  /** When the current attempt was decided: its TTFT counts from here, any time the prefill gate held it included. */
  sentMs: number;
  /** A split request whose prefill finished: that outcome, and its engine. */
  prefill: PrefillOutcome | null;
  firstMs: number;
  lastMs: number;
  gaps: number;
  gapSumMs: number;
  gapMaxMs: number;
}

type SimEvent =
  | { kind: "step"; engine: SimEngine }
  | { kind: "kv"; engine: SimEngine; events: SimKvEvent[] }
  /** A decode engine's pull has moved its blocks. */
  | { kind: "pulled"; engine: SimEngine; pull: KvPull };

const PROGRESS_EVERY = 256;

export async function simulatePolicy(trace: TraceSource, o: SimulationOptions): Promise<PolicyRun> {
  const wallStart = performance.now();
  const startedAt = new Date().toISOString();
  const settings = o.engine;
  const blockSize = settings.blockSize;
  const speedup = o.speedup ?? 1;
  const delayMs = o.kvEventDelayMs ?? 0;
  const seed = o.seed ?? 0;
  const kvEvents = o.kvEvents ?? "events";
  const approxTtlMs = o.approxTtlMs ?? DEFAULT_APPROX_TTL_MS;
  if (!KV_EVENTS_MODES.includes(kvEvents)) throw new RangeError(`kvEvents must be one of ${KV_EVENTS_MODES.join(", ")}, got ${JSON.stringify(kvEvents)}`);
  if (!(speedup > 0 && Number.isFinite(speedup))) throw new RangeError(`speedup must be a number above 0, got ${speedup}`);
  if (!(delayMs >= 0 && Number.isFinite(delayMs))) throw new RangeError(`kvEventDelayMs must be a number of at least 0, got ${delayMs}`);
  if (!Number.isSafeInteger(o.engines) || o.engines < 1 || o.engines > 4096) throw new RangeError(`engines must be an integer from 1 to 4096, got ${o.engines}`);
  const prefillEngines = o.prefillEngines ?? 0;
  if (!Number.isSafeInteger(prefillEngines) || prefillEngines < 0 || (prefillEngines > 0 && prefillEngines >= o.engines)) {
    throw new RangeError(`prefillEngines must be 0, or at least 1 and fewer than the ${o.engines} engines (the rest decode), got ${prefillEngines}`);
  }
  const roles: EngineRole[] = Array.from({ length: o.engines }, (_, id) => (prefillEngines === 0 ? "both" : id < prefillEngines ? "prefill" : "decode"));
  for (const b of o.bounds ?? []) {
    if (b.blockSize !== blockSize) throw new RangeError(`a bound counts ${b.blockSize}-token blocks, the engines ${blockSize}-token ones`);
  }

  const hasher = await createBlockHasher();
  const root = rootSeed({ model: SIM_MODEL });
  // Engines cache at most numBlocks blocks each, so this many entries never evict.
  const index = PrefixIndex.create({ capacity: Math.ceil(o.engines * settings.numBlocks * 1.25), maxEngines: o.engines });
  const applier = new KvEventApplier(index, hasher);
  const approx = kvEvents === "none" ? new ApproxCache(index, { ttlMs: approxTtlMs }) : null;
  const rng = new Rng(seed);
  const scheduler = new Scheduler({
    policy: o.policy,
    overlapWeight: o.overlapWeight ?? 1,
    ...(o.evictionWeight !== undefined ? { evictionWeight: o.evictionWeight } : {}),
    temperature: o.temperature ?? 0,
    prefillGate: o.prefillGate ?? true,
    decideTogether: o.decideTogether ?? true,
    takeBack: o.takeBack ?? true,
    // The router knows the engines' batch limits (they are configuration) but not their speed: every
    // engine's time model starts from the default prior and learns the rest from its requests.
    timeModel: { prior: DEFAULT_PRIOR, maxBatchedTokens: settings.maxNumBatchedTokens, maxNumSeqs: settings.maxNumSeqs },
    random: () => rng.nextFloat(),
  });
  // The engines always count cached tokens, so the fallback never applies; "router" is serve's default.
  const calibration = new TtftCalibration();
  const core = new RoutingCore({
    scheduler,
    cachedTokensFallback: "router",
    blockSize: () => blockSize,
    roles,
    disaggMinPrefillTokens: o.disaggMinPrefillTokens ?? 0,
    onTtft: (_engine, predictedMs, observedMs) => calibration.observe(predictedMs, observedMs),
  });
  // One seed for every engine: a request's output then depends on its prompt alone, whichever engine serves it.
  const speeds = o.engineSpeeds ?? [];
  if (speeds.length !== 0 && speeds.length !== o.engines) throw new RangeError(`engineSpeeds gives ${speeds.length} speeds for ${o.engines} engines`);
  const engines = Array.from(
    { length: o.engines },
    (_, id) => new SimEngine(id, engineName(id, roles, prefillEngines), roles[id]!, { ...settings, timing: atSpeed(settings.timing, speeds[id] ?? 1) }, seed, hasher),
  );
  const byName = new Map(engines.map((e) => [e.name, e]));
  const paths = { split: 0, whole: 0, local_short: 0, local_degraded: 0 };
  for (const engine of engines) {
    if (approx !== null) approx.addEngine(engine.id, settings.numBlocks);
    else applier.addEngine(engine.id, { model: SIM_MODEL, blockSize });
    scheduler.setAvailable(engine.id, true);
  }
  const synthesize = createPromptSynthesizer({
    blockSize: trace.blockSize ?? 512,
    ...(o.vocabSize !== undefined ? { vocabSize: o.vocabSize } : {}),
    ...(o.promptSeed !== undefined ? { seed: o.promptSeed } : {}),
  });
  const stats = new ReplayStats();
  const queue = new EventQueue<SimEvent>();
  const inflight = new Map<number, InFlight>();
  const hashes = new BigUint64Array(Math.ceil(settings.maxModelLen / blockSize));
  const overlaps = new Uint32Array(o.engines);
  let now = 0;
  let sent = 0;
  /** The last response (or refusal): the end of the run, also when delayed KV events come later. */
  let endMs = 0;

  const startStep = (engine: SimEngine): void => {
    const step = engine.startStep();
    if (step === null) return;
    queue.push(now + step.durationMs, { kind: "step", engine });
    for (const pull of step.pulls) {
      queue.push(now + transferMs(pull.blocks, blockSize, settings.kvBytesPerToken, settings.kvTransferGbps), { kind: "pulled", engine, pull });
    }
  };

  /** A pull has moved its blocks: the prefill engine frees them, the decode engine goes on with its request. */
  const pulled = (engine: SimEngine, pull: KvPull): void => {
    const from = byName.get(pull.from.engineId);
    const ok = from !== undefined && from.core.releaseHeld(Number(pull.from.requestId));
    if (!ok) throw new Error(`engine ${engine.name} pulled blocks ${pull.from.engineId} does not hold (request ${pull.from.requestId})`);
    // The freed blocks may let the prefill engine admit a request it had to leave waiting.
    if (!from.stepping) startStep(from);
    engine.core.finishReceive(pull.id, true);
    if (!engine.stepping) startStep(engine);
  };

  /** Adds a request's attempt to its engine; false (the attempt released) when the engine refuses it. */
  const send = (f: InFlight, request: CoreRequest): boolean => {
    try {
      f.engine.core.add(request);
    } catch (err) {
      f.attempt.release();
      if (!(err instanceof SimRequestError)) throw err;
      reject(f.record, f.index, err.message);
      return false;
    }
    f.engine.requests++;
    const h = f.hashes;
    if (approx !== null && h !== null) approx.record(f.engine.id, new Uint32Array(h.buffer, h.byteOffset, 2 * h.length), h.length, now);
    if (!f.engine.stepping) startStep(f.engine);
    return true;
  };

  const record = (result: RequestResult): void => {
    endMs = now;
    stats.add(result);
    o.onResult?.(result);
  };

  const reject = (r: TraceRecord, i: number, message: string): void => {
    record({
      index: i,
      line: r.line,
      scheduledMs: now,
      sentMs: now,
      promptTokens: r.inputLength,
      outputTokens: 0,
      maxTokens: Math.max(1, r.outputLength),
      ttftMs: null,
      e2eMs: null,
      itlMeanMs: null,
      itlMaxMs: null,
      cachedTokens: null,
      cachedTokensSource: null,
      engine: null,
      status: 400,
      ok: false,
      errorKind: "http",
      error: message,
    });
  };

  /** An arrived request made ready to route: its tokens, output budget and index overlaps. */
  interface Arrival {
    record: TraceRecord;
    index: number;
    tokens: Uint32Array;
    maxTokens: number;
    prompt: RoutablePrompt;
    hashes: BigUint64Array | null;
  }

  /** Null when the request cannot be served (it is recorded as refused). */
  const prepare = (r: TraceRecord): Arrival | null => {
    const i = sent++;
    if (sent % PROGRESS_EVERY === 0) o.onProgress?.(sent, now);
    const tokens = synthesize(r);
    // The replay asks for the recorded output length, as `kvroute replay` does of a live router.
    let maxTokens: number;
    try {
      maxTokens = core.budget(Math.max(1, r.outputLength), tokens.length, settings.maxModelLen);
    } catch (err) {
      if (!(err instanceof RouterError)) throw err;
      reject(r, i, err.message);
      return null;
    }
    const hashed = hasher.hashBlocks(tokens, blockSize, root, hashes);
    for (const b of o.bounds ?? []) b.add(hashed, tokens.length);
    approx?.expire(now);
    // The overlaps are copied: a split request decides its decode engine later, from what the index said now.
    const prompt: RoutablePrompt = { promptTokens: tokens.length, blocks: hashed.length, overlaps: Uint32Array.from(index.overlaps(hashed, overlaps)), outputTokens: maxTokens };
    return { record: r, index: i, tokens, maxTokens, prompt, hashes: approx !== null ? hashed.slice() : null };
  };

  /** Sends an arrival's first attempt, or has the prefill gate hold it. */
  const dispatch = (a: Arrival, attempt: Attempt, stage: "whole" | "prefill"): void => {
    const f: InFlight = {
      record: a.record,
      index: a.index,
      arrivalMs: now,
      maxTokens: a.maxTokens,
      prompt: a.prompt,
      tokens: a.tokens,
      hashes: a.hashes,
      stage,
      engine: engines[attempt.engine]!,
      attempt,
      sentMs: now,
      prefill: null,
      firstMs: -1,
      lastMs: 0,
      gaps: 0,
      gapSumMs: 0,
      gapMaxMs: 0,
    };
    const sampling = stage === "prefill" ? { maxTokens: 1, ignoreEos: true } : { maxTokens: a.maxTokens, ignoreEos: true };
    const kv = stage === "prefill" ? { kvTransferParams: { do_remote_decode: true } } : {};
    const request: CoreRequest = { id: a.index, promptTokenIds: a.tokens, sampling, overlapBlocks: attempt.overlapBlocks, ...kv };
    // Held by the prefill gate, it is sent once the engine's prompts ahead of it have their first tokens.
    inflight.set(a.index, f);
    /** When it was last sent to its engine. */
    let sentAt = now;
    const go = () => {
      sentAt = now;
      if (!send(f, request)) inflight.delete(a.index);
    };
    // A long prompt taken back (take-back.ts) is aborted on its engine and added again later; the blocks it
    // computed meanwhile are in that engine's cache by then.
    const takeBack: TakeBackHandler | undefined =
      stage === "whole"
        ? {
            elapsedMs: () => now - sentAt,
            pause: () => {
              f.engine.core.abort(a.index);
              f.engine.dropOutputs(a.index);
            },
            resume: () => {
              sentAt = now;
              f.engine.core.add(request);
              if (!f.engine.stepping) startStep(f.engine);
            },
          }
        : undefined;
    if (attempt.admit(go, takeBack)) go();
  };

  /** Requests that arrive at the same instant: decided together on an aggregated fleet, planned one by one with roles. */
  const arrive = (records: readonly TraceRecord[]): void => {
    const arrivals = records.map(prepare).filter((a): a is Arrival => a !== null);
    if (core.disaggregated) {
      for (const a of arrivals) {
        const plan = core.plan(a.prompt)!;
        if (plan.kind === "split") paths.split++;
        else paths[plan.why === "short" ? "local_short" : "local_degraded"]++;
        const decision = plan.kind === "split" ? plan.prefill : plan.decision;
        dispatch(a, core.begin(decision, a.prompt), plan.kind === "split" ? "prefill" : "whole");
      }
      return;
    }
    const attempts = core.beginTogether(arrivals.map((a) => a.prompt));
    paths.whole += arrivals.length;
    for (const i of core.sendOrder(attempts)) {
      const attempt = attempts[i];
      if (attempt) dispatch(arrivals[i]!, attempt, "whole");
      else reject(arrivals[i]!.record, arrivals[i]!.index, "no engine is available");
    }
  };

  /** A split request's prefill finished: its decode engine is decided now, and pulls what the prefill holds. */
  const decode = (f: InFlight, done: CoreFinish): void => {
    const u = done.usage;
    f.prefill = { engine: f.engine.id, cached: f.attempt.finish(u.cachedTokens, u.promptTokens) };
    f.engine.prefillTokens += u.promptTokens - u.cachedTokens!;
    const decision = core.decide(f.prompt, undefined, "decode")!;
    f.stage = "decode";
    f.engine = engines[decision.engine]!;
    f.attempt = core.begin(decision, f.prompt);
    f.sentMs = now;
    f.firstMs = -1;
    const request = { id: f.index, promptTokenIds: f.tokens, sampling: { maxTokens: f.maxTokens, ignoreEos: true }, overlapBlocks: decision.overlapBlocks, kvTransferParams: done.kvTransferParams! };
    if (!send(f, request)) inflight.delete(f.index);
  };

  const finish = (f: InFlight, done: CoreFinish): void => {
    inflight.delete(f.index);
    const u = done.usage;
    const own = f.attempt.finish(u.cachedTokens, u.promptTokens);
    // A decode engine computed the prompt tokens it did not receive or hold.
    f.engine.prefillTokens += u.promptTokens - u.cachedTokens!;
    const cached = f.prefill === null ? own : core.settleSplit(f.prefill, f.attempt, u.cachedTokens, u.promptTokens);
    record({
      index: f.index,
      line: f.record.line,
      scheduledMs: f.arrivalMs,
      sentMs: f.arrivalMs,
      promptTokens: u.promptTokens,
      outputTokens: u.completionTokens,
      maxTokens: f.maxTokens,
      ttftMs: f.firstMs - f.arrivalMs,
      e2eMs: now - f.arrivalMs,
      itlMeanMs: f.gaps > 0 ? f.gapSumMs / f.gaps : null,
      itlMaxMs: f.gaps > 0 ? f.gapMaxMs : null,
      cachedTokens: cached.cachedTokens,
      cachedTokensSource: cached.source,
      engine: f.engine.name,
      status: 200,
      ok: true,
      errorKind: null,
      error: null,
    });
  };

  const output = (out: CoreOutput): void => {
    const f = inflight.get(out.id)!;
    if (f.stage === "prefill") {
      // The prefill's one token is dropped, as the router drops it; its time calibrates the prefill engine.
      f.attempt.firstToken(now - f.sentMs);
      f.attempt.generated(out.tokenIds.length, null);
      decode(f, out.finish!);
      return;
    }
    if (f.firstMs < 0) {
      f.firstMs = now;
      f.attempt.firstToken(now - f.sentMs);
      f.attempt.generated(out.tokenIds.length, null);
    } else {
      const gap = now - f.lastMs;
      stats.itl.record(gap);
      f.gaps++;
      f.gapSumMs += gap;
      if (gap > f.gapMaxMs) f.gapMaxMs = gap;
      f.attempt.generated(out.tokenIds.length, gap);
    }
    f.lastMs = now;
    if (out.finish) finish(f, out.finish);
  };

  const endStep = (engine: SimEngine): void => {
    const events = engine.takeEvents();
    if (events.length > 0 && approx === null) {
      if (delayMs > 0) queue.push(now + delayMs, { kind: "kv", engine, events });
      else applier.apply(engine.id, toKvEvents(events));
    }
    // Still stepping while the outputs are routed: a request they send here (one the prefill gate held)
    // joins the next step, started below, rather than starting one of its own beside it.
    engine.deliver(output);
    engine.stepping = false;
    startStep(engine);
  };

  const records = trace[Symbol.asyncIterator]();
  let read = 0;
  const nextRecord = async (): Promise<TraceRecord | null> => {
    if (o.maxRequests !== undefined && read >= o.maxRequests) return null;
    read++;
    const next = await records.next();
    return next.done ? null : next.value;
  };
  try {
    let next = await nextRecord();
    while (next !== null || queue.size > 0) {
      const arrival = next === null ? Infinity : next.timestampMs / speedup;
      if (next !== null && arrival < queue.nextTime) {
        now = Math.max(now, arrival);
        const together = [next];
        next = await nextRecord();
        while (next !== null && next.timestampMs / speedup === arrival) {
          together.push(next);
          next = await nextRecord();
        }
        arrive(together);
        continue;
      }
      const { time, item } = queue.pop()!;
      now = time;
      if (item.kind === "step") endStep(item.engine);
      else if (item.kind === "pulled") pulled(item.engine, item.pull);
      else applier.apply(item.engine.id, toKvEvents(item.events));
    }
  } finally {
    await records.return?.();
  }
  if (inflight.size > 0) throw new Error(`the simulation ended with ${inflight.size} request(s) unfinished`);
  o.onProgress?.(sent, endMs);

  const summary = stats.summary({
    tool: "kvroute simulate",
    startedAt,
    target: prefillEngines > 0 ? `${prefillEngines} prefill and ${o.engines - prefillEngines} decode simulated engines, policy ${o.policy}` : `${o.engines} simulated engines, policy ${o.policy}`,
    model: SIM_MODEL,
    trace: { name: trace.name, blockSize: trace.blockSize ?? null, report: trace.report },
    settings: {
      policy: o.policy,
      engines: o.engines,
      prefillEngines,
      disaggMinPrefillTokens: core.disaggMinPrefillTokens,
      kvTransferGbps: settings.kvTransferGbps,
      kvEvents,
      ...(approx !== null ? { approxTtlMs } : {}),
      speedup,
      kvEventDelayMs: delayMs,
      seed,
      overlapWeight: scheduler.overlapWeight,
      evictionWeight: scheduler.evictionWeight,
      temperature: scheduler.temperature,
      prefillGate: core.gate !== null,
      decideTogether: scheduler.decideTogether,
      heldByGate: core.gate?.heldTotal ?? 0,
      takeBack: scheduler.takeBacks !== null,
      takenBack: scheduler.takeBacks?.pauses ?? 0,
      blockSize,
      numBlocks: settings.numBlocks,
      maxNumSeqs: settings.maxNumSeqs,
      maxNumBatchedTokens: settings.maxNumBatchedTokens,
      maxModelLen: settings.maxModelLen,
      ...settings.timing,
    },
    stopped: o.maxRequests !== undefined && sent >= o.maxRequests ? "max-requests" : "trace-end",
    durationMs: endMs,
    sent,
  });
  return {
    policy: o.policy,
    mode: prefillEngines > 0 ? "disaggregated" : "aggregated",
    paths,
    summary,
    engines: engines.map((e) => ({ engine: e.name, role: e.role, requests: e.requests, prefillTokens: e.prefillTokens, busyMs: e.busyMs })),
    virtualMs: endMs,
    wallMs: performance.now() - wallStart,
    indexEvictions: index.stats().evictions,
    unknownParents: applier.counters.unknownParent,
    unknownBlocks: applier.counters.unknownBlock,
    approx: approx === null ? null : { ...approx.counters },
    ttftPrediction: calibration.figures(),
  };
}

/** engine-N in an aggregated fleet; prefill-N and decode-N (numbered within their pool) in a disaggregated one. */
export function engineName(id: number, roles: readonly EngineRole[] = [], prefillEngines = 0): string {
  const role = roles[id] ?? "both";
  return role === "both" ? `engine-${id}` : role === "prefill" ? `prefill-${id}` : `decode-${id - prefillEngines}`;
}
