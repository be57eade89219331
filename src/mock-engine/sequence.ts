// One request inside the simulated engine: its tokens, its KV blocks, and how far it has been computed.
import type { BlockHasher } from "../router/prepare/hashing/index.js";
import { hashBlock, rootDigest, type BlockDigest } from "./block-hash.js";
import type { RemotePrefill } from "./kv-transfer-params.js";
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
  /** Prefill side of a disaggregated request: hold the blocks for a decode engine when it ends at max_tokens. */
  remoteDecode = false;
  /** Decode side: where the prompt's blocks are to be pulled from, until the pull starts. */
  remotePrefill: RemotePrefill | null = null;
  /** Decode side: the blocks are on their way (`receiving`) or have come (`received`). */
  transfer: "none" | "receiving" | "received" = "none";
  /** Modelled time of the steps it was in from its scheduling to its first token. */
  prefillMs = 0;
  readonly rng: Rng;
  readonly stop: StopChecker;
  private readonly digests: BlockDigest[] = [];
  /** With an XXH64 hasher: the block hashes so far. */
  private readonly hashes: bigint[] = [];
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
    /** XXH64 block hashes through this hasher, chained from the SHA-256 root, instead of SHA-256 per block. */
    private readonly hasher: BlockHasher | null = null,
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
    if (this.hasher !== null) return this.fastHash(index);
    while (this.digests.length <= index) {
      const i = this.digests.length;
      const parent = i === 0 ? this.root : this.digests[i - 1]!.digest;
      this.digests.push(hashBlock(parent, this.tokens, i * this.blockSize, this.blockSize));
    }
    return this.digests[index]!.hash;
  }

  /** The XXH64 chain: every full block not hashed yet, in one call. */
  private fastHash(index: number): bigint {
    const hashes = this.hashes;
    if (index >= hashes.length) {
      const bs = this.blockSize;
      const from = hashes.length;
      const seed = from === 0 ? this.root.readBigUInt64BE(24) : hashes[from - 1]!;
      const tokens = from === 0 ? this.tokens : this.tokens.slice(from * bs);
      for (const hash of this.hasher!.hashBlocks(tokens, bs, seed)) hashes.push(hash);
      if (index >= hashes.length) throw new RangeError(`block ${index} is not full yet`);
    }
    return hashes[index]!;
  }
}
