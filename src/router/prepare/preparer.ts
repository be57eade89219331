import type { BlockHasher } from "./hashing/index.js";
import { promptTooLong } from "../schedule/budget.js";
import { runPiecewise, type PiecewiseEncoding, type TextTokenizer } from "./tokenize/index.js";
import { CANCELLED, type PrepareInput, type PrepareRejected, type PrepareResult, type PrepareTask } from "./tasks.js";

/** What preparation reads from the prefix index. */
export interface OverlapReader {
  readonly maxEngines: number;
  overlaps(hashes: BigUint64Array, out?: Uint32Array): Uint32Array;
}

/**
 * Characters tokenized per slice: between two slices a pool thread turns its event loop, so other tasks
 * wait at most a slice of each big task it is running (about 2 ms at the fast encoder's speed here).
 */
export const PREPARE_SLICE_CHARS = 16_384;

type TokensInput = Extract<PrepareInput, { kind: "tokens" }>;

/**
 * The CPU work before routing, the same in a pool thread and (for short token-id prompts) on the main
 * thread: tokenize or render the chat, check ids against the vocabulary and the context length, hash the
 * blocks in one kernel call, and read every engine's overlap from the shared index.
 *
 * Invariant: no prompt is tokenized past `maxModelLen` tokens, and text and chats are tokenized a slice at
 * a time, yielding to the thread's event loop between slices and stopping once the task is cancelled.
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

  /** A token-id prompt, synchronously. */
  prepareTokens(task: PrepareTask & { input: TokensInput }): PrepareResult {
    const t0 = performance.now();
    const tokens = task.input.tokens;
    if (tokens.length >= task.maxModelLen) return tooLong(task.maxModelLen, tokens.length, true);
    const bad = firstOutOfVocabulary(tokens, this.vocabSize);
    if (bad >= 0) {
      return {
        ok: false,
        param: "prompt",
        code: "invalid_token_id",
        message: `token id ${tokens[bad]} at position ${bad} is outside the model's vocabulary (ids 0 to ${this.vocabSize - 1})`,
      };
    }
    return this.#finish(task, tokens, t0, performance.now());
  }

  /** Any prompt; text and chats are tokenized a slice at a time (see the class invariant). */
  async prepare(task: PrepareTask, isCancelled: () => boolean = () => false): Promise<PrepareResult> {
    const input = task.input;
    if (input.kind === "tokens") return this.prepareTokens({ ...task, input });
    const tokenizer = this.tokenizer;
    if (!tokenizer) throw new Error("text prompts must be prepared where the tokenizer is loaded");
    const t0 = performance.now();
    const tokenized = await tokenizePrompt(tokenizer, input, task.maxModelLen, isCancelled);
    if (!tokenized.ok) return tokenized;
    return this.#finish(task, tokenized.tokens, t0, performance.now());
  }

  #finish(task: PrepareTask, tokens: Uint32Array, t0: number, t1: number): PrepareResult {
    // Tokenizing stops past the limit; a prompt just at it is refused here, as the routing core would.
    if (tokens.length >= task.maxModelLen) return tooLong(task.maxModelLen, tokens.length, true);
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

/**
 * A text or chat prompt's token ids, tokenized a slice at a time (yielding to the thread's event loop
 * between slices) and never past `maxModelLen` tokens; a chat the template cannot render, a prompt too long
 * for the context, or `isCancelled` turning true ends it with a rejection instead.
 */
export async function tokenizePrompt(
  tokenizer: TextTokenizer,
  input: Exclude<PrepareInput, { kind: "tokens" }>,
  maxModelLen: number,
  isCancelled: () => boolean = () => false,
): Promise<{ ok: true; tokens: Uint32Array } | PrepareRejected> {
  const limits = { maxTokens: Math.max(0, maxModelLen - 1), sliceChars: PREPARE_SLICE_CHARS };
  let encoding: PiecewiseEncoding;
  if (input.kind === "text") {
    encoding = tokenizer.startEncoding(input.text, { ...limits, addSpecialTokens: true });
  } else {
    if (!tokenizer.hasChatTemplate) {
      return { ok: false, param: "messages", code: "no_chat_template", message: `the model's tokenizer (${tokenizer.source}) has no chat template` };
    }
    try {
      encoding = tokenizer.startChatEncoding(input.messages, input.templateKwargs, limits);
    } catch (err) {
      return { ok: false, param: "messages", code: "chat_template_error", message: `the chat template could not render these messages: ${(err as Error).message}` };
    }
  }
  const result = await runPiecewise(encoding, isCancelled);
  if (result.status === "cancelled") return CANCELLED;
  if (result.status === "too_long") return tooLong(maxModelLen, result.countedTokens, false);
  return { ok: true, tokens: result.tokens };
}

function tooLong(maxModelLen: number, tokens: number, exact: boolean): PrepareResult {
  const error = promptTooLong(maxModelLen, tokens, exact);
  return { ok: false, param: error.param, code: error.code, message: error.message };
}

function firstOutOfVocabulary(tokens: Uint32Array, vocabSize: number): number {
  for (let i = 0; i < tokens.length; i++) if (tokens[i]! >= vocabSize) return i;
  return -1;
}
