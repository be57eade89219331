// A preparation pool thread: tokenizer, hashing kernel and a reader of the shared prefix index, loaded
// once per thread when the pool starts.
import { move, transferableSymbol, valueSymbol, workerData } from "piscina";
import { createBlockHasher } from "./hashing/index.js";
import { PrefixIndex, type PrefixIndexShared } from "../kv-index/prefix-index/index.js";
import { loadTokenizer } from "./tokenize/index.js";
import type { BatchItem } from "./batcher.js";
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

/** Hands a batch's results back to the main thread, their arrays by transfer rather than by copy. */
class Transfer {
  constructor(private readonly items: BatchItem<PrepareResult>[]) {}
  get [transferableSymbol](): ArrayBuffer[] {
    const buffers: ArrayBuffer[] = [];
    for (const item of this.items) {
      if (item.ok && item.value.ok) buffers.push(item.value.tokens.buffer as ArrayBuffer, item.value.hashes.buffer as ArrayBuffer, item.value.overlaps.buffer as ArrayBuffer);
    }
    return buffers;
  }
  get [valueSymbol](): BatchItem<PrepareResult>[] {
    return this.items;
  }
}

/** One prompt of a batch; a failure of one (a bug, not bad input: that is a PrepareRejected) fails only it. */
function prepareOne(task: PrepareTask): BatchItem<PrepareResult> {
  try {
    return { ok: true, value: preparer.prepare(task) };
  } catch (err) {
    return { ok: false, error: `preparing the prompt failed: ${(err as Error).message}` };
  }
}

export default function run(task: { batch: PrepareTask[] } | { describe: true }): unknown {
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
  return move(new Transfer(task.batch.map(prepareOne)));
}
