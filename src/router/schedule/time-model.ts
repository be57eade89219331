// Predicted time on an engine, learned online from what the router observes of its own requests.
//
// The model of one engine (vLLM's scheduler: continuous batching, chunked prefill, first come first
// served). A step computes up to C tokens (max_num_batched_tokens): one for each of the D decoding
// sequences, the rest for prefills in arrival order. It takes
//     step(D, B) + p × (prefill tokens in the step),    step(D, B) = s + d·D + k·B
// where B is the KV blocks the decoding sequences hold (attention reads them all). A request whose
// uncached prompt is U tokens, queued behind Q prefill tokens, has its first token after
//     n = ceil((Q + U) / (C − D)) steps:    TTFT = a + p·(Q + U) + n·step(D, B)
// and waits for a batch slot first when the engine already runs max_num_seqs requests.
//
// Each engine's figures are learned from its own requests, robustly:
// - the step: gaps between tokens, against the prior's step(D, B), give a factor by which this engine's
//   steps are slower or faster than the prior's. The factor follows the median of the ratio, in log
//   space, with each observation's pull capped: a gap that held a prefill chunk, or a preemption, is an
//   outlier that moves it by no more than any other gap.
// - the prefill (a, p): a robust running linear fit (robust-fit.ts) of the TTFTs with the modelled step
//   part taken out, against the tokens to compute.
// - the KV transfer (disaggregated serving): a decode engine's first token after a transfer comes once the
//   blocks it lacked have arrived and one step has run. What its TTFT holds beyond the modelled step and
//   queue is fitted, robustly, against the blocks transferred: a time per block, which stands for the
//   link's bandwidth without the router being told it.
// Every engine starts from the same prior, so a slower engine is found slower without being named.
import { RobustFit } from "./robust-fit.js";

/** What the model needs to know of an engine's load at a decision, and of the request. */
export interface TimeFeatures {
  /** Prompt tokens queued or being computed ahead of this request (Q). */
  queuedTokens: number;
  /** This request's prompt tokens the engine does not hold (U). */
  uncachedTokens: number;
  /** Sequences decoding on the engine (D). */
  decoding: number;
  /** KV blocks the decoding sequences hold (B). */
  decodeBlocks: number;
  /** Requests in flight on the engine, prefilling or decoding. */
  requests: number;
}

/** Time parameters of an engine; the prior every engine starts from. */
export interface EngineTiming {
  /** a: time to a first token besides the steps (ms): sampling, transport, detokenizing. */
  firstTokenMs: number;
  /** p: per prompt token computed (ms). */
  prefillMsPerToken: number;
  /** s: per step (ms): reading the weights, scheduling. */
  stepMs: number;
  /** d: per sequence decoding in the step (ms). */
  decodeMsPerSeq: number;
  /** k: per KV block the decoding sequences hold (ms). */
  msPerKvBlock: number;
}

export interface TimeModelOptions {
  prior: EngineTiming;
  /** Tokens an engine computes per step: vLLM's max_num_batched_tokens (default 8192). */
  maxBatchedTokens?: number;
  /** Sequences an engine runs at once: vLLM's max_num_seqs (default 256). */
  maxNumSeqs?: number;
  /** The prior time to receive one KV block from a prefill engine, ms (default DEFAULT_TRANSFER_MS_PER_BLOCK). */
  transferMsPerBlock?: number;
}

/**
 * The default prior: one step and one prompt token as an H100 serving an 8B model in bf16 takes them
 * (6 ms to read the weights, 25,000 prompt tokens/s; see the policy simulator's engine settings). Only
 * a starting point: each engine's own figures replace it as its requests come back.
 */
export const DEFAULT_PRIOR: EngineTiming = {
  firstTokenMs: 5,
  prefillMsPerToken: 0.04,
  stepMs: 6,
  decodeMsPerSeq: 0.03,
  msPerKvBlock: 0.0008,
};

/** vLLM's default max_num_batched_tokens for online serving on large GPUs. */
export const DEFAULT_MAX_BATCHED_TOKENS = 8192;

/**
 * The default prior for a KV transfer: a 2 MiB block (16 tokens of an 8B model in bf16) over a 400 Gb/s
 * link at about 80% of its rate (40 GB/s) takes 0.05 ms.
 */
export const DEFAULT_TRANSFER_MS_PER_BLOCK = 0.05;

// Tokens are counted in thousands in the prefill fit, so its two parameters are of similar size; blocks in
// the transfer fit likewise.
const TOKENS = 1000;
const BLOCKS = 1000;

