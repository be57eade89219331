// The bound on the hit ratio: what one unbounded prefix cache shared by every engine would serve, at the
// engines' block size. Prompts are taken in arrival order; each finds the leading full blocks that any
// earlier prompt had, counted as the engines count cached tokens (never the prompt's last token, which is
// always computed), and then adds all its full blocks. No policy and no finite cache can do better on the
// prompts alone.
import { createBlockHasher, rootSeed, type BlockHasher } from "../hashing/index.js";
import { createPromptSynthesizer } from "../trace/synthesis.js";
import type { TraceSource } from "../trace/types.js";
import { SIM_MODEL } from "./engine-settings.js";
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
  readonly #root = rootSeed({ model: SIM_MODEL });
  #hashes = new BigUint64Array(1024);
  promptTokens = 0;
  cachedTokens = 0;

  constructor(
    private readonly hasher: BlockHasher,
    readonly blockSize: number,
  ) {}

  /** Adds a prompt; returns the tokens the shared cache would have served of it. */
  add(tokens: ArrayLike<number>): number {
    const n = Math.floor(tokens.length / this.blockSize);
    if (this.#hashes.length < n) this.#hashes = new BigUint64Array(2 ** Math.ceil(Math.log2(n)));
    const hashes = this.hasher.hashBlocks(tokens, this.blockSize, this.#root, this.#hashes.subarray(0, n));
    const words = new Uint32Array(hashes.buffer, hashes.byteOffset, 2 * n);
    const limit = Math.floor((tokens.length - 1) / this.blockSize);
    let hits = 0;
    while (hits < Math.min(n, limit) && this.#seen.has(words, hits)) hits++;
    for (let i = hits; i < n; i++) this.#seen.add(words, i);
    const cached = hits * this.blockSize;
    this.promptTokens += tokens.length;
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

export interface BoundOptions {
  blockSize: number;
  /** Prompts this long or longer are refused by the engines, and left out here too. */
  maxModelLen: number;
  maxRequests?: number;
  vocabSize?: number;
  promptSeed?: number;
}

/** The bound over a trace's prompts (made as the simulation makes them). */
export async function cacheBound(trace: TraceSource, o: BoundOptions): Promise<CacheBound> {
  const bound = new SharedCacheBound(await createBlockHasher(), o.blockSize);
  const synthesize = createPromptSynthesizer({
    blockSize: trace.blockSize ?? 512,
    ...(o.vocabSize !== undefined ? { vocabSize: o.vocabSize } : {}),
    ...(o.promptSeed !== undefined ? { seed: o.promptSeed } : {}),
  });
  let count = 0;
  for await (const record of trace) {
    if (record.inputLength < o.maxModelLen) bound.add(synthesize(record));
    if (++count === o.maxRequests) break;
  }
  return bound.result();
}
