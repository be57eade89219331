// The simulated engine without sockets or clocks: requests go in with add(), and each step() schedules a
// batch the way vLLM's scheduler does (running requests first, then waiting ones, within max_num_seqs and
// max_num_batched_tokens, with chunked prefill and preemption), computes it in the timing model, and
// returns the step's modelled duration and outputs. KV events go to the sink, one batch per step.
//
// Disaggregated serving (kv-transfer-params.ts), the core's part, with no sockets or clock: a prefill
// request that ends at its max_tokens keeps its blocks referenced (held) until releaseHeld(); a decode
// request, when first scheduled, gets blocks for its whole prompt and waits outside the batch while a step's
// `pulls` are fetched by whoever drives the core, which then calls finishReceive(): on success the received
// blocks join the prefix cache (and the KV events) and the request computes its last prompt token; on
// failure it drops them and computes its prompt here, as vLLM's "recompute" policy does.
import type { BlockHasher } from "../router/prepare/hashing/index.js";
import type { EngineUsage, GenerateRequest, KvTransferParams, LogFn, TokenLogprobs } from "../engine-protocol/index.js";
import { BlockPool } from "./block-pool.js";
import type { KvEventSink, SimKvEvent } from "./kv-events.js";
import { heldParams, readKvTransferParams, type RemotePrefill } from "./kv-transfer-params.js";
import { EOS_TOKEN_ID, requestSeed, sampleToken } from "./sampler.js";
import { Sequence } from "./sequence.js";
import { DEFAULT_TIMING, stepDurationMs, type StepWork, type TimingModel } from "./timing.js";
import { wordOf } from "./words.js";
import { IdMap } from "../util/id-map.js";

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
  /** Names this engine in the kv_transfer_params it answers prefill requests with (default "sim"). */
  engineId?: string;
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
  /** A prefill request's blocks are held for a decode engine: where they are (see kv-transfer-params.ts). */
  kvTransferParams?: KvTransferParams;
}

