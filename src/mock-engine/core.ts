// The simulated engine without sockets or clocks: requests go in with add(), and each step() schedules a
// batch the way vLLM's scheduler does (running requests first, then waiting ones, within max_num_seqs and
// max_num_batched_tokens, with chunked prefill and preemption), computes it in the timing model, and
// returns the step's modelled duration and outputs. KV events go to the sink, one batch per step.
import type { BlockHasher } from "../router/prepare/hashing/index.js";
import type { EngineUsage, GenerateRequest, LogFn, TokenLogprobs } from "../engine-protocol/index.js";
import { BlockPool } from "./block-pool.js";
import type { KvEventSink, SimKvEvent } from "./kv-events.js";
import { EOS_TOKEN_ID, requestSeed, sampleToken } from "./sampler.js";
import { Sequence } from "./sequence.js";
import { DEFAULT_TIMING, stepDurationMs, type StepWork, type TimingModel } from "./timing.js";
import { wordOf } from "./words.js";

export interface EngineCoreOptions {
  /** Tokens per KV block (default 16). */
  blockSize?: number;
  /** KV-cache capacity in blocks (default 8192). */
  numBlocks?: number;
  /** Most sequences running at once (default 256). */
  maxNumSeqs?: number;
  /** Most tokens computed in one step (default 8192); longer prompts are prefilled in chunks. */
  maxNumBatchedTokens?: number;
  /** Context length (default 32768); must fit in the KV cache. */
  maxModelLen?: number;
  /** Prompt token ids must be below this (default 151936, Qwen3's embedding size). */
  vocabSize?: number;
  /** Seeds the output tokens and the block hashes (default 0). */
  seed?: number;
  /** Chance per output token of ending with EOS, unless ignore_eos (default 0: run to max_tokens). */
  eosProbability?: number;
  timing?: Partial<TimingModel>;
  kvEventSink?: KvEventSink;
  log?: LogFn;
  /**
   * Hash blocks with XXH64 through this hasher (chained from the engine's own root, so still not the
   * router's hashes) instead of SHA-256 per block: the same cache and the same events under other hash
   * values, at a small fraction of the cost. For simulations on virtual time, where hashing dominates.
   */
  blockHasher?: BlockHasher;
}

export interface CoreRequest extends GenerateRequest {
  /** Unique among the core's requests in flight. */
  id: number;
}

export interface CoreFinish {
  finishReason: "stop" | "length";
  stopReason: string | number | null;
  usage: EngineUsage;
}

export interface CoreOutput {
  id: number;
  tokenIds: number[];
  text: string;
  logprobs?: TokenLogprobs[];
  /** Present on a request's last output. */
  finish?: CoreFinish;
}

export interface StepResult {
  /** The step's duration in the timing model (0 when there was nothing to do). */
  durationMs: number;
  outputs: CoreOutput[];
  work: StepWork;
}

export interface EngineCoreMetrics {
  steps: number;
  requestsAdded: number;
  requestsFinished: number;
  requestsAborted: number;
  promptTokens: number;
  /** Prompt tokens the engine found in its prefix cache (what it reports as cached_tokens). */
  cachedTokens: number;
  /** Requests that came with the router's overlap_blocks estimate. */
  requestsWithOverlap: number;
  /** Sum of overlap_blocks × block_size over those requests: the router's estimate of cached tokens. */
  routerOverlapTokens: number;
  /** Requests that have had their first token, and the modelled time they spent getting it once scheduled. */
  prefillRequests: number;
  prefillMs: number;
  /** Engine-counted cached tokens over the same requests, to compare with routerOverlapTokens. */
  cachedTokensWithOverlap: number;
  generationTokens: number;
  preemptions: number;
  blocksStored: number;
  blocksRemoved: number;
  running: number;
  waiting: number;
  blocksUsed: number;
  blocksCached: number;
}

/** Why add() refused a request; `code` is the protocol's error code. */
export class SimRequestError extends Error {
  constructor(
    readonly code: "invalid_request" | "prompt_too_long" | "duplicate_id",
    message: string,
  ) {
    super(message);
    this.name = "SimRequestError";
  }
}

