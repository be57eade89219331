// How fast each engine's prefix cache turns over, relative to the fleet: the part of kv's cost that keeps
// the fleet's caches acting as one.
//
// Every block an engine computes and did not hold goes into its cache, and once the cache is full it
// evicts the block the engine used least recently. The fleet as a whole keeps the most prompt blocks worth
// keeping when each engine's least recently used block is about as old as every other's: the fleet then
// evicts what one LRU cache the fleet's size would (the fleet-capacity bound of `kvroute simulate`). An
// engine that takes more than its share of new blocks turns over faster: what it evicts is younger, and
// more likely to be asked for again, than what an engine taking less would evict. Routing by time alone
// does this to fast engines, which win every prompt no engine holds; their caches churn while slow
// engines' caches sit still.
//
// The turnover of an engine is its share of the blocks inserted across the fleet over the last
// `horizonBlocks` or so (each insertion decays every count by exp(-blocks / horizon)), over an even share
// among the engines asked about. Engines are taken to have caches of the same size: the router is not told
// their sizes.
//
// Invariants: every count is >= 0; over the engines asked about, the relative turnovers average 1: each is
// 1 while none of them has a count, and each is its count over their mean once one has.
// No clock: the horizon is counted in blocks inserted, so the same decisions come out of virtual time
// (simulate) and wall time (serve).

/** The default horizon: about the last 131,072 blocks the fleet took in (2 M tokens of 16). */
export const DEFAULT_TURNOVER_HORIZON_BLOCKS = 131_072;

export class CacheTurnover {
  readonly #horizon: number;
  readonly #inserted = new Map<number, number>();

  constructor(horizonBlocks = DEFAULT_TURNOVER_HORIZON_BLOCKS) {
    if (!(horizonBlocks > 0 && Number.isFinite(horizonBlocks))) throw new RangeError(`horizonBlocks must be a number above 0, got ${horizonBlocks}`);
    this.#horizon = horizonBlocks;
  }

  /** `blocks` new blocks went into `engine`'s cache. */
  insert(engine: number, blocks: number): void {
    if (!(blocks > 0 && Number.isFinite(blocks))) return;
    const decay = Math.exp(-blocks / this.#horizon);
    for (const [e, count] of this.#inserted) this.#inserted.set(e, count * decay);
    this.#inserted.set(engine, (this.#inserted.get(engine) ?? 0) + blocks);
  }

  /** The counts as they are now, for `restore`. */
  save(): ReadonlyMap<number, number> {
    return new Map(this.#inserted);
  }

  /** Puts back the counts `save` gave: insertions made since then were tentative. */
  restore(saved: ReadonlyMap<number, number>): void {
    this.#inserted.clear();
    for (const [engine, count] of saved) this.#inserted.set(engine, count);
  }

  /** The blocks counted for `engine` now (decayed). */
  count(engine: number): number {
    return this.#inserted.get(engine) ?? 0;
  }

  /**
   * Each engine's turnover relative to the mean of `engines` (1: an even share), in the order given. The
   * engines are the candidates of one decision: one engine's share is weighed against theirs only.
   */
  relative(engines: readonly number[]): Float64Array {
    const out = new Float64Array(engines.length);
    let total = 0;
    for (const e of engines) total += this.count(e);
    if (!(total > 0)) return out.fill(1);
    const mean = total / engines.length;
    for (let i = 0; i < engines.length; i++) out[i] = this.count(engines[i]!) / mean;
    return out;
  }
}
