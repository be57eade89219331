// Encoding a prompt a slice at a time, stopping as soon as it has more tokens than allowed.
//
// Invariant: the ids gathered so far are always a prefix of the prompt's full encoding, because the
// prompt is only cut where cutting is exact: at added tokens (when the tokenizer allows it, see
// added-tokens.ts), between the pre-tokenizer's words, and inside one word's merge, which is resumed
// where it stopped. So "more than maxTokens ids so far" proves the whole prompt has more. A word of B
// UTF-16 units has at least ceil(B / longest token in bytes) ids, which lets a giant word be refused
// before it is merged. A step does about `sliceChars` characters of work, except where the prompt can only
// be encoded whole (a tokenizer the fast encoder does not reproduce: one step per section, or one step
// for the whole text when sections are not exact).
import type { HeapMerge } from "./bpe.js";
import type { ByteLevelEncoder } from "./byte-level-encoder.js";
import { IdBuffer } from "./id-buffer.js";
import type { PieceCursor } from "./pre-tokenize.js";
import type { Section, SectionedEncoder } from "./sections.js";
import type { SpecialIds } from "./plan.js";

export interface LimitOptions {
  /** The encoding stops once it has more ids than this. */
  maxTokens: number;
  /** Add the post-processor's special tokens (completions), as `encode` does. Default false. */
  addSpecialTokens?: boolean;
  /** Characters encoded per step (default 65,536). */
  sliceChars?: number;
}

export type LimitedResult =
  | { status: "ok"; tokens: Uint32Array }
  /** `countedTokens` ids were found before stopping: the prompt has at least that many, more than the limit. */
  | { status: "too_long"; countedTokens: number }
  | { status: "cancelled" };

/** What piecewise encoding reads from a TextTokenizer. */
export interface PiecewiseParts {
  sectioned: SectionedEncoder | null;
  fast: ByteLevelEncoder | null;
  specials: SpecialIds | null;
  encodeWhole(text: string, addSpecialTokens: boolean): Uint32Array;
}

export const DEFAULT_SLICE_CHARS = 65_536;
/** Heap pops per character of slice budget when resuming one huge word's merge. */
const POPS_PER_CHAR = 4;

export class PiecewiseEncoding {
  readonly #parts: PiecewiseParts;
  readonly #max: number;
  readonly #slice: number;
  readonly #out = new IdBuffer();
  readonly #units: Section[];
  #unit = 0;
  #cursor: PieceCursor | null = null;
  #word: HeapMerge | null = null;
  #suffix: number[] = [];
  #result: LimitedResult | null = null;

  /**
   * `sectionText`, when given, turns each text section (the text between two added tokens) into the text
   * to encode: chats with contents kept as plain text unescape them there (content-specials.ts).
   */
  constructor(parts: PiecewiseParts, text: string, options: LimitOptions, sectionText?: (section: string) => string) {
    if (!Number.isInteger(options.maxTokens) || options.maxTokens < 0) throw new RangeError(`maxTokens must be a non-negative integer, got ${options.maxTokens}`);
    const slice = options.sliceChars ?? DEFAULT_SLICE_CHARS;
    if (!Number.isInteger(slice) || slice < 1) throw new RangeError(`sliceChars must be a positive integer, got ${slice}`);
    this.#parts = parts;
    this.#max = options.maxTokens;
    this.#slice = slice;
    const addSpecial = options.addSpecialTokens === true;
    const specials = addSpecial ? parts.specials : { prefixIds: [], suffixIds: [] };
    if (parts.sectioned === null || specials === null) {
      // Not cut anywhere: one unit, encoded by the library as a whole.
      this.#units = [];
      this.#whole = { text, addSpecial };
    } else {
      this.#units = parts.sectioned.sections(text);
      if (sectionText !== undefined) {
        for (const unit of this.#units) if (unit.kind === "text") unit.text = sectionText(unit.text);
      }
      this.#out.pushAll(specials.prefixIds);
      this.#suffix = specials.suffixIds;
    }
  }

  #whole: { text: string; addSpecial: boolean } | null = null;

  /** Ids found so far. */
  get countedTokens(): number {
    return this.#out.length;
  }

  /** The outcome, once `step` has returned true. */
  get result(): LimitedResult | null {
    return this.#result;
  }

  /** Does about one slice of work; true when finished (see `result`). */
  step(): boolean {
    if (this.#result !== null) return true;
    if (this.#whole !== null) {
      const ids = this.#parts.encodeWhole(this.#whole.text, this.#whole.addSpecial);
      this.#out.pushAll(ids);
      return this.#finish();
    }
    const fast = this.#parts.fast;
    const out = this.#out;
    let budget = this.#slice;
    while (budget > 0) {
      if (this.#word !== null) {
        if (!this.#word.run(budget * POPS_PER_CHAR)) return false;
        this.#word.emit(out);
        this.#word = null;
        budget = 0;
        if (this.#over()) return true;
        continue;
      }
      if (this.#cursor !== null && fast !== null) {
        const cursor = this.#cursor;
        if (!cursor.next()) {
          this.#cursor = null;
          continue;
        }
        const length = cursor.end - cursor.start;
        if (out.length + Math.ceil(length / fast.maxTokenBytes) > this.#max) return this.#tooLong(out.length + Math.ceil(length / fast.maxTokenBytes));
        if (length > this.#slice) {
          const word = fast.startWord(cursor.text, cursor.start, cursor.end);
          if (typeof word === "number") out.push(word);
          else this.#word = word;
        } else {
          fast.encodeWord(cursor.text, cursor.start, cursor.end, out);
        }
        budget -= length;
        if (this.#over()) return true;
        continue;
      }
      const unit = this.#units[this.#unit++];
      if (unit === undefined) {
        out.pushAll(this.#suffix);
        return this.#finish();
      }
      if (unit.kind === "token") {
        out.push(unit.id);
      } else if (fast !== null && unit.text.length > this.#slice) {
        this.#cursor = fast.wordCursor(unit.text);
      } else {
        this.#parts.sectioned!.encodeSection(unit.text, out);
        budget -= unit.text.length;
      }
      if (this.#over()) return true;
    }
    return false;
  }

  #over(): boolean {
    return this.#out.length > this.#max ? this.#tooLong(this.#out.length) : false;
  }

  #tooLong(counted: number): true {
    this.#result = { status: "too_long", countedTokens: counted };
    this.#release();
    return true;
  }

  #finish(): true {
    this.#result = this.#out.length > this.#max ? { status: "too_long", countedTokens: this.#out.length } : { status: "ok", tokens: this.#out.slice() };
    this.#release();
    return true;
  }

  #release(): void {
    this.#out.shrink(0);
    this.#cursor = null;
    this.#word = null;
    this.#units.length = 0;
  }
}

/**
 * Runs an encoding to its end, a step at a time, letting the thread's event loop run between steps (so
 * a pool thread stays responsive) and stopping when `isCancelled` says so. `isCancelled` may read a flag
 * shared with another thread (Atomics.load on a SharedArrayBuffer) or one set by a message.
 */
export async function runPiecewise(encoding: PiecewiseEncoding, isCancelled: () => boolean = () => false): Promise<LimitedResult> {
  for (;;) {
    if (isCancelled()) return { status: "cancelled" };
    if (encoding.step()) return encoding.result!;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
