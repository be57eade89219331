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
// The cheapest engine wins.
// kv-blocks: cost = overlap_weight × prefill_blocks + decode_blocks, where prefill_blocks are the prompt
// blocks the engine does not hold plus the prefill already booked on it, and decode_blocks the blocks of
// its running requests: blocks to compute and blocks held weighed as if they cost the same.
// Either way temperature 0 takes the cheapest (ties: fewest active blocks, then at random); above 0
// samples softmax(-normalized cost / temperature), costs normalized to [0, 1].
// round-robin, random and least-loaded ignore the cache; they are the baselines a deployment compares against.
import type { EngineLoad } from "./active-load.js";
import type { EngineTimeModel, TimeFeatures } from "./time-model.js";

export type PolicyName = "kv" | "kv-blocks" | "round-robin" | "random" | "least-loaded";
export const POLICIES: readonly PolicyName[] = ["kv", "kv-blocks", "round-robin", "random", "least-loaded"];

export interface Candidate {
  engine: number;
  overlapBlocks: number;
  load: EngineLoad;
}

export interface Scored extends Candidate {
  /** In the policy's unit: ms for kv, blocks for kv-blocks (0 for the baselines). */
  cost: number;
  activeBlocks: number;
  /** The time model's TTFT for this request on this engine (ms), whatever the policy. */
  predictedTtftMs: number;
  /** What the prediction was made from; kept to calibrate the model when the first token comes. */
  features: TimeFeatures;
}

export interface ScoreContext {
  policy: PolicyName;
  overlapWeight: number;
  promptTokens: number;
  promptBlocks: number;
  blockSize: number;
  model: (engine: number) => EngineTimeModel;
}

export function score(candidates: Candidate[], ctx: ScoreContext): Scored[] {
  return candidates.map((c) => {
    const features: TimeFeatures = {
      queuedTokens: c.load.prefillTokens,
      uncachedTokens: ctx.promptTokens - c.overlapBlocks * ctx.blockSize,
      decoding: c.load.decodeRequests,
      decodeBlocks: c.load.decodeBlocks,
      requests: c.load.requests,
    };
    const predictedTtftMs = ctx.model(c.engine).ttft(features);
    let cost = 0;
    if (ctx.policy === "kv") cost = predictedTtftMs + ctx.model(c.engine).prefillTime(features);
    else if (ctx.policy === "kv-blocks") cost = ctx.overlapWeight * (ctx.promptBlocks - c.overlapBlocks + c.load.prefillBlocks) + c.load.decodeBlocks;
    return { ...c, activeBlocks: c.load.prefillBlocks + c.load.decodeBlocks, cost, predictedTtftMs, features };
  });
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
    if (!b || s.activeBlocks < b.activeBlocks || (s.activeBlocks === b.activeBlocks && s.load.requests < b.load.requests)) best = [i];
    else if (s.activeBlocks === b.activeBlocks && s.load.requests === b.load.requests) best.push(i);
  }
  return best[Math.floor(random() * best.length)]!;
}
