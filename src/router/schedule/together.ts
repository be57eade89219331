// Prompts that arrive together are decided together (kv, aggregated fleets).
//
// Chat traffic comes in bursts: Mooncake's conversation trace has its requests at about 1,200 instants,
// 2 to 28 at each. Decided one by one in arrival order, the first of a burst takes whichever engine suits
// it, and a later one whose long prefix is cached on that same engine must then wait behind it or compute
// its prefix again elsewhere. Two orders fix most of that:
// - Decide first the prompt with the most to lose: the largest cache lead, the blocks its best engine holds
//   beyond what the next best holds. A prompt cached nowhere, or on several engines alike, loses little
//   wherever it goes, so it decides last and takes what is left.
// - Send shortest first: each engine computes prompts in the order they reach it (vLLM's scheduler is first
//   come first served), and of the prompts decided together for one engine, computing the one with the
//   fewest uncached tokens first lowers the sum of their waits most.
// Each prompt's attempt is booked before the next is decided, so every decision sees the load of those
// before it. Both orders are stable: equal keys keep their arrival order.
import type { Attempt } from "./routing-core.js";
import type { RoutablePrompt } from "./scheduler.js";

/** The blocks the prompt's best engine holds beyond the second best, among `engines`. */
export function cacheLead(prompt: RoutablePrompt, engines: readonly number[]): number {
  let best = 0;
  let second = 0;
  for (const e of engines) {
    const overlap = Math.min(prompt.overlaps[e] ?? 0, prompt.blocks);
    if (overlap > best) {
      second = best;
      best = overlap;
    } else if (overlap > second) second = overlap;
  }
  return best - second;
}

/** Indices of `prompts` in the order to decide them: the largest cache lead first. */
export function decisionOrder(prompts: readonly RoutablePrompt[], engines: readonly number[]): number[] {
  const lead = prompts.map((p) => cacheLead(p, engines));
  return stableOrder(prompts.length, (a, b) => lead[b]! - lead[a]!);
}

/** Indices of `attempts` in the order to send them: the fewest tokens to compute first; none (null) last. */
export function sendOrder(attempts: readonly (Attempt | null)[]): number[] {
  const tokens = attempts.map((a) => (a === null ? Infinity : a.decision.chosen.features.uncachedTokens));
  return stableOrder(attempts.length, (a, b) => (tokens[a] === tokens[b] ? 0 : tokens[a]! < tokens[b]! ? -1 : 1));
}

function stableOrder(n: number, compare: (a: number, b: number) => number): number[] {
  return Array.from({ length: n }, (_, i) => i).sort((a, b) => compare(a, b) || a - b);
}
