// A preparation pool thread: tokenizer, hashing kernel and a reader of the shared prefix index, loaded
// once per thread when the pool starts. It runs several tasks at once (see pool.ts): each big one yields
// between slices of its tokenizing, and stops at the next slice once its cancel flag is set.
import { move, transferableSymbol, valueSymbol, workerData } from "piscina";
import { createBlockHasher } from "./hashing/index.js";
import { PrefixIndex, type PrefixIndexShared } from "../kv-index/prefix-index/index.js";
import { loadTokenizer, type SpecialTokensInContent } from "./tokenize/index.js";
import { Preparer } from "./preparer.js";
import type { PrepareResult, PrepareTask, TokenizerInfo } from "./tasks.js";

export interface PoolWorkerData {
  tokenizerDir: string | null;
  /** This thread's exact tokenization cache budget; 0 turns it off. */
  tokenizeCacheBytes: number;
  specialTokensInContent: SpecialTokensInContent;
  index: PrefixIndexShared;
}

const data = workerData as PoolWorkerData;
// Each thread has its own tokenizer, and so its own tokenization cache.
const tokenizer = await loadTokenizer(data.tokenizerDir ?? undefined, { cacheBytes: data.tokenizeCacheBytes, specialTokensInContent: data.specialTokensInContent });
const preparer = new Preparer(await createBlockHasher(), PrefixIndex.attach(data.index), tokenizer.vocabSize, tokenizer);

/** Hands the result's arrays back to the main thread by transfer rather than by copy. */
class Transfer {
  constructor(private readonly result: PrepareResult) {}
  get [transferableSymbol](): ArrayBuffer[] {
    return this.result.ok ? [this.result.tokens.buffer as ArrayBuffer, this.result.overlaps.buffer as ArrayBuffer] : [];
  }
  get [valueSymbol](): PrepareResult {
    return this.result;
  }
}

export default async function run(task: PrepareTask | { describe: true }): Promise<unknown> {
  if ("describe" in task) {
    const info: TokenizerInfo = {
      source: tokenizer.source,
      vocabSize: tokenizer.vocabSize,
      modelMaxLength: tokenizer.modelMaxLength,
      hasChatTemplate: tokenizer.hasChatTemplate,
      encoder: tokenizer.encoder,
      cache: tokenizer.cache,
    };
    return info;
  }
  const flag = task.cancel === null ? null : new Int32Array(task.cancel);
  const result = await preparer.prepare(task, flag === null ? undefined : () => Atomics.load(flag, 0) !== 0);
  return move(new Transfer(result));
}
