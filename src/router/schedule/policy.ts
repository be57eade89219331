// Choosing an engine for a prompt.
//
// kv (the default): cost = overlap_weight × prefill_blocks + decode_blocks, where prefill_blocks are the
// prompt blocks the engine does not hold plus the prefill already booked on it, and decode_blocks the
// blocks of its running requests. Both include the engine's external load (work the router did not book,
// from the engine's metrics; external-load.ts), kept apart from the bookings in each candidate. Temperature 0 takes the cheapest (ties: fewest active blocks, then at
// random); above 0 samples softmax(-normalized cost / temperature), costs normalized to [0, 1].
// round-robin, random and least-loaded ignore the cache; they are the baselines a deployment compares against.
import type { EngineLoad } from "./active-load.js";
import type { ExternalLoad } from "./external-load.js";

export type PolicyName = "kv" | "round-robin" | "random" | "least-loaded";
export const POLICIES: readonly PolicyName[] = ["kv", "round-robin", "random", "least-loaded"];

export interface Candidate {
  engine: number;
  overlapBlocks: number;
  /** The router's own bookings on the engine. */
  load: EngineLoad;
  /** Work on the engine the router did not book. */
  external: ExternalLoad;
}

export interface Scored extends Candidate {
  cost: number;
  activeBlocks: number;
}

export interface PolicyOptions {
  overlapWeight: number;
  temperature: number;
  random: () => number;
}

export function score(candidates: Candidate[], promptBlocks: number, overlapWeight: number): Scored[] {
  return candidates.map((c) => {
    const prefill = c.load.prefillBlocks + c.external.prefillBlocks;
    const decode = c.load.decodeBlocks + c.external.decodeBlocks;
    return {
      engine: c.engine,
      overlapBlocks: c.overlapBlocks,
      load: c.load,
      external: c.external,
      activeBlocks: prefill + decode,
      cost: overlapWeight * (promptBlocks - c.overlapBlocks + prefill) + decode,
    };
  });
}

/** Index into `scored` of the engine the kv policy picks. */
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
    const requests = s.load.requests + s.external.requests;
    const bRequests = b ? b.load.requests + b.external.requests : 0;
    if (!b || s.activeBlocks < b.activeBlocks || (s.activeBlocks === b.activeBlocks && requests < bRequests)) best = [i];
    else if (s.activeBlocks === b.activeBlocks && requests === bRequests) best.push(i);
  }
  return best[Math.floor(random() * best.length)]!;
}
