import { availableParallelism } from "node:os";
import { Piscina } from "piscina";
import { Batcher, type BatchItem } from "./batcher.js";
import { createBlockHasher } from "./hashing/index.js";
import { PrefixIndex, type PrefixIndexShared } from "../kv-index/prefix-index/index.js";
import { distFile } from "../../util/package-root.js";
import { Preparer } from "./preparer.js";
import { DEFAULT_TOKENIZE_CACHE_MB } from "./tokenize/index.js";
import type { PrepareInput, PrepareResult, PrepareTask, TokenizerInfo } from "./tasks.js";
import type { PoolWorkerData } from "./worker.js";

export interface PreparePoolOptions {
  /** Hugging Face model folder; null for the Qwen3 tokenizer that ships with kvroute. */
  tokenizerDir: string | null;
  index: PrefixIndexShared;
  /** Pool threads (default: one per core, less the main thread's, at least 1). */
  threads?: number;
  /** Each pool thread's exact tokenization cache, in MiB (default DEFAULT_TOKENIZE_CACHE_MB; 0 turns it off). */
  tokenizeCacheMb?: number;
  /**
   * Token-id prompts up to this many tokens are prepared on the main thread: for them a round trip to a
   * pool thread costs more than the hashing and lookup (see `npm run bench:pool`).
   */
  inlineMaxTokens?: number;
}

/** Measured with `npm run bench:pool`; see docs/architecture.md ("The preparation pool"). */
export const DEFAULT_INLINE_MAX_TOKENS = 8192;

/** Most prompts in one batch to a pool thread: a batch of long chats still comes back within milliseconds. */
const MAX_BATCH = 64;

/**
 * Prepares prompts for routing: tokenizing, hashing and index lookups run in a Piscina pool of worker
 * threads, in batches (batcher.ts), except short token-id prompts, which are cheaper to do where they
 * already are.
 */
export class PreparePool {
  readonly tokenizer: TokenizerInfo;
  readonly inlineMaxTokens: number;
  readonly threads: number;
  readonly #batches: Batcher<PrepareTask, PrepareResult>;

  private constructor(
    private readonly pool: Piscina,
    private readonly inline: Preparer,
    tokenizer: TokenizerInfo,
    threads: number,
    inlineMaxTokens: number,
  ) {
    this.tokenizer = tokenizer;
    this.threads = threads;
    this.inlineMaxTokens = inlineMaxTokens;
    this.#batches = new Batcher({
      slots: threads,
      maxBatch: MAX_BATCH,
      run: (tasks, transferList) => pool.run({ batch: tasks }, { transferList }) as Promise<BatchItem<PrepareResult>[]>,
    });
  }

  static async start(options: PreparePoolOptions): Promise<PreparePool> {
    const threads = options.threads ?? Math.max(1, availableParallelism() - 1);
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`pool threads must be a positive integer, got ${threads}`);
    const cacheMb = options.tokenizeCacheMb ?? DEFAULT_TOKENIZE_CACHE_MB;
    if (!Number.isFinite(cacheMb) || cacheMb < 0) throw new RangeError(`the tokenization cache size must be 0 or more MiB, got ${cacheMb}`);
    const workerData: PoolWorkerData = { tokenizerDir: options.tokenizerDir, tokenizeCacheBytes: Math.floor(cacheMb * 1024 * 1024), index: options.index };
    const pool = new Piscina({
      filename: distFile("src/router/prepare/worker.js"),
      workerData,
      minThreads: threads,
      maxThreads: threads,
      // Threads hold a loaded tokenizer: never let them idle out and reload it.
      idleTimeout: Infinity,
      // Nothing reads the pool's run and wait time histograms; recording them costs every batch.
      recordTiming: false,
    });
    let tokenizer: TokenizerInfo;
    try {
      // The first task waits for a thread to load the tokenizer, and surfaces a bad --tokenizer at start.
      tokenizer = (await pool.run({ describe: true })) as TokenizerInfo;
    } catch (err) {
      await pool.destroy();
      throw new Error(`cannot start the preparation pool: ${(err as Error).message}`);
    }
    const inline = new Preparer(await createBlockHasher(), PrefixIndex.attach(options.index), tokenizer.vocabSize, null);
    return new PreparePool(pool, inline, tokenizer, threads, options.inlineMaxTokens ?? DEFAULT_INLINE_MAX_TOKENS);
  }

  prepare(input: PrepareInput, blockSize: number, seed: bigint): Promise<PrepareResult> | PrepareResult {
    if (input.kind === "tokens" && input.tokens.length <= this.inlineMaxTokens) {
      return this.inline.prepare({ input, blockSize, seed });
    }
    return this.runInPool(input, blockSize, seed);
  }

  /** Always in a pool thread (the benchmark compares both paths). */
  runInPool(input: PrepareInput, blockSize: number, seed: bigint): Promise<PrepareResult> {
    const transfer = input.kind === "tokens" ? [input.tokens.buffer as ArrayBuffer] : [];
    return this.#batches.run({ input, blockSize, seed }, transfer);
  }

  /** Always on the calling thread (token-id prompts only). */
  runInline(input: Extract<PrepareInput, { kind: "tokens" }>, blockSize: number, seed: bigint): PrepareResult {
    return this.inline.prepare({ input, blockSize, seed });
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
