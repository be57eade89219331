// One request inside the simulated engine: its tokens, its KV blocks, and how far it has been computed.
import { hashBlock, rootDigest, type BlockDigest } from "./block-hash.js";
import { Rng } from "./sampler.js";
import { StopChecker } from "./stop-checker.js";

export interface SequenceLimits {
  maxTokens: number;
  minTokens: number;
  ignoreEos: boolean;
  stopTokenIds: ReadonlySet<number>;
  stops: readonly string[];
  topLogprobs: number | null;
}

export class Sequence {
  /** Prompt then output tokens. */
  readonly tokens: number[];
  readonly promptLen: number;
  /** Tokens whose KV has been computed (or found in the cache). */
  numComputed = 0;
  /** KV blocks held, in token order. */
  blocks: number[] = [];
  /** How many leading blocks are registered in (or were found in) the prefix cache. */
  numCachedBlocks = 0;
  /** Prompt tokens found cached at first scheduling; -1 until then. */
  cachedTokens = -1;
  /** Output tokens produced. */
  outputs = 0;
  preemptions = 0;
  readonly rng: Rng;
  readonly stop: StopChecker;
  private readonly digests: BlockDigest[] = [];
  private readonly root: Buffer;

  constructor(
    readonly id: number,
    /** Taken over (output tokens are appended to it), not copied. */
    prompt: number[],
    readonly limits: SequenceLimits,
    readonly blockSize: number,
    readonly loraName: string | null,
    cacheSalt: string | null,
    simSeed: number,
    rngSeed: number,
    /** The router's estimate, echoed in logs and metrics. */
    readonly overlapBlocks: number | null,
    readonly routerRequestId: string | null,
  ) {
    this.tokens = prompt;
    this.promptLen = prompt.length;
    this.root = rootDigest(simSeed, loraName, cacheSalt);
    this.rng = new Rng(rngSeed);
    this.stop = new StopChecker(limits.stops);
  }

  /** Full blocks whose tokens are all known. */
  get numFullBlocks(): number {
    return Math.floor(this.tokens.length / this.blockSize);
  }

  /** The hash of block `index` (its tokens must be known); computed once, chained from block index-1. */
  blockHash(index: number): bigint {
    while (this.digests.length <= index) {
      const i = this.digests.length;
      const parent = i === 0 ? this.root : this.digests[i - 1]!.digest;
      this.digests.push(hashBlock(parent, this.tokens, i * this.blockSize, this.blockSize));
    }
    return this.digests[index]!.hash;
  }
}
