// Choosing an engine for a prompt.
//
// kv (the default): the cost is time: what the request waits, plus what it makes others wait. For each
// engine the time model (time-model.ts) predicts this request's TTFT there, from the prefill queued on it,
// the prompt tokens it does not hold, its decoding load and its own learned speed. To that it adds the
// engine time its uncached prefill takes (p × U): every step that carries a chunk of the prompt is that
// much longer for the sequences decoding there, and a request that arrives behind it waits for it. It is
// counted once, as one stream there sees it, not once per decoding stream: summed over the streams it
// would outweigh the request's own TTFT many times over and send every long prompt away from its cache.
// A cached prefix is thus worth its compute twice: once in this request's wait, once in the fleet's.
// Its prefill also delays the prefills queued ahead of it that end in the step its first chunk joins (every
// request in a step waits for the whole step): that time is added too (time-model.ts, sharedStepDelay).
// With the prefill gate (prefill-gate.ts) a request that would delay them by more than a step, when they end
// within GATE_QUEUE_STEPS steps, is held instead and delays them by nothing: the term is then the step it
// loses.
// Then what the request's new blocks evict (cache-turnover.ts): each pushes out the engine's least
// recently used block, and that block is the more likely to be asked for again the faster the engine's
// cache turns over. The cost counts it as evictionWeight × the fleet's time per prompt token × the new
// tokens × the engine's turnover relative to the others' (1 when every engine takes its share of new
// blocks). On a fleet of equal engines this is one more reason to follow the cache; where some engines are
// faster, it keeps their speed from churning their caches while the slower engines' caches sit still, so
// the fleet keeps what one cache of its size would. The weight was measured, not derived (README, "Routing
// policies compared"): 2 is the least whole weight at which the hit ratio stays above 90% of the fleet
// bound on Mooncake's conversation and synthetic traces, at 1× and 2× their rate, on equal engines and with
// half of them at half speed (at 1 it falls to 89% on the mixed fleets). Higher weights cost mean TTFT
// on the mixed fleets (53 to 92 ms at 4) and move it by no more than 6 ms on equal engines. With engines at
// a quarter speed it takes 8 to bring their caches into use (95% of the bound), for 21% more mean TTFT.
// The cheapest engine wins.
// kv-blocks: cost = overlap_weight × prefill_blocks + decode_blocks, where prefill_blocks are the prompt
// blocks the engine does not hold plus the prefill already booked on it, and decode_blocks the blocks of
// its running requests: blocks to compute and blocks held weighed as if they cost the same.
// Either way temperature 0 takes the cheapest (ties: fewest active blocks, then at random); above 0
// samples softmax(-normalized cost / temperature), costs normalized to [0, 1].
// Both costs take two more loads on top of the router's own bookings: what other router replicas booked on
// the engine (peer load, shared through NATS), in the same terms as the bookings; and the engine's external
// load (work no replica booked, from the engine's own metrics; external-load.ts). They go into the time
// model's features (queued prompt tokens, decoding sequences and their blocks, requests), or into the block
// counts. Each candidate keeps the three apart.
// round-robin, random and least-loaded ignore the cache; they are the baselines a deployment compares against.
// The decode stage of a disaggregated request (roles.ts) computes only its last prompt token, once the
// blocks the engine lacks have come from the prefill engine, and then generates. kv's cost there is the
// time to that first token with the transfer in it (time-model.ts), plus the time of the steps it will
// generate in: the output budget (at most DECODE_HORIZON tokens) × the engine's step time with this
// sequence added. kv-blocks counts the blocks to receive in place of the blocks to prefill. Either way a
// decode engine's load outweighs the decode side's overlap unless the loads are close, as disaggregation
// wants: the point of it is an even, fast inter-token latency.
import type { EngineLoad } from "./active-load.js";
import type { ExternalLoad } from "./external-load.js";
import type { Stage } from "./roles.js";
import type { EngineTimeModel, TimeFeatures } from "./time-model.js";

export type PolicyName = "kv" | "kv-blocks" | "round-robin" | "random" | "least-loaded";

