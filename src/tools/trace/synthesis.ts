// Deterministic prompts for traces that carry lengths and block ids but no text.
//
// Block id `id` always becomes the same `blockSize` token ids, computed from the id (and the seed) alone with
// 32-bit integer arithmetic, so equal ids give equal tokens in every run, process and machine, and a prefix
// cache sees exactly the reuse the trace recorded. A record without ids gets a prompt of its own, derived
// from its line number in a separate domain, so it shares no prefix with any other prompt.
import type { TraceRecord } from "./types.js";

/** Qwen3's ordinary vocabulary: ids 0..151642. Its special tokens start at 151643 and are never produced. */
export const QWEN3_VOCAB_SIZE = 151_643;
export const DEFAULT_BLOCK_SIZE = 512;

export interface PromptSynthesisOptions {
  /** Tokens per block id; the block size of the trace's `hashIds` (512 for Mooncake). Default 512. */
  blockSize?: number;
  /** Token ids are below this; default Qwen3's 151,643, which keeps clear of its special tokens. */
  vocabSize?: number;
  /** Token ids are at least this; default 0. Raise it for tokenizers whose special tokens come first. */
  lowestTokenId?: number;
  /** 0..2^32-1, default 0. Another seed gives other tokens for every id: prompts no earlier run has cached. */
  seed?: number;
}

export type PromptSynthesizer = (record: TraceRecord) => Uint32Array;

const GOLDEN = 0x9e3779b9;
const TWO_32 = 2 ** 32;
/** Key domains: block ids and per-record prompts never name the same sequence. */
const BLOCK_DOMAIN = 1;
const UNIQUE_DOMAIN = 2;

/** MurmurHash3's 32-bit finalizer: a bijection on u32 with full avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

interface Range {
  lowest: number;
  span: number;
  seedMix: number;
}

/**
 * Writes `count` tokens of the sequence named by (domain, id) into `out` at `at`. The id's low 32 bits go
 * through a bijection, so ids below 2^32 never share a sequence; the high bits, the domain and the seed
 * make a second key.
 */
function fill(out: Uint32Array, at: number, count: number, id: number, domain: number, range: Range): void {
  const lo = id % TWO_32;
  const hi = Math.floor(id / TWO_32);
  const k1 = fmix32((lo ^ range.seedMix) >>> 0);
  const k2 = fmix32((hi + Math.imul(domain, GOLDEN)) ^ ((range.seedMix << 16) | (range.seedMix >>> 16)));
  for (let j = 0; j < count; j++) {
    out[at + j] = range.lowest + (fmix32(fmix32((k1 + Math.imul(j, GOLDEN)) >>> 0) ^ k2) % range.span);
  }
}

function checkInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`prompt synthesis: ${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
}

function rangeOf(options: PromptSynthesisOptions): Range {
  const { vocabSize = QWEN3_VOCAB_SIZE, lowestTokenId = 0, seed = 0 } = options;
  checkInteger("vocabSize", vocabSize, 2, TWO_32);
  checkInteger("lowestTokenId", lowestTokenId, 0, vocabSize - 2);
  checkInteger("seed", seed, 0, TWO_32 - 1);
  return { lowest: lowestTokenId, span: vocabSize - lowestTokenId, seedMix: fmix32(seed ^ 0x5bd1e995) };
}

/** The full token block of one block id. */
export function blockTokens(id: number, options: PromptSynthesisOptions = {}): Uint32Array {
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  checkInteger("blockSize", blockSize, 1, 1 << 20);
  checkInteger("block id", id, 0, Number.MAX_SAFE_INTEGER);
  const out = new Uint32Array(blockSize);
  fill(out, 0, blockSize, id, BLOCK_DOMAIN, rangeOf(options));
  return out;
}

/**
 * A function from record to prompt token ids, `inputLength` long: the blocks of its `hashIds` in order, the
 * last cut to length; or, without `hashIds`, a prompt unique to the record's line.
 */
export function createPromptSynthesizer(options: PromptSynthesisOptions = {}): PromptSynthesizer {
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  checkInteger("blockSize", blockSize, 1, 1 << 20);
  const range = rangeOf(options);
  return (record) => {
    const { inputLength, hashIds, line } = record;
    checkInteger(`inputLength (line ${line})`, inputLength, 0, 1 << 30);
    const out = new Uint32Array(inputLength);
    if (hashIds === undefined) {
      checkInteger("line", line, 0, Number.MAX_SAFE_INTEGER);
      fill(out, 0, inputLength, line, UNIQUE_DOMAIN, range);
      return out;
    }
    if (hashIds.length !== Math.ceil(inputLength / blockSize)) {
      throw new RangeError(
        `prompt synthesis: line ${line} has ${hashIds.length} block ids, but input length ${inputLength} at block size ${blockSize} needs ${Math.ceil(inputLength / blockSize)}`,
      );
    }
    for (let b = 0; b < hashIds.length; b++) {
      const id = hashIds[b]!;
      checkInteger(`block id (line ${line})`, id, 0, Number.MAX_SAFE_INTEGER);
      const at = b * blockSize;
      fill(out, at, Math.min(blockSize, inputLength - at), id, BLOCK_DOMAIN, range);
    }
    return out;
  };
}