interface Resolved {
  blockSize: number;
  numBlocks: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  maxModelLen: number;
  vocabSize: number;
  seed: number;
  eosProbability: number;
  timing: TimingModel;
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, not ${v}`);
  return v;
}

function resolveOptions(o: EngineCoreOptions): Resolved {
  const r: Resolved = {
    blockSize: positiveInt("blockSize", o.blockSize, 16),
    numBlocks: positiveInt("numBlocks", o.numBlocks, 8192),
    maxNumSeqs: positiveInt("maxNumSeqs", o.maxNumSeqs, 256),
    maxNumBatchedTokens: positiveInt("maxNumBatchedTokens", o.maxNumBatchedTokens, 8192),
    maxModelLen: positiveInt("maxModelLen", o.maxModelLen, 32768),
    vocabSize: positiveInt("vocabSize", o.vocabSize, 151_936),
    seed: o.seed ?? 0,
    eosProbability: o.eosProbability ?? 0,
    timing: { ...DEFAULT_TIMING, ...o.timing },
  };
  if (!Number.isSafeInteger(r.seed)) throw new RangeError(`seed must be an integer, not ${r.seed}`);
  if (!(r.eosProbability >= 0 && r.eosProbability <= 1)) throw new RangeError(`eosProbability must be in [0, 1], not ${r.eosProbability}`);
  for (const [key, value] of Object.entries(r.timing)) {
    if (!(Number.isFinite(value) && value >= 0)) throw new RangeError(`timing.${key} must be a non-negative number, not ${value}`);
  }
  // As vLLM refuses to start: one request of the full context length must fit in the cache on its own.
  const blocksPerRequest = Math.ceil(r.maxModelLen / r.blockSize);
  if (blocksPerRequest > r.numBlocks) {
    throw new RangeError(
      `maxModelLen ${r.maxModelLen} needs ${blocksPerRequest} blocks of ${r.blockSize} tokens, but the KV cache has ${r.numBlocks}; raise numBlocks or lower maxModelLen`,
    );
  }
  return r;
}

export class EngineCore {
  readonly options: Readonly<Resolved>;
  private readonly pool: BlockPool;
  private readonly sequences = new Map<number, Sequence>();
  private waiting: Sequence[] = [];
  private running: Sequence[] = [];
  private pendingEvents: SimKvEvent[] = [];
  private readonly counters = {
    steps: 0,
    requestsAdded: 0,
    requestsFinished: 0,
    requestsAborted: 0,
    promptTokens: 0,
    cachedTokens: 0,
    requestsWithOverlap: 0,
    routerOverlapTokens: 0,
    cachedTokensWithOverlap: 0,
    generationTokens: 0,
    preemptions: 0,
    blocksStored: 0,
    blocksRemoved: 0,
    prefillRequests: 0,
    prefillMs: 0,
  };

  private readonly sink: KvEventSink | undefined;
  private readonly log: LogFn | undefined;
  private readonly hasher: BlockHasher | null;

  constructor(options: EngineCoreOptions = {}) {
    this.options = resolveOptions(options);
    this.sink = options.kvEventSink;
    this.log = options.log;
    this.hasher = options.blockHasher ?? null;
    this.pool = new BlockPool(this.options.numBlocks, this.options.blockSize, (event) => {
      if (event.type === "BlockRemoved") this.counters.blocksRemoved += event.blockHashes.length;
      this.pendingEvents.push(event);
    });
  }

  /** Whether step() has anything to do. */
  get hasWork(): boolean {
    return this.waiting.length > 0 || this.running.length > 0;
  }

  get numRequests(): number {
    return this.sequences.size;
  }

  /** Queues a request. Throws a SimRequestError when it can never be served. */
  add(request: CoreRequest): void {
    const o = this.options;
    const { id } = request;
    if (this.sequences.has(id)) throw new SimRequestError("duplicate_id", `request id ${id} is already in flight`);
    const prompt = request.promptTokenIds;
    if (prompt.length === 0) throw new SimRequestError("invalid_request", "prompt_token_ids must hold at least one token");
    // Checked and copied in one loop: Array.from on a typed array goes through its iterator, some ten
    // times slower, which shows at tens of thousands of tokens per prompt.
    const tokens = new Array<number>(prompt.length);
    for (let i = 0; i < prompt.length; i++) {
      const t = prompt[i]!;
      if (!(Number.isInteger(t) && t >= 0 && t < o.vocabSize)) {
        throw new SimRequestError("invalid_request", `prompt_token_ids[${i}] is ${t}, outside the vocabulary [0, ${o.vocabSize})`);
      }
      tokens[i] = t;
    }
    if (prompt.length >= o.maxModelLen) {
      throw new SimRequestError("prompt_too_long", `the prompt has ${prompt.length} tokens; max_model_len ${o.maxModelLen} leaves no room for output`);
    }
    const s = request.sampling ?? {};
    const room = o.maxModelLen - prompt.length;
    const sequence = new Sequence(
      id,
      tokens,
      {
        maxTokens: Math.min(s.maxTokens ?? room, room),
        minTokens: s.minTokens ?? 0,
        ignoreEos: s.ignoreEos ?? false,
        stopTokenIds: new Set(s.stopTokenIds ?? []),
        stops: s.stop ?? [],
        topLogprobs: s.logprobs ?? null,
      },
      o.blockSize,
      request.loraName ?? null,
      request.cacheSalt ?? null,
      o.seed,
      requestSeed(o.seed, s.seed, tokens),
      request.overlapBlocks ?? null,
      request.requestId ?? null,
      this.hasher,
    );
    this.sequences.set(id, sequence);
    this.waiting.push(sequence);
    this.counters.requestsAdded++;
  }

  /** Stops a request and frees its blocks; false when the id is unknown. */
  abort(id: number): boolean {
    const sequence = this.sequences.get(id);
    if (!sequence) return false;
    this.waiting = this.waiting.filter((s) => s !== sequence);
    this.running = this.running.filter((s) => s !== sequence);
    this.releaseBlocks(sequence);
    this.sequences.delete(id);
    this.counters.requestsAborted++;
    this.flushEvents();
    return true;
  }

  /** Clears the prefix cache (AllBlocksCleared); refused (false) while any request holds blocks. */
  resetPrefixCache(): boolean {
    const done = this.pool.reset();
    this.flushEvents();
    return done;
  }

  /** Runs one engine step. */
  step(): StepResult {
    const scheduled = this.schedule();
    const work: StepWork = { prefillTokens: 0, decodeSeqs: 0, kvBlocks: 0 };
    const outputs: CoreOutput[] = [];
    const prefilling: Sequence[] = [];
    for (const [sequence, numNew] of scheduled) {
      const decoding = sequence.numComputed === sequence.tokens.length - 1 && numNew === 1 && sequence.outputs > 0;
      if (decoding) work.decodeSeqs++;
      else {
        work.prefillTokens += numNew;
        if (sequence.outputs === 0) prefilling.push(sequence);
      }
      work.kvBlocks += sequence.blocks.length;
      sequence.numComputed += numNew;
      if (sequence.numComputed === sequence.tokens.length) {
        const output = this.sample(sequence);
        if (output) outputs.push(output);
      }
    }
    if (scheduled.length > 0) this.counters.steps++;
    this.flushEvents();
    const durationMs = stepDurationMs(this.options.timing, work);
    // vLLM's request_prefill_time: a request's time in the steps from its scheduling to its first token.
    for (const sequence of prefilling) {
      sequence.prefillMs += durationMs;
      if (sequence.outputs > 0) {
        this.counters.prefillRequests++;
        this.counters.prefillMs += sequence.prefillMs;
      }
    }
    return { durationMs, outputs, work };
  }

  metrics(): EngineCoreMetrics {
    return {
      ...this.counters,
      running: this.running.length,
      waiting: this.waiting.length,
      blocksUsed: this.pool.numUsed,
      blocksCached: this.pool.numCached,
    };
  }

  /** The hashes the prefix cache holds now (what the published events should add up to). */
  cachedBlockHashes(): Set<bigint> {
    return this.pool.cachedHashes();
  }

  private schedule(): Array<[Sequence, number]> {
    const o = this.options;
    let budget = o.maxNumBatchedTokens;
    const scheduled: Array<[Sequence, number]> = [];
    let preempted = false;

    for (let i = 0; i < this.running.length && budget > 0; ) {
      const sequence = this.running[i]!;
      const numNew = Math.min(sequence.tokens.length - sequence.numComputed, budget);
      let fits = this.allocate(sequence, numNew, []);
      while (!fits) {
        // Out of blocks: preempt the most recently admitted request (vLLM's recompute preemption).
        const victim = this.running.pop()!;
        this.preempt(victim);
        preempted = true;
        if (victim === sequence) break;
        fits = this.allocate(sequence, numNew, []);
      }
      if (!fits) break;
      scheduled.push([sequence, numNew]);
      budget -= numNew;
      i++;
    }

    while (!preempted && this.waiting.length > 0 && budget > 0 && this.running.length < o.maxNumSeqs) {
      const sequence = this.waiting[0]!;
      const hits = this.findCachedPrefix(sequence);
      const numNew = Math.min(sequence.tokens.length - hits.length * o.blockSize, budget);
      if (!this.allocate(sequence, numNew, hits)) break;
      if (sequence.cachedTokens < 0) this.recordCached(sequence, hits.length * o.blockSize);
      this.waiting.shift();
      this.running.push(sequence);
      scheduled.push([sequence, numNew]);
      budget -= numNew;
    }
    return scheduled;
  }

  /** Leading blocks of the sequence found in the prefix cache; the last token is always computed. */
  private findCachedPrefix(sequence: Sequence): number[] {
    const maxBlocks = Math.floor((sequence.tokens.length - 1) / this.options.blockSize);
    const hits: number[] = [];
    for (let i = 0; i < maxBlocks; i++) {
      const block = this.pool.lookup(sequence.blockHash(i));
      if (block === undefined) break;
      hits.push(block);
    }
    return hits;
  }

  /**
   * Gives the sequence the blocks for `numNew` more tokens (after taking `hits` from the cache), and
   * registers the blocks those tokens complete. False, with nothing changed, when there are too few.
   */
  private allocate(sequence: Sequence, numNew: number, hits: readonly number[]): boolean {
    const bs = this.options.blockSize;
    const computed = sequence.numComputed + hits.length * bs;
    const needed = Math.ceil((computed + numNew) / bs) - sequence.blocks.length - hits.length;
    let freeHits = 0;
    for (const block of hits) if (this.pool.isFree(block)) freeHits++;
    if (needed + freeHits > this.pool.numFree) return false;
    if (hits.length > 0) {
      this.pool.touch(hits);
      sequence.blocks.push(...hits);
      sequence.numComputed = computed;
      sequence.numCachedBlocks = hits.length;
    }
    if (needed > 0) sequence.blocks.push(...this.pool.allocate(needed));
    this.storeFullBlocks(sequence, Math.floor((computed + numNew) / bs));
    return true;
  }

  /** Registers blocks [numCachedBlocks, upTo) in the cache, one BlockStored per run of new blocks. */
  private storeFullBlocks(sequence: Sequence, upTo: number): void {
    const bs = this.options.blockSize;
    let run: bigint[] = [];
    let runStart = 0;
    const emitRun = (): void => {
      if (run.length === 0) return;
      this.pendingEvents.push({
        type: "BlockStored",
        blockHashes: run,
        parentBlockHash: runStart === 0 ? null : sequence.blockHash(runStart - 1),
        tokenIds: sequence.tokens.slice(runStart * bs, (runStart + run.length) * bs),
        blockSize: bs,
        loraName: sequence.loraName,
        medium: "GPU",
      });
      this.counters.blocksStored += run.length;
      run = [];
    };
    for (let i = sequence.numCachedBlocks; i < upTo; i++) {
      const hash = sequence.blockHash(i);
      if (this.pool.store(sequence.blocks[i]!, hash)) {
        if (run.length === 0) runStart = i;
        run.push(hash);
      } else {
        emitRun();
      }
    }
    emitRun();
    sequence.numCachedBlocks = Math.max(sequence.numCachedBlocks, upTo);
  }

  private recordCached(sequence: Sequence, cachedTokens: number): void {
    sequence.cachedTokens = cachedTokens;
    this.counters.promptTokens += sequence.promptLen;
    this.counters.cachedTokens += cachedTokens;
    if (sequence.overlapBlocks !== null) {
      this.counters.requestsWithOverlap++;
      this.counters.routerOverlapTokens += sequence.overlapBlocks * this.options.blockSize;
      this.counters.cachedTokensWithOverlap += cachedTokens;
    }
  }

  private preempt(sequence: Sequence): void {
    this.releaseBlocks(sequence);
    sequence.numComputed = 0;
    sequence.numCachedBlocks = 0;
    sequence.preemptions++;
    this.counters.preemptions++;
    this.waiting.unshift(sequence);
  }

  private releaseBlocks(sequence: Sequence): void {
    // Tail first, so the request's last blocks are the first of them to be evicted.
    this.pool.release([...sequence.blocks].reverse());
    sequence.blocks = [];
  }

  private sample(sequence: Sequence): CoreOutput | null {
    const { limits } = sequence;
    const eosAllowed = !limits.ignoreEos && sequence.outputs >= limits.minTokens;
    const { tokenId, logprobs } = sampleToken(sequence.rng, this.options.eosProbability, eosAllowed, limits.topLogprobs);
    sequence.tokens.push(tokenId);
    sequence.outputs++;
    this.counters.generationTokens++;

    let finish: CoreFinish["finishReason"] | null = null;
    let stopReason: string | number | null = null;
    let text = "";
    if (tokenId === EOS_TOKEN_ID) {
      finish = "stop";
    } else if (limits.stopTokenIds.has(tokenId) && sequence.outputs > limits.minTokens) {
      finish = "stop";
      stopReason = tokenId;
    } else {
      const checked = sequence.stop.push(wordOf(tokenId));
      text = checked.emit;
      if (checked.stopped !== null) {
        finish = "stop";
        stopReason = checked.stopped;
      }
    }
    if (finish === null && sequence.outputs >= limits.maxTokens) finish = "length";

    const output: CoreOutput = { id: sequence.id, tokenIds: [tokenId], text };
    if (logprobs) output.logprobs = [logprobs];
    if (finish !== null) {
      if (stopReason === null || typeof stopReason === "number") output.text += sequence.stop.flush();
      output.finish = {
        finishReason: finish,
        stopReason,
        usage: { promptTokens: sequence.promptLen, completionTokens: sequence.outputs, cachedTokens: Math.max(0, sequence.cachedTokens) },
      };
      this.complete(sequence);
    }
    return output;
  }

  private complete(sequence: Sequence): void {
    this.running = this.running.filter((s) => s !== sequence);
    this.releaseBlocks(sequence);
    this.sequences.delete(sequence.id);
    this.counters.requestsFinished++;
    if (this.log) {
      const bs = this.options.blockSize;
      const overlap = sequence.overlapBlocks === null ? "none" : `${sequence.overlapBlocks} blocks (${sequence.overlapBlocks * bs} tokens)`;
      this.log(
        "info",
        `request ${sequence.routerRequestId ?? sequence.id}: prompt ${sequence.promptLen} tokens, cached ${sequence.cachedTokens}, ` +
          `router overlap_blocks ${overlap}, output ${sequence.outputs} tokens, preempted ${sequence.preemptions}x`,
      );
    }
  }

  private flushEvents(): void {
    if (this.pendingEvents.length === 0) return;
    const batch = this.pendingEvents;
    this.pendingEvents = [];
    this.sink?.(batch);
  }
}
