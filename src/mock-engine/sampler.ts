// Deterministic output tokens: a request's tokens depend only on the simulator's seed, the request's seed
// and its prompt, so a replay gives the same output whichever engine serves it.
import type { TokenLogprobs } from "../engine-protocol/index.js";

/** Token ids the simulator generates stay below Qwen3's 151,643 regular tokens. */
export const GENERATED_VOCAB = 151_643;
/** Qwen3's <|im_end|>, the simulator's end-of-sequence token. */
export const EOS_TOKEN_ID = 151_645;

/** xoshiro128** : small, fast, and good enough for made-up tokens. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    // splitmix32 spreads one 32-bit seed over the four words of state.
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next() | 1;
  }

  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** A uniform number in [0, 1). */
  nextFloat(): number {
    return this.nextU32() / 0x1_0000_0000;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** FNV-1a over the seeds and the prompt's token ids. */
export function requestSeed(simSeed: number, seed: number | undefined, prompt: readonly number[]): number {
  let h = 0x811c9dc5;
  const mix = (v: number): void => {
    h = Math.imul(h ^ (v >>> 0), 0x01000193);
  };
  mix(simSeed);
  mix(seed ?? 0);
  mix(Math.floor((seed ?? 0) / 0x1_0000_0000));
  for (const t of prompt) mix(t);
  return h >>> 0;
}

export interface SampledToken {
  tokenId: number;
  logprobs: TokenLogprobs | null;
}

/** Samples one token; `eos` says whether this step may end the sequence. */
export function sampleToken(rng: Rng, eosProbability: number, eosAllowed: boolean, topLogprobs: number | null): SampledToken {
  const isEos = eosAllowed && eosProbability > 0 && rng.nextFloat() < eosProbability;
  const tokenId = isEos ? EOS_TOKEN_ID : rng.nextU32() % GENERATED_VOCAB;
  if (topLogprobs === null) return { tokenId, logprobs: null };
  // Made-up but well-formed: the sampled token's logprob, then alternatives with lower ones.
  let lp = -rng.nextFloat() * 2;
  const pairs: TokenLogprobs = [[tokenId, lp]];
  for (let i = 0; i < topLogprobs; i++) {
    lp -= rng.nextFloat() * 2;
    pairs.push([rng.nextU32() % GENERATED_VOCAB, lp]);
  }
  return { tokenId, logprobs: pairs };
}
