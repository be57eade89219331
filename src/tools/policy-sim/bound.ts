// Bounds on the hit ratio, over the prompts of a run at the engines' block size. Prompts are taken in
// arrival order; each finds the leading full blocks held from earlier prompts, counted as the engines
// count cached tokens (never the block holding the prompt's last token, which is always computed), and
// then its full blocks are added.
// - Unbounded: one prefix cache shared by every engine that never evicts. No policy and no finite cache
//   can do better on the prompts alone.
// - Fleet capacity: one LRU cache of the fleet's total blocks. A prompt's blocks are added last block
//   first, so its first block is the most recent, as vLLM frees a finished request's blocks tail first.
//   What a fleet whose engines pooled their caches perfectly would serve: a router reaching it has lost
//   nothing to splitting the cache across engines.
import { U64Lru } from "../../util/u64-lru.js";
import { U64Set } from "./u64-set.js";

export interface CacheBound {
  blockSize: number;
  /** Blocks the cache holds; null when unbounded. */
  capacityBlocks: number | null;
  promptTokens: number;
  cachedTokens: number;
  /** cachedTokens / promptTokens; null without prompts. */
  hitRatio: number | null;
}

interface BlockStore {
  has(words: Uint32Array, i: number): boolean;
  /** Adds the block, or makes it the most recently used. */
  put(words: Uint32Array, i: number): void;
}

export class SharedCacheBound {
  readonly #store: BlockStore;
  promptTokens = 0;
  cachedTokens = 0;

  /** `capacityBlocks` null: an unbounded cache; else an LRU cache of that many blocks. */
  constructor(
    readonly blockSize: number,
    readonly capacityBlocks: number | null = null,
  ) {
    if (capacityBlocks === null) {
      const set = new U64Set(1 << 16);
      this.#store = { has: (w, i) => set.has(w, i), put: (w, i) => void set.add(w, i) };
    } else {
      const lru = new U64Lru(capacityBlocks);
      this.#store = { has: (w, i) => lru.has(w, i), put: (w, i) => lru.touch(w, i) };
    }
  }

  /**
   * Adds a prompt of `promptTokens` tokens by its chained block hashes (one per full block, as the router
   * computes them); returns the tokens the shared cache would have served of it.
   */
  add(hashes: BigUint64Array, promptTokens: number): number {
    const n = hashes.length;
    if (n !== Math.floor(promptTokens / this.blockSize)) {
      throw new RangeError(`a prompt of ${promptTokens} tokens has ${Math.floor(promptTokens / this.blockSize)} full blocks of ${this.blockSize}, not ${n}`);
    }
    const words = new Uint32Array(hashes.buffer, hashes.byteOffset, 2 * n);
    const limit = Math.min(n, Math.floor((promptTokens - 1) / this.blockSize));
    let hits = 0;
    while (hits < limit && this.#store.has(words, hits)) hits++;
    for (let i = n - 1; i >= 0; i--) this.#store.put(words, i);
    const cached = hits * this.blockSize;
    this.promptTokens += promptTokens;
    this.cachedTokens += cached;
    return cached;
  }

  result(): CacheBound {
    return {
      blockSize: this.blockSize,
      capacityBlocks: this.capacityBlocks,
      promptTokens: this.promptTokens,
      cachedTokens: this.cachedTokens,
      hitRatio: this.promptTokens > 0 ? this.cachedTokens / this.promptTokens : null,
    };
  }
}
