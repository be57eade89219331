import { availableParallelism } from "node:os";
import { Piscina } from "piscina";
import { Batcher, type BatchItem } from "./batcher.js";
import { createBlockHasher } from "./hashing/index.js";
import { PrefixIndex, type PrefixIndexShared } from "../kv-index/prefix-index/index.js";
import { nextTurn } from "../../util/next-turn.js";
import type { AbortSignalLike } from "../../util/abort.js";
import { distFile } from "../../util/package-root.js";
import { Admission } from "./admission.js";
import { PREPARE_SLICE_CHARS, Preparer } from "./preparer.js";
import { DEFAULT_TOKENIZE_CACHE_MB, type SpecialTokensInContent } from "./tokenize/index.js";
import { CANCELLED, type PrepareInput, type PrepareResult, type PrepareTask, type TokenizerInfo } from "./tasks.js";
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
  /** Special-token text inside chat messages: parsed into special tokens (default, as vLLM) or plain text. */
  specialTokensInContent?: SpecialTokensInContent;
}

/** What a prompt's preparation is bounded by. */
export interface PrepareLimits {
  /** The engines' context length: tokenizing stops once the prompt cannot fit. */
  maxModelLen: number;
  /** The client leaving: a waiting task is dropped, a running one stops at its next slice. */
  signal?: AbortSignalLike | undefined;
}

/** Measured with `npm run bench:pool`; see docs/architecture.md ("The preparation pool"). */
export const DEFAULT_INLINE_MAX_TOKENS = 8192;
/**
 * Tasks a pool thread runs at once, switching between them at slice boundaries; at most BIG_PER_THREAD of
 * them longer than a slice (the rest are batches). A batch then waits for at most BIG_PER_THREAD slices of
 * big work.
 */
const TASKS_PER_THREAD = 8;
const BIG_PER_THREAD = 2;

/** Most prompts in one batch to a pool thread: a batch of long chats still comes back within milliseconds. */
const MAX_BATCH = 64;

/**
 * Prepares prompts for routing: tokenizing, hashing and index lookups run in a Piscina pool of worker
 * threads, except short token-id prompts, which are cheaper to do where they already are. Prompts of at
 * most a slice go to the threads in batches (batcher.ts); bigger ones one by one, through a lane of their
 * own (admission.ts) that lets at most BIG_PER_THREAD per thread in, so that a thread always has room for
 * the next batch and runs it between the big ones' slices. A task whose client leaves while it waits is
 * dropped here without reaching a thread (piscina would end a thread to abort a task it had already handed
 * over); a big one already running stops at its next slice.
 */
export class PreparePool {
  readonly tokenizer: TokenizerInfo;
  readonly inlineMaxTokens: number;
  readonly threads: number;
  readonly #batches: Batcher<PrepareTask, PrepareResult>;
  /** The lane of prompts longer than a slice. */
  readonly #admission: Admission;
  /** Small tasks handed to the batcher and not settled yet. */
  #small = 0;

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
    this.#admission = new Admission(threads * BIG_PER_THREAD, threads * BIG_PER_THREAD);
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
    const workerData: PoolWorkerData = {
      tokenizerDir: options.tokenizerDir,
      tokenizeCacheBytes: Math.floor(cacheMb * 1024 * 1024),
      specialTokensInContent: options.specialTokensInContent ?? "parse",
      index: options.index,
    };
    const pool = new Piscina({
      filename: distFile("src/router/prepare/worker.js"),
      workerData,
      minThreads: threads,
      maxThreads: threads,
      concurrentTasksPerWorker: TASKS_PER_THREAD,
      // An idle thread waits for tasks without blocking its event loop ("sync" would park it in
      // Atomics.wait), so V8 can collect the garbage a big prompt left there while no task comes.
      atomics: "async",
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

  prepare(input: PrepareInput, blockSize: number, seed: bigint, limits: PrepareLimits): Promise<PrepareResult> | PrepareResult {
    // A token-id prompt too long for the context is refused where it is, at once.
    if (input.kind === "tokens" && (input.tokens.length <= this.inlineMaxTokens || input.tokens.length >= limits.maxModelLen)) {
      return this.runInline(input, blockSize, seed, limits.maxModelLen);
    }
    return this.runInPool(input, blockSize, seed, limits);
  }

  /** Always in a pool thread (the benchmark compares both paths). */
  async runInPool(input: PrepareInput, blockSize: number, seed: bigint, limits: PrepareLimits): Promise<PrepareResult> {
    const { signal } = limits;
    if (signal?.aborted) return CANCELLED;
    if (inputChars(input) <= PREPARE_SLICE_CHARS) {
      const transfer = input.kind === "tokens" ? [input.tokens.buffer as ArrayBuffer] : [];
      this.#small++;
      try {
        return await this.#batches.run({ input, blockSize, seed, maxModelLen: limits.maxModelLen, cancel: null }, transfer);
      } finally {
        this.#small--;
      }
    }
    if (!(await this.#admission.enter(true, signal))) return CANCELLED;
    const cancel = signal ? new SharedArrayBuffer(4) : null;
    const onAbort = () => Atomics.store(new Int32Array(cancel!), 0, 1);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      // Copying a big prompt to a thread holds the main thread for a while: what it is doing for the
      // request now (parsing its body) and that copy take two turns of the event loop, not one.
      await nextTurn();
      if (signal?.aborted) return CANCELLED;
      const task: PrepareTask = { input, blockSize, seed, maxModelLen: limits.maxModelLen, cancel };
      return (await this.pool.run(task)) as PrepareResult;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.#admission.release(true);
    }
  }

  /** Always on the calling thread (token-id prompts only). */
  runInline(input: Extract<PrepareInput, { kind: "tokens" }>, blockSize: number, seed: bigint, maxModelLen: number): PrepareResult {
    return this.inline.prepareTokens({ input, blockSize, seed, maxModelLen, cancel: null });
  }

  /** Tasks in the pool's threads and waiting for them (for tests and metrics). */
  get load(): { running: number; big: number; waiting: number } {
    const { all, big } = this.#admission.running;
    const smallWaiting = this.#batches.waiting;
    return { running: all + this.#small - smallWaiting, big, waiting: this.#admission.waiting + smallWaiting };
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

/** How much text a prompt holds: what its tokenizing costs grows with. */
function inputChars(input: PrepareInput): number {
  if (input.kind === "text") return input.text.length;
  if (input.kind === "tokens") return 0;
  let chars = 0;
  for (const m of input.messages) chars += m.content.length + (m.name?.length ?? 0);
  return chars;
}
