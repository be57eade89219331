// A generated workload for when no trace is at hand: groups of prompts that share a system prompt, each
// followed by a question of its own, arriving as a seeded Poisson process in a seeded random group order.
import { emptyReport, type TraceRecord, type TraceReport, type TraceSource } from "./types.js";

export interface SharedPrefixOptions {
  /** Number of distinct system prompts; default 8. */
  groups?: number;
  /** Prompts per system prompt; default 32. */
  promptsPerGroup?: number;
  /** System prompt length in tokens; its full blocks are what a group shares. Default 2048. */
  systemTokens?: number;
  /** Question length in tokens, unique to each prompt; default 256. */
  userTokens?: number;
  /** Tokens to generate per request; default 128. */
  outputTokens?: number;
  /** Mean arrivals per second (exponential gaps); 0 sends everything at time 0. Default 8. */
  ratePerSec?: number;
  /** Block size the generated `hashIds` refer to; default 16 (vLLM's). */
  blockSize?: number;
  /** Seed of the group order and arrival gaps; default 1. */
  seed?: number;
}

/**
 * Generated block ids start here, far above the ids of recorded traces (Mooncake's are below 2^18), so a
 * generated run and a recorded one never name the same block.
 */
export const GENERATED_ID_BASE = 2 ** 40;

const DEFAULTS: Required<SharedPrefixOptions> = {
  groups: 8,
  promptsPerGroup: 32,
  systemTokens: 2048,
  userTokens: 256,
  outputTokens: 128,
  ratePerSec: 8,
  blockSize: 16,
  seed: 1,
};

/** Keys of the `--generate` spec and the option each sets. */
const SPEC_KEYS: Record<string, keyof SharedPrefixOptions> = {
  groups: "groups",
  prompts: "promptsPerGroup",
  system: "systemTokens",
  user: "userTokens",
  output: "outputTokens",
  rate: "ratePerSec",
  block: "blockSize",
  seed: "seed",
};

/** Parses `groups=8,prompts=32,system=2048,user=256,output=128,rate=8,block=16,seed=1` (any subset; "" for all defaults). */
export function parseWorkloadSpec(spec: string): SharedPrefixOptions {
  const options: SharedPrefixOptions = {};
  for (const part of spec.split(",").map((p) => p.trim()).filter((p) => p !== "" && p !== "default")) {
    const [key = "", value, extra] = part.split("=");
    const option = SPEC_KEYS[key.trim()];
    if (option === undefined || value === undefined || extra !== undefined) {
      throw new Error(`workload spec: ${JSON.stringify(part)} is not key=value with a key among ${Object.keys(SPEC_KEYS).join(", ")}`);
    }
    const number = Number(value);
    if (value.trim() === "" || !Number.isFinite(number)) throw new Error(`workload spec: ${key} must be a number, got ${JSON.stringify(value)}`);
    options[option] = number;
  }
  return options;
}

function checked(options: SharedPrefixOptions): Required<SharedPrefixOptions> {
  const o = { ...DEFAULTS, ...options };
  const integer = (name: keyof SharedPrefixOptions, min: number) => {
    const v = o[name];
    if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`shared-prefix workload: ${name} must be an integer of at least ${min}, got ${v}`);
  };
  integer("groups", 1);
  integer("promptsPerGroup", 1);
  integer("systemTokens", 0);
  integer("userTokens", 0);
  integer("outputTokens", 0);
  integer("blockSize", 1);
  integer("seed", 0);
  if (o.systemTokens + o.userTokens < 1) throw new RangeError("shared-prefix workload: systemTokens + userTokens must be at least 1");
  if (!(o.ratePerSec >= 0) || !Number.isFinite(o.ratePerSec)) throw new RangeError(`shared-prefix workload: ratePerSec must be a finite number of at least 0, got ${o.ratePerSec}`);
  return o;
}

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

export function sharedPrefixWorkload(options: SharedPrefixOptions = {}): TraceSource {
  const o = checked(options);
  const total = o.groups * o.promptsPerGroup;
  const inputLength = o.systemTokens + o.userTokens;
  const sharedBlocks = Math.floor(o.systemTokens / o.blockSize);
  const blocks = Math.ceil(inputLength / o.blockSize);
  let produced = 0;
  const source: TraceSource & { report: TraceReport } = {
    format: "shared-prefix",
    blockSize: o.blockSize,
    name: `shared-prefix workload (${o.groups} groups x ${o.promptsPerGroup} prompts, ${o.systemTokens} + ${o.userTokens} tokens in, ${o.outputTokens} out, ${o.ratePerSec}/s, seed ${o.seed})`,
    report: emptyReport("shared-prefix"),
    progress: () => (total === 0 ? 1 : produced / total),
    async *[Symbol.asyncIterator](): AsyncGenerator<TraceRecord> {
      const report = (source.report = emptyReport("shared-prefix"));
      const rand = random(o.seed);
      const order = Array.from({ length: total }, (_, i) => Math.floor(i / o.promptsPerGroup));
      for (let i = total - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      let nextUnique = GENERATED_ID_BASE + o.groups * sharedBlocks;
      let timeMs = 0;
      for (produced = 0; produced < total; ) {
        const group = order[produced]!;
        const hashIds = new Array<number>(blocks);
        for (let b = 0; b < blocks; b++) hashIds[b] = b < sharedBlocks ? GENERATED_ID_BASE + group * sharedBlocks + b : nextUnique++;
        if (produced > 0 && o.ratePerSec > 0) timeMs += (-Math.log(1 - rand()) / o.ratePerSec) * 1000;
        produced++;
        report.records++;
        yield { line: produced, timestampMs: timeMs, inputLength, outputLength: o.outputTokens, hashIds };
      }
    },
  };
  return source;
}