/** How far one gap moves the step factor's log (the median it tracks is reached within a few hundred gaps). */
const STEP_RATE = 0.01;
/** The most one gap's log-ratio counts for: larger ones are outliers. */
const STEP_CLIP = 0.5;
/**
 * The least a prompt token is taken to cost, as a share of the prior's p. A fit below it means the engine's
 * first tokens carry no sign of the prompt's size (an engine that answers without computing, or noise
 * larger than the compute): no GPU computes tokens a thousand times faster than the prior's. Without the
 * floor such a fit makes a cached prefix worth nothing, or less than nothing, and the cost would stop
 * preferring the engine that holds it.
 */
const MIN_PREFILL_SHARE = 1e-3;

export class EngineTimeModel {
  readonly #prior: EngineTiming;
  /** log of this engine's step time over the prior's. */
  #logStepFactor = 0;
  #gaps = 0;
  readonly #prefill: RobustFit;
  readonly #transfer: RobustFit;
  readonly #maxBatchedTokens: number;
  readonly #maxNumSeqs: number;
  /** The floor of p, per TOKENS tokens (MIN_PREFILL_SHARE of the prior's). */
  readonly #minPrefillPerTokens: number;
  readonly #x2 = new Float64Array(2);
  readonly #x1 = new Float64Array(1);

