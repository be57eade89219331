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
// Both orders are stable: equal keys keep their arrival order.
// Deciding each prompt in turn and booking it before the next would count every earlier one as queue ahead
// of it; but a shorter prompt decided later is sent ahead of a longer one decided earlier. So the burst has
// a cost of its own (burstCost): each prompt's cost on its engine, with the uncached tokens of the burst's
// prompts sent before it there as queue ahead of it. The prompts are placed one by one in decision order,
// each where it adds least to that cost (placeInOrder), and the assignment is then improved as a whole
// (improveAssignment): single moves and pairwise swaps are taken while they lower it, so that no single
// move or swap would. Bursts of more than MAX_IMPROVED_BURST prompts, and sampling, are decided in turn.
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

/**
 * A burst's costs on the engines it may use (slots 0 … engines − 1): each prompt's cost on a slot with
 * `aheadTokens` uncached tokens of the burst's own prompts computed before it there, and its uncached
 * tokens on that slot (which decide the order within it: fewest first).
 */
export interface BurstCosts {
  engines: number;
  cost(prompt: number, slot: number, aheadTokens: number): number;
  tokens(prompt: number, slot: number): number;
}

/** Bursts larger than this are decided in turn: the swaps cost O(n³) cost evaluations a pass. */
export const MAX_IMPROVED_BURST = 32;
/** Improvement passes over the burst, at most; each stops early once nothing moves. */
export const MAX_PASSES = 10;
/** Below this a change of cost is rounding, not a gain: it keeps the search from cycling. */
const EPSILON = 1e-9;

/** The cost of the prompts `members` on one slot, computed fewest uncached tokens first. */
export function slotCost(costs: BurstCosts, slot: number, members: readonly number[]): number {
  const order = [...members].sort((a, b) => costs.tokens(a, slot) - costs.tokens(b, slot) || a - b);
  let ahead = 0;
  let total = 0;
  for (const i of order) {
    total += costs.cost(i, slot, ahead);
    ahead += costs.tokens(i, slot);
  }
  return total;
}

/** The whole burst's cost for `slots` (−1: a prompt left out, which costs nothing). */
export function burstCost(costs: BurstCosts, slots: readonly number[]): number {
  let total = 0;
  for (let k = 0; k < costs.engines; k++) total += slotCost(costs, k, members(slots, k));
  return total;
}

/**
 * Places the prompts one by one in `order`, each on the slot where it adds least to the burst's cost
 * given those placed before it (ties: the lowest slot); `placed` hears of each choice as it is made, before
 * the next prompt's costs are asked for. With no slots every prompt is left out (−1).
 */
export function placeInOrder(costs: BurstCosts, n: number, order: readonly number[], placed?: (prompt: number, slot: number) => void): number[] {
  const slots = Array.from({ length: n }, () => -1);
  const on: number[][] = Array.from({ length: costs.engines }, () => []);
  const cost = on.map(() => 0);
  for (const i of order) {
    let best = -1;
    let bestAdded = Infinity;
    let bestCost = 0;
    for (let k = 0; k < costs.engines; k++) {
      const withIt = slotCost(costs, k, [...on[k]!, i]);
      if (withIt - cost[k]! < bestAdded - EPSILON) {
        best = k;
        bestAdded = withIt - cost[k]!;
        bestCost = withIt;
      }
    }
    if (best < 0) continue;
    slots[i] = best;
    on[best]!.push(i);
    cost[best] = bestCost;
    placed?.(i, best);
  }
  return slots;
}

/**
 * `start` (each prompt's slot, −1 for none) improved by single moves and pairwise swaps while either
 * lowers burstCost; prompts left out stay out. Deterministic: prompts are tried in `order` (by default
 * their index order), slots in index order.
 */
export function improveAssignment(costs: BurstCosts, start: readonly number[], order: readonly number[] = start.map((_, i) => i), maxPasses = MAX_PASSES): number[] {
  const slots = [...start];
  const on: number[][] = Array.from({ length: costs.engines }, (_, k) => members(slots, k));
  const cost = on.map((m, k) => slotCost(costs, k, m));
  const without = (k: number, i: number) => on[k]!.filter((j) => j !== i);
  for (let pass = 0; pass < maxPasses; pass++) {
    let moved = false;
    for (const i of order) {
      const from = slots[i]!;
      if (from < 0) continue;
      const fromAfter = slotCost(costs, from, without(from, i));
      let best = -1;
      let bestGain = 0;
      let bestTo = 0;
      for (let k = 0; k < costs.engines; k++) {
        if (k === from) continue;
        const to = slotCost(costs, k, [...on[k]!, i]);
        const gain = cost[from]! + cost[k]! - fromAfter - to;
        if (gain > bestGain + EPSILON) {
          best = k;
          bestGain = gain;
          bestTo = to;
        }
      }
      if (best < 0) continue;
      on[from] = without(from, i);
      cost[from] = fromAfter;
      on[best]!.push(i);
      cost[best] = bestTo;
      slots[i] = best;
      moved = true;
    }
    for (let x = 0; x < order.length; x++) {
      for (let y = x + 1; y < order.length; y++) {
        const i = order[x]!;
        const j = order[y]!;
        const a = slots[i]!;
        const b = slots[j]!;
        if (a < 0 || b < 0 || a === b) continue;
        const onA = [...without(a, i), j];
        const onB = [...without(b, j), i];
        const costA = slotCost(costs, a, onA);
        const costB = slotCost(costs, b, onB);
        if (costA + costB + EPSILON >= cost[a]! + cost[b]!) continue;
        on[a] = onA;
        on[b] = onB;
        cost[a] = costA;
        cost[b] = costB;
        slots[i] = b;
        slots[j] = a;
        moved = true;
      }
    }
    if (!moved) break;
  }
  return slots;
}

function members(slots: readonly number[], slot: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < slots.length; i++) if (slots[i] === slot) out.push(i);
  return out;
}
