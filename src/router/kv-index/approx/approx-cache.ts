// Approximate mode: what an engine that publishes no KV events is predicted to cache, from the router's own
// decisions. When a prompt is dispatched to such an engine, its block hashes are recorded for it: the
// engine will compute and keep them. A prediction is believed for a TTL after it was last made, and the
// engine holds at most `capacity` of them (its KV-cache size in blocks), the least recently predicted
// going first. Predictions go into the same prefix index the KV events feed, so routing weighs them with
// the same cost.
//
// No sockets and no clock: the caller passes the time. The KV-event thread drives it on the wall clock
// (with the router's predictions and those of other replicas), the policy simulator on virtual time.
//
// Invariants, per engine, between calls:
//   - the index holds exactly the hashes the engine's LRU holds (entries the index evicted for lack of room
//     excepted: removing them later changes nothing);
//   - the LRU holds at most `capacity` hashes, none predicted longer than `ttlMs` ago as of the last call;
//   - within one prediction the first block is the most recent, so a prompt is forgotten tail first and a
//     prefix outlives its extensions (as vLLM frees a finished request's blocks tail first).
import { U64Lru } from "../../../util/u64-lru.js";

/** The index operations approximate mode needs (the PrefixIndex writer has them). */
export interface ApproxIndexSink {
  storeWords(engine: number, words: Uint32Array, n: number, parentWords: Uint32Array | null): void;
  removeWords(engine: number, words: Uint32Array, n: number): number;
  clearEngine(engine: number): number;
}

export interface ApproxCacheOptions {
  /** How long a prediction is believed after it was last made (ms); above 0. */
  ttlMs: number;
}

export interface ApproxEngineStats {
  engine: number;
  /** Blocks predicted held now. */
  blocks: number;
  capacity: number;
}

export interface ApproxCounters {
  /** Predictions recorded (one per dispatched prompt, or per prompt a peer replica dispatched). */
  predictions: number;
  /** Blocks forgotten because their TTL ran out. */
  expired: number;
  /** Blocks forgotten to make room within an engine's capacity. */
  evicted: number;
}

export class ApproxCache {
  readonly ttlMs: number;
  readonly counters: ApproxCounters = { predictions: 0, expired: 0, evicted: 0 };
  readonly #index: ApproxIndexSink;
  readonly #engines = new Map<number, U64Lru>();
  /** Hashes leaving an engine, removed from the index in one call. */
  #out = new Uint32Array(2 * 1024);

  constructor(index: ApproxIndexSink, options: ApproxCacheOptions) {
    if (!(options.ttlMs > 0 && Number.isFinite(options.ttlMs))) throw new RangeError(`the approximate-mode TTL must be a number of ms above 0, got ${options.ttlMs}`);
    this.#index = index;
    this.ttlMs = options.ttlMs;
  }

  /** Starts predicting `engine`'s cache, which holds at most `capacity` blocks. */
  addEngine(engine: number, capacity: number): void {
    if (this.#engines.has(engine)) throw new Error(`engine ${engine} is already in approximate mode`);
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`engine ${engine}: the approximate cache's capacity must be a positive integer of blocks, got ${capacity}`);
    this.#engines.set(engine, new U64Lru(capacity));
  }

  hasEngine(engine: number): boolean {
    return this.#engines.has(engine);
  }

  /** Forgets the engine's predictions, in the index too. */
  removeEngine(engine: number): void {
    if (!this.#engines.delete(engine)) return;
    this.#index.clearEngine(engine);
  }

  /**
   * A prompt whose chained block hashes are `words[0..2n)` (u32 halves) was dispatched to `engine` at `nowMs`.
   * Unknown engines are ignored (an engine can leave while its predictions are on their way).
   */
  record(engine: number, words: Uint32Array, n: number, nowMs: number): void {
    const lru = this.#engines.get(engine);
    if (lru === undefined || n <= 0) return;
    this.counters.predictions++;
    let k = this.#expireEngine(lru, nowMs);
    // A prompt longer than the cache keeps its head: the tail would be evicted first anyway.
    const m = Math.min(n, lru.capacity);
    // Tail first, so that the head is the most recent.
    for (let i = m - 1; i >= 0; i--) {
      if (lru.size === lru.capacity && !lru.has(words, i)) {
        this.#room(k + 1);
        lru.popOldest(this.#out, k++);
        this.counters.evicted++;
      }
      lru.touch(words, i, nowMs);
    }
    // Removals go first: a block evicted above and predicted again by this prompt is stored again below.
    if (k > 0) this.#index.removeWords(engine, this.#out, k);
    this.#index.storeWords(engine, words, m, null);
  }

  /** Forgets, for every engine, the predictions last made at or before `nowMs - ttlMs`. */
  expire(nowMs: number): void {
    for (const [engine, lru] of this.#engines) {
      const k = this.#expireEngine(lru, nowMs);
      if (k > 0) this.#index.removeWords(engine, this.#out, k);
    }
  }

  stats(): ApproxEngineStats[] {
    return [...this.#engines].map(([engine, lru]) => ({ engine, blocks: lru.size, capacity: lru.capacity }));
  }

  /** Pops the engine's expired hashes into #out; returns how many (the caller removes them from the index). */
  #expireEngine(lru: U64Lru, nowMs: number): number {
    const cutoff = nowMs - this.ttlMs;
    let k = 0;
    while (lru.oldestStamp() <= cutoff) {
      this.#room(k + 1);
      lru.popOldest(this.#out, k++);
    }
    this.counters.expired += k;
    return k;
  }

  #room(hashes: number): void {
    if (this.#out.length >= 2 * hashes) return;
    const bigger = new Uint32Array(Math.max(2 * hashes, 2 * this.#out.length));
    bigger.set(this.#out);
    this.#out = bigger;
  }
}