  constructor(o: TimeModelOptions) {
    const p = o.prior;
    this.#prior = { ...p };
    this.#maxBatchedTokens = o.maxBatchedTokens ?? DEFAULT_MAX_BATCHED_TOKENS;
    this.#maxNumSeqs = o.maxNumSeqs ?? 256;
    if (!(p.stepMs > 0)) throw new RangeError(`the prior's stepMs must be above 0, got ${p.stepMs}`);
    this.#minPrefillPerTokens = MIN_PREFILL_SHARE * p.prefillMsPerToken * TOKENS;
    // Variances: the prior may be off by about its own size (a factor of a few in either direction).
    this.#prefill = new RobustFit({
      prior: [p.firstTokenMs, p.prefillMsPerToken * TOKENS],
      priorVariance: [Math.max(sq(p.firstTokenMs), 1), sq(p.prefillMsPerToken * TOKENS)],
      lambda: 0.995,
      scale: 10 * p.stepMs,
    });
    const t = (o.transferMsPerBlock ?? DEFAULT_TRANSFER_MS_PER_BLOCK) * BLOCKS;
    if (!(t >= 0 && Number.isFinite(t))) throw new RangeError(`transferMsPerBlock must be a number of at least 0, got ${o.transferMsPerBlock}`);
    // The link may be an order of magnitude off the prior either way (NVLink, RDMA, plain TCP).
    this.#transfer = new RobustFit({ prior: [t], priorVariance: [Math.max(sq(3 * t), 1)], lambda: 0.995, scale: 10 * p.stepMs });
  }

  /** The fitted parameters now. */
  get timing(): EngineTiming {
    const f = Math.exp(this.#logStepFactor);
    const [a, p] = this.#prefill.theta as [number, number];
    const prior = this.#prior;
    return { firstTokenMs: a, prefillMsPerToken: p / TOKENS, stepMs: prior.stepMs * f, decodeMsPerSeq: prior.decodeMsPerSeq * f, msPerKvBlock: prior.msPerKvBlock * f };
  }

  /** The fitted time to receive one KV block from a prefill engine (ms). */
  get transferMsPerBlock(): number {
    return this.#transfer.at(0) / BLOCKS;
  }

  /** Observations taken: TTFTs, gaps, and first tokens after a KV transfer. */
  get observations(): { ttft: number; gaps: number; transfers: number } {
    return { ttft: this.#prefill.count, gaps: this.#gaps, transfers: this.#transfer.count };
  }

  /** One decode step's time with D sequences decoding over B blocks (no prefill in it). */
  stepTime(decoding: number, decodeBlocks: number): number {
    return Math.exp(this.#logStepFactor) * this.#priorStep(decoding, decodeBlocks);
  }

  /** Steps until a request's prefill completes: its tokens and those ahead, at C − D tokens a step. */
  steps(f: TimeFeatures): number {
    const perStep = this.#promptTokensPerStep(f.decoding);
    return Math.max(1, Math.ceil((f.queuedTokens + f.uncachedTokens) / perStep));
  }

  /** Predicted TTFT (ms) of a request with these features. */
  ttft(f: TimeFeatures): number {
    const step = this.stepTime(f.decoding, f.decodeBlocks);
    const x = this.#prefillX(f);
    const prefill = this.#prefill.at(0) * x[0]! + this.#prefillPerTokens() * x[1]!;
    // Past max_num_seqs a request waits for a running one to finish: about a step per request beyond it.
    const slotWait = Math.max(0, f.requests + 1 - this.#maxNumSeqs) * step;
    return prefill + this.steps(f) * step + slotWait;
  }

  /** Time to receive `blocks` KV blocks from a prefill engine (ms). */
  transferTime(blocks: number): number {
    return this.#transfer.at(0) * (blocks / BLOCKS);
  }

  /**
   * A decode request's first token came `ttftMs` after it was sent, with these features (its own uncached
   * part being what it computes after the transfer) and `blocks` blocks to receive.
   */
  observeTransfer(f: TimeFeatures, blocks: number, ttftMs: number): void {
    if (blocks <= 0) return;
    this.#x1[0] = blocks / BLOCKS;
    this.#transfer.observe(this.#x1, ttftMs - this.ttft(f));
  }

  /** The engine time a request's uncached prompt takes to compute (p × U). */
  prefillTime(f: TimeFeatures): number {
    return this.prefillMsPerToken * f.uncachedTokens;
  }

  /**
   * What this request's prefill adds to the first tokens of the `queuedRequests` prefills booked ahead of it
   * (ms). A step's token budget is filled in arrival order, so the step that ends the queue carries the head
   * of this prompt too, and every request whose prompt ends in that step waits for it: all the queued ones
   * when the queue fits in one step, else the last of them.
   */
  sharedStepDelay(f: TimeFeatures, queuedRequests: number): number {
    if (queuedRequests <= 0 || f.queuedTokens <= 0) return 0;
    const perStep = this.#promptTokensPerStep(f.decoding);
    const last = f.queuedTokens % perStep;
    // A queue that ends on a full step leaves no room in it: this prompt starts in the next one.
    if (last === 0) return 0;
    const shared = Math.min(f.uncachedTokens, perStep - last);
    return this.prefillMsPerToken * shared * (f.queuedTokens <= perStep ? queuedRequests : 1);
  }

  /** Whether the prefill queued ahead (Q) ends within `steps` steps. */
  queueEndsWithin(f: TimeFeatures, steps: number): boolean {
    return f.queuedTokens <= steps * this.#promptTokensPerStep(f.decoding);
  }

  /** The fitted time per prompt token computed (p, ms), at least its floor. */
  get prefillMsPerToken(): number {
    return this.#prefillPerTokens() / TOKENS;
  }

  /** A first token came `ttftMs` after the request was sent, with these features at the time. */
  observeTtft(f: TimeFeatures, ttftMs: number): void {
    const stepPart = this.steps(f) * this.stepTime(f.decoding, f.decodeBlocks);
    this.#prefill.observe(this.#prefillX(f), ttftMs - stepPart);
  }

  /** A token came `gapMs` after the request's previous one, with D sequences decoding over B blocks. */
  observeGap(decoding: number, decodeBlocks: number, gapMs: number): void {
    if (!(gapMs > 0 && Number.isFinite(gapMs))) return;
    const error = Math.log(gapMs / this.stepTime(decoding, decodeBlocks));
    this.#logStepFactor += STEP_RATE * Math.max(-STEP_CLIP, Math.min(STEP_CLIP, error));
    this.#gaps++;
  }

  /** Prompt tokens a step has room for beside D decoding sequences: C − D, at least 1. */
  #promptTokensPerStep(decoding: number): number {
    return Math.max(1, this.#maxBatchedTokens - Math.min(decoding, this.#maxNumSeqs));
  }

  #priorStep(decoding: number, decodeBlocks: number): number {
    const p = this.#prior;
    return p.stepMs + p.decodeMsPerSeq * decoding + p.msPerKvBlock * decodeBlocks;
  }

  /** The fitted p per TOKENS tokens, at least its floor. */
  #prefillPerTokens(): number {
    return Math.max(this.#prefill.at(1), this.#minPrefillPerTokens);
  }

  #prefillX(f: TimeFeatures): Float64Array {
    const x = this.#x2;
    x[0] = 1;
    x[1] = (f.queuedTokens + f.uncachedTokens) / TOKENS;
    return x;
  }
}

function sq(v: number): number {
  return v * v;
}
