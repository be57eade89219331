// A preparation pool thread: tokenizer, hashing kernel and a reader of the shared prefix index, loaded
// once per thread when the pool starts. It runs several tasks at once (see pool.ts): batches of small
// prompts, and big prompts that yield between slices of their tokenizing and stop at the next slice once
// their cancel flag is set.
import { move, transferableSymbol, valueSymbol, workerData } from "piscina";
import { createBlockHasher } from "./hashing/index.js";
import { PrefixIndex, type PrefixIndexShared } from "../kv-index/prefix-index/index.js";
import { loadTokenizer, type SpecialTokensInContent } from "./tokenize/index.js";
import type { BatchItem } from "./batcher.js";
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

/** Hands results back to the main thread (a batch's, or one), their arrays by transfer rather than by copy. */
class Transfer<V> {
  constructor(
    private readonly value: V,
    private readonly results: PrepareResult[],
  ) {}
  get [transferableSymbol](): ArrayBuffer[] {
    const buffers: ArrayBuffer[] = [];
    for (const r of this.results) if (r.ok) buffers.push(r.tokens.buffer as ArrayBuffer, r.hashes.buffer as ArrayBuffer, r.overlaps.buffer as ArrayBuffer);
    return buffers;
  }
  get [valueSymbol](): V {
    return this.value;
  }
}

/** One prompt of a batch; a failure of one (a bug, not bad input: that is a PrepareRejected) fails only it. */
async function prepareOne(task: PrepareTask): Promise<BatchItem<PrepareResult>> {
  try {
    return { ok: true, value: await preparer.prepare(task) };
  } catch (err) {
    return { ok: false, error: `preparing the prompt failed: ${(err as Error).message}` };
  }
}

/**
 * A batch of prompts of at most a slice each, or one bigger prompt, which the thread tokenizes a slice at a
 * time between other tasks and stops when its `cancel` flag is set.
 */
export default async function run(task: { batch: PrepareTask[] } | PrepareTask | { describe: true }): Promise<unknown> {
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
  if ("batch" in task) {
    const items: BatchItem<PrepareResult>[] = [];
    for (const one of task.batch) items.push(await prepareOne(one));
    return move(new Transfer(items, items.flatMap((item) => (item.ok ? [item.value] : []))));
  }
  const flag = task.cancel === null ? null : new Int32Array(task.cancel);
  const result = await preparer.prepare(task, flag === null ? undefined : () => Atomics.load(flag, 0) !== 0);
  return move(new Transfer(result, [result]));
}