/** A decode request's blocks to fetch from a prefill engine. */
export interface KvPull {
  /** The decode request (its id in this core). */
  id: number;
  from: RemotePrefill;
  /** Blocks this engine lacks: the prompt's, the partial last one included, minus its own cache hits. */
  blocks: number;
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
  /** Decode requests that started waiting for their blocks in this step. */
  pulls: KvPull[];
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
  /** Decode requests whose blocks were pulled, and of those the pulls that failed. */
  kvPulls: number;
  kvPullsFailed: number;
  /** Blocks received from prefill engines. */
  kvBlocksReceived: number;
  running: number;
  waiting: number;
  /** Decode requests waiting for their blocks. */
  receiving: number;
  /** Prefill requests whose blocks are held for a decode engine. */
  held: number;
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
  engineId: string;
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
    engineId: o.engineId ?? "sim",
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
  private readonly sequences = new IdMap<Sequence>();
  private waiting: Sequence[] = [];
  private running: Sequence[] = [];
  /** Decode requests whose blocks are on their way. */
  private readonly receiving = new Map<number, Sequence>();
  /** Finished prefill requests' blocks, held for a decode engine, by request id. */
  private readonly held = new Map<number, number[]>();
  private pulls: KvPull[] = [];
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
    kvPulls: 0,
    kvPullsFailed: 0,
    kvBlocksReceived: 0,
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
    const kv = readKvTransferParams(request.kvTransferParams);
    if (kv.kind === "invalid") this.log?.("warn", `request ${request.requestId ?? id}: kv_transfer_params not used (${kv.reason}); it runs without a KV transfer`);
    sequence.remoteDecode = kv.kind === "remote_decode";
    sequence.remotePrefill = kv.kind === "remote_prefill" ? kv.from : null;
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
    this.receiving.delete(id);
    this.releaseBlocks(sequence);
    this.sequences.delete(id);
    this.counters.requestsAborted++;
    this.flushEvents();
    return true;
  }

  /**
   * A decode request's pull ended: its blocks came (`ok`), or not, and it computes its prompt itself. False
   * when the request is not waiting for blocks (aborted meanwhile).
   */
  finishReceive(id: number, ok: boolean): boolean {
    const sequence = this.receiving.get(id);
    if (!sequence) return false;
    this.receiving.delete(id);
    if (ok) {
      // What arrived is every prompt token but the last, which is computed here (vLLM's NixlConnector).
      sequence.numComputed = sequence.tokens.length - 1;
      this.counters.kvBlocksReceived += sequence.blocks.length - sequence.numCachedBlocks;
      this.storeFullBlocks(sequence, Math.floor(sequence.numComputed / this.options.blockSize));
      this.recordCached(sequence, sequence.numComputed);
      sequence.transfer = "received";
    } else {
      this.counters.kvPullsFailed++;
      this.releaseBlocks(sequence);
      sequence.numCachedBlocks = 0;
      sequence.numComputed = 0;
      sequence.transfer = "none";
    }
    this.waiting.unshift(sequence);
    this.flushEvents();
    return true;
  }

  /** Where a decode request's blocks are to come from, while its pull has not started; else null. */
  unpulledFrom(id: number): RemotePrefill | null {
    return this.sequences.get(id)?.remotePrefill ?? null;
  }

  /** How many blocks a finished prefill request holds for a decode engine; null when none are held. */
  heldBlocks(id: number): number | null {
    return this.held.get(id)?.length ?? null;
  }

  /** Frees the blocks a finished prefill request held (pulled, or given up on); false when none were held. */
  releaseHeld(id: number): boolean {
    const blocks = this.held.get(id);
    if (!blocks) return false;
    this.held.delete(id);
    this.pool.release([...blocks].reverse());
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
    const pulls = this.pulls;
    this.pulls = [];
    return { durationMs, outputs, work, pulls };
  }

  metrics(): EngineCoreMetrics {
    return {
      ...this.counters,
      running: this.running.length,
      waiting: this.waiting.length,
      receiving: this.receiving.size,
      held: this.held.size,
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
      if (sequence.remotePrefill !== null) {
        // Its blocks are to come from a prefill engine: it waits for them outside the batch.
        if (!this.startReceiving(sequence)) break;
        this.waiting.shift();
        continue;
      }
      // A request whose blocks came by transfer has them already; it computes its last prompt token.
      const hits = sequence.transfer === "received" ? [] : this.findCachedPrefix(sequence);
      const numNew = Math.min(sequence.tokens.length - sequence.numComputed - hits.length * o.blockSize, budget);
      if (!this.allocate(sequence, numNew, hits)) break;
      if (sequence.cachedTokens < 0) this.recordCached(sequence, hits.length * o.blockSize);
      this.waiting.shift();
      this.running.push(sequence);
      scheduled.push([sequence, numNew]);
      budget -= numNew;
    }
    return scheduled;
  }

  /**
   * Gives a decode request blocks for its whole prompt (its own cache hits, and new ones for what is to come)
   * and queues the pull of the rest. False, with nothing changed, when there are too few free blocks.
   */
  private startReceiving(sequence: Sequence): boolean {
    const hits = this.findCachedPrefix(sequence);
    const needed = Math.ceil(sequence.tokens.length / this.options.blockSize) - hits.length;
    let freeHits = 0;
    for (const block of hits) if (this.pool.isFree(block)) freeHits++;
    if (needed + freeHits > this.pool.numFree) return false;
    this.pool.touch(hits);
    sequence.blocks = [...hits, ...this.pool.allocate(needed)];
    sequence.numCachedBlocks = hits.length;
    sequence.transfer = "receiving";
    this.receiving.set(sequence.id, sequence);
    this.pulls.push({ id: sequence.id, from: sequence.remotePrefill!, blocks: needed });
    sequence.remotePrefill = null;
    this.counters.kvPulls++;
    return true;
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
    sequence.transfer = "none";
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
      // As vLLM's NixlConnector: only a prefill request capped at its max_tokens holds its blocks.
      const hold = sequence.remoteDecode && finish === "length";
      if (hold) output.finish.kvTransferParams = heldParams(this.options.engineId, String(sequence.id), sequence.blocks);
      this.complete(sequence, hold);
    }
    return output;
  }

  private complete(sequence: Sequence, hold: boolean): void {
    this.running = this.running.filter((s) => s !== sequence);
    if (hold) {
      this.held.set(sequence.id, sequence.blocks);
      sequence.blocks = [];
    } else {
      this.releaseBlocks(sequence);
    }
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
