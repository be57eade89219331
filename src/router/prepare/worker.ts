// A preparation pool thread: tokenizer, hashing kernel and a reader of the shared prefix index, loaded
// once per thread when the pool starts.
import { move, transferableSymbol, valueSymbol, workerData } from "piscina";
import { createBlockHasher } from "./hashing/index.js";
import { PrefixIndex, type PrefixIndexShared } from "../kv-index/prefix-index/index.js";
import { loadTokenizer } from "./tokenize/index.js";
import { Preparer } from "./preparer.js";
import type { PrepareResult, PrepareTask, TokenizerInfo } from "./tasks.js";

export interface PoolWorkerData {
  tokenizerDir: string | null;
  /** This thread's exact tokenization cache budget; 0 turns it off. */
  tokenizeCacheBytes: number;
  index: PrefixIndexShared;
}

const data = workerData as PoolWorkerData;
// Each thread has its own tokenizer, and so its own tokenization cache.
const tokenizer = await loadTokenizer(data.tokenizerDir ?? undefined, { cacheBytes: data.tokenizeCacheBytes });
const preparer = new Preparer(await createBlockHasher(), PrefixIndex.attach(data.index), tokenizer.vocabSize, tokenizer);

/** Hands the result's arrays back to the main thread by transfer rather than by copy. */
class Transfer {
  constructor(private readonly result: PrepareResult) {}
  get [transferableSymbol](): ArrayBuffer[] {
    return this.result.ok ? [this.result.tokens.buffer as ArrayBuffer, this.result.hashes.buffer as ArrayBuffer, this.result.overlaps.buffer as ArrayBuffer] : [];
  }
  get [valueSymbol](): PrepareResult {
    return this.result;
  }
}

export default function run(task: PrepareTask | { describe: true }): unknown {
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
  return move(new Transfer(preparer.prepare(task)));
}
