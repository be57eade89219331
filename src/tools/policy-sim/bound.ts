// The bound on the hit ratio: what one unbounded prefix cache shared by every engine would serve, at the
// engines' block size. Prompts are taken in arrival order; each finds the leading full blocks that any
// earlier prompt had, counted as the engines count cached tokens (never the block holding the prompt's
// last token, which is always computed), and then adds all its full blocks. No policy and no finite
// cache can do better on the prompts alone.
import { U64Set } from "./u64-set.js";

export interface CacheBound {
  blockSize: number;
  promptTokens: number;
  cachedTokens: number;
  /** cachedTokens / promptTokens; null without prompts. */
  hitRatio: number | null;
}

export class SharedCacheBound {
  readonly #seen = new U64Set(1 << 16);
  promptTokens = 0;
  cachedTokens = 0;

  constructor(readonly blockSize: number) {}

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
    while (hits < limit && this.#seen.has(words, hits)) hits++;
    for (let i = hits; i < n; i++) this.#seen.add(words, i);
    const cached = hits * this.blockSize;
    this.promptTokens += promptTokens;
    this.cachedTokens += cached;
    return cached;
  }

  result(): CacheBound {
    return {
      blockSize: this.blockSize,
      promptTokens: this.promptTokens,
      cachedTokens: this.cachedTokens,
      hitRatio: this.promptTokens > 0 ? this.cachedTokens / this.promptTokens : null,
    };
  }
}