/** The most output tokens over which a decode engine's step time counts in kv's decode-stage cost. */
export const DECODE_HORIZON = 512;
/**
 * The prefill gate holds a request only behind a queue that ends within this many steps. Behind a longer one
 * (an engine under load) the request is left to the engine: holding there would leave its steps part empty
 * while each carries every decoding sequence, and prefill throughput would fall. Measured with `kvroute
 * simulate` (docs/architecture.md, the prefill gate): on the Mooncake conversation trace, kv's mean TTFT
 * was 456 ms at 1 step, 454 at 2 and 453 at 3 or more; three engines overloaded at 2× kept their mean TTFT
 * within 1% of the gate's absence.
 */
export const GATE_QUEUE_STEPS = 3;
/** kv's default weight on what a request's new blocks evict (see above). */
export const DEFAULT_EVICTION_WEIGHT = 2;
export const POLICIES: readonly PolicyName[] = ["kv", "kv-blocks", "round-robin", "random", "least-loaded"];

export interface Candidate {
  engine: number;
  overlapBlocks: number;
  /** The router's own bookings on the engine. */
  load: EngineLoad;
  /** What other router replicas booked on the engine. */
  peer: EngineLoad;
  /** Work on the engine the router did not book. */
  external: ExternalLoad;
  /** The engine's cache turnover against the other candidates' (cache-turnover.ts; 1: an even share). */
  turnover: number;
}

export interface Scored extends Candidate {
  /** In the policy's unit: ms for kv, blocks for kv-blocks (0 for the baselines). */
  cost: number;
  activeBlocks: number;
  /** The time model's TTFT for this request on this engine (ms), whatever the policy. */
  predictedTtftMs: number;
  /** What the prediction was made from; kept to calibrate the model when the first token comes. */
  features: TimeFeatures;
  /** Decode stage: the KV blocks the engine must receive from the prefill engine (0 otherwise). */
  transferBlocks: number;
}

export interface ScoreContext {
  policy: PolicyName;
  overlapWeight: number;
  /** kv: the weight of what the request's new blocks evict, in their compute time (see above). */
  evictionWeight: number;
  /** kv: the fleet's time per prompt token computed (ms), what an evicted block costs to compute again. */
  fleetMsPerToken: number;
  promptTokens: number;
  promptBlocks: number;
  blockSize: number;
  model: (engine: number) => EngineTimeModel;
  /** What the attempt asks of the engine (default: the whole request). */
  stage?: Stage;
  /** The request's output budget (decode stage: how long its step time counts; default 1). */
  outputTokens?: number;
  /** kv: the router holds a request rather than have it share the step of the prefills ahead (prefill-gate.ts). */
  prefillGate?: boolean;
}

export function score(candidates: Candidate[], ctx: ScoreContext): Scored[] {
  const decode = ctx.stage === "decode";
  // A decode attempt receives every block of the prompt it lacks, the partial last one included, and
  // computes the last prompt token itself (as vLLM's NixlConnector has it).
  const allBlocks = Math.ceil(ctx.promptTokens / ctx.blockSize);
  return candidates.map((c) => {
    const x = c.external;
    const p = c.peer;
    const model = ctx.model(c.engine);
    const transferBlocks = decode ? Math.max(0, allBlocks - c.overlapBlocks) : 0;
    const features: TimeFeatures = {
      queuedTokens: c.load.prefillTokens + p.prefillTokens + x.prefillBlocks * ctx.blockSize,
      uncachedTokens: decode ? 1 : ctx.promptTokens - c.overlapBlocks * ctx.blockSize,
      decoding: c.load.decodeRequests + p.decodeRequests + x.running,
      decodeBlocks: c.load.decodeBlocks + p.decodeBlocks + x.decodeBlocks,
      requests: c.load.requests + p.requests + x.requests,
    };
    const predictedTtftMs = model.ttft(features) + (decode ? model.transferTime(transferBlocks) : 0);
    const prefillBlocks = c.load.prefillBlocks + p.prefillBlocks + x.prefillBlocks;
    const decodeBlocks = c.load.decodeBlocks + p.decodeBlocks + x.decodeBlocks;
    const newBlocks = decode ? transferBlocks : ctx.promptBlocks - c.overlapBlocks;
    let cost = 0;
    if (ctx.policy === "kv") {
      cost = predictedTtftMs + model.prefillTime(features);
      if (!decode) {
        const queuedRequests = c.load.requests - c.load.decodeRequests + p.requests - p.decodeRequests + x.requests - x.running;
        cost += sharedStepCost(model, features, queuedRequests, ctx.prefillGate ?? false) + ctx.evictionWeight * ctx.fleetMsPerToken * features.uncachedTokens * c.turnover;
      } else cost += (Math.min(ctx.outputTokens ?? 1, DECODE_HORIZON) - 1) * model.stepTime(features.decoding + 1, features.decodeBlocks + allBlocks);
    } else if (ctx.policy === "kv-blocks") cost = ctx.overlapWeight * (newBlocks + prefillBlocks) + decodeBlocks;
    // Spelled out: V8 (Node 20) builds `{ ...c, more }` on a slow path, some microseconds per object.
    return { engine: c.engine, overlapBlocks: c.overlapBlocks, load: c.load, peer: c.peer, external: c.external, activeBlocks: prefillBlocks + decodeBlocks, cost, predictedTtftMs, features, transferBlocks, turnover: c.turnover };
  });
}

