import type { BlockHasher } from "./hashing/index.js";
import type { TextTokenizer } from "./tokenize/index.js";
import type { PrepareResult, PrepareTask } from "./tasks.js";

/** What preparation reads from the prefix index. */
export interface OverlapReader {
  readonly maxEngines: number;
  overlaps(hashes: BigUint64Array, out?: Uint32Array): Uint32Array;
}

/**
 * The CPU work before routing, the same in a pool thread and (for short token-id prompts) on the main
 * thread: tokenize or render the chat, check ids against the vocabulary, hash the blocks in one kernel
 * call, and read every engine's overlap from the shared index.
 */
export class Preparer {
  #hashes = new BigUint64Array(1024);

  constructor(
    private readonly hasher: BlockHasher,
    private readonly index: OverlapReader,
    private readonly vocabSize: number,
    /** Null on the main thread, which only prepares token-id prompts. */
    private readonly tokenizer: TextTokenizer | null,
  ) {}

  prepare(task: PrepareTask): PrepareResult {
    const t0 = performance.now();
    let tokens: Uint32Array;
    const input = task.input;
    if (input.kind === "tokens") {
      tokens = input.tokens;
      const bad = firstOutOfVocabulary(tokens, this.vocabSize);
      if (bad >= 0) {
        return {
          ok: false,
          param: "prompt",
          code: "invalid_token_id",
          message: `token id ${tokens[bad]} at position ${bad} is outside the model's vocabulary (ids 0 to ${this.vocabSize - 1})`,
        };
      }
    } else {
      const tokenizer = this.tokenizer;
      if (!tokenizer) throw new Error("text prompts must be prepared where the tokenizer is loaded");
      if (input.kind === "text") {
        tokens = tokenizer.encode(input.text);
      } else {
        if (!tokenizer.hasChatTemplate) {
          return { ok: false, param: "messages", code: "no_chat_template", message: `the model's tokenizer (${tokenizer.source}) has no chat template` };
        }
        try {
          tokens = tokenizer.encodeChat(input.messages, input.templateKwargs);
        } catch (err) {
          return { ok: false, param: "messages", code: "chat_template_error", message: `the chat template could not render these messages: ${(err as Error).message}` };
        }
      }
    }
    const t1 = performance.now();
    const blocks = Math.floor(tokens.length / task.blockSize);
    if (this.#hashes.length < blocks) this.#hashes = new BigUint64Array(Math.max(blocks, this.#hashes.length * 2));
    const hashes = this.hasher.hashBlocks(tokens, task.blockSize, task.seed, this.#hashes);
    const t2 = performance.now();
    // A fresh array: it leaves this thread with the result.
    const overlaps = this.index.overlaps(hashes, new Uint32Array(this.index.maxEngines));
    const t3 = performance.now();
    return {
      ok: true,
      tokens,
      blocks,
      // A copy: the reused array is overwritten by the next prompt, and this one may be recorded later
      // (approximate mode records a prompt's hashes for the engine it is sent to).
      hashes: hashes.slice(),
      overlaps,
      timings: { tokenize: (t1 - t0) / 1000, hash: (t2 - t1) / 1000, index: (t3 - t2) / 1000 },
    };
  }
}

function firstOutOfVocabulary(tokens: Uint32Array, vocabSize: number): number {
  for (let i = 0; i < tokens.length; i++) if (tokens[i]! >= vocabSize) return i;
  return -1;
}