/**
 * Whether the prefill gate holds a request rather than send it beside the `queuedRequests` prompts ahead:
 * when its head would delay them by more than the step it loses by waiting, and they end within
 * GATE_QUEUE_STEPS steps.
 */
export function holds(model: EngineTimeModel, f: TimeFeatures, queuedRequests: number): boolean {
  return model.queueEndsWithin(f, GATE_QUEUE_STEPS) && model.sharedStepDelay(f, queuedRequests) > model.stepTime(f.decoding, f.decodeBlocks);
}

/**
 * What the prompts ahead lose to this one's head in their step; with the gate, the step it waits instead
 * when that is less, which is exactly when `holds` is true. The delay is computed once: this runs for every
 * engine of every decision.
 */
function sharedStepCost(model: EngineTimeModel, f: TimeFeatures, queuedRequests: number, gated: boolean): number {
  const delay = model.sharedStepDelay(f, queuedRequests);
  return gated && model.queueEndsWithin(f, GATE_QUEUE_STEPS) ? Math.min(delay, model.stepTime(f.decoding, f.decodeBlocks)) : delay;
}

/** Index into `scored` of the engine a cost policy picks. */
export function pickByCost(scored: Scored[], temperature: number, random: () => number): number {
  if (temperature > 0) return sampleSoftmax(scored, temperature, random);
  let best: number[] = [];
  for (let i = 0; i < scored.length; i++) {
    const s = scored[i]!;
    const b = best.length ? scored[best[0]!]! : null;
    if (!b || s.cost < b.cost || (s.cost === b.cost && s.activeBlocks < b.activeBlocks)) best = [i];
    else if (s.cost === b.cost && s.activeBlocks === b.activeBlocks) best.push(i);
  }
  return best[Math.floor(random() * best.length)]!;
}

function sampleSoftmax(scored: Scored[], temperature: number, random: () => number): number {
  const costs = scored.map((s) => s.cost);
  const min = Math.min(...costs);
  const span = Math.max(...costs) - min;
  const weights = costs.map((c) => Math.exp(-(span > 0 ? (c - min) / span : 0) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let r = random() * total;
  for (let i = 0; i < weights.length; i++) {
    r -= weights[i]!;
    if (r < 0) return i;
  }
  return weights.length - 1;
}

/** Fewest booked blocks, then fewest requests; ties at random. */
export function pickLeastLoaded(scored: Scored[], random: () => number): number {
  let best: number[] = [];
  for (let i = 0; i < scored.length; i++) {
    const s = scored[i]!;
    const b = best.length ? scored[best[0]!]! : null;
    const requests = s.load.requests + s.peer.requests + s.external.requests;
    const bRequests = b ? b.load.requests + b.peer.requests + b.external.requests : 0;
    if (!b || s.activeBlocks < b.activeBlocks || (s.activeBlocks === b.activeBlocks && requests < bRequests)) best = [i];
    else if (s.activeBlocks === b.activeBlocks && requests === bRequests) best.push(i);
  }
  return best[Math.floor(random() * best.length)]!;
}
