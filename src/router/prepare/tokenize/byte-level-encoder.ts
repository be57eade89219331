// The fast encoder for byte-level BPE tokenizers (Qwen, Llama 3, GPT-2 and the like).
//
// Invariant: encodeSection(s) gives the ids @huggingface/tokenizers gives for a section s that holds no
// added token: normalize, cut into words (pre-tokenize), merge each word's UTF-8 bytes. Words are cached
// by their text in a bounded map of two generations: a word found in the older one moves to the newer,
// and when the newer fills up the older is dropped.
import { byteLevelString, utf8Encode } from "./byte-level.js";
import { BpeMerger, type HeapMerge, type PairTable } from "./bpe.js";
import type { IdBuffer } from "./id-buffer.js";
import type { PieceCursor, PreTokenizer } from "./pre-tokenize.js";

export interface ByteLevelModel {
  /** The tokenizer's normalizer, applied to each section; null when it has none. */
  normalize: ((text: string) => string) | null;
  /** ByteLevel's add_prefix_space: a section not starting with a space gets one. */
  prefixSpace: boolean;
  preTokenizer: PreTokenizer;
  /** The id of each single byte's token. */
  byteIds: Int32Array;
  pairs: PairTable;
  /** With ignore_merges, a word whose byte-level spelling is a token is that token, merges or not. */
  wholeWords: Map<string, number> | null;
  /** The longest token of the vocabulary, in bytes: a word of B bytes makes at least B / this many ids. */
  maxTokenBytes: number;
}

/** Words longer than this (UTF-16 units) are merged every time instead of cached. */
const CACHED_WORD_MAX = 64;
/** Words per cache generation. */
const WORD_CACHE_ENTRIES = 32_768;

type Cached = number | number[];

export class ByteLevelEncoder {
  readonly #merger: BpeMerger;
  #bytes = new Uint8Array(1024);
  #young = new Map<string, Cached>();
  #old = new Map<string, Cached>();

  constructor(private readonly model: ByteLevelModel) {
    this.#merger = new BpeMerger(model.byteIds, model.pairs);
  }

  /** The section as the pre-tokenizer sees it: normalized, with ByteLevel's prefix space. */
  prepare(section: string): string {
    let text = this.model.normalize ? this.model.normalize(section) : section;
    if (this.model.prefixSpace && !text.startsWith(" ")) text = ` ${text}`;
    return text;
  }

  encodeSection(section: string, out: IdBuffer): void {
    const cursor = this.model.preTokenizer.cursor(this.prepare(section));
    while (cursor.next()) this.encodeWord(cursor.text, cursor.start, cursor.end, out);
  }

  /** A resumable cursor over the words of a section, for encoding it a slice at a time. */
  wordCursor(section: string): PieceCursor {
    return this.model.preTokenizer.freshCursor(this.prepare(section));
  }

  /** Appends the ids of the word text[start, end). */
  encodeWord(text: string, start: number, end: number, out: IdBuffer): void {
    const cacheable = end - start <= CACHED_WORD_MAX;
    let key = "";
    if (cacheable) {
      key = start === 0 && end === text.length ? text : text.slice(start, end);
      const hit = this.#lookup(key);
      if (hit !== undefined) {
        if (typeof hit === "number") out.push(hit);
        else out.pushAll(hit);
        return;
      }
    }
    if (this.#bytes.length < (end - start) * 3) this.#bytes = new Uint8Array((end - start) * 3);
    const n = utf8Encode(text, start, end, this.#bytes);
    const from = out.length;
    const whole = this.model.wholeWords?.get(byteLevelString(this.#bytes, n));
    if (whole !== undefined) out.push(whole);
    else this.#merger.merge(this.#bytes, n, out);
    if (cacheable) this.#store(key, out.length - from === 1 ? out.ids[from]! : Array.from(out.ids.subarray(from, out.length)));
  }

  /**
   * Starts the merge of one long word, to be run a bounded number of steps at a time (piecewise.ts).
   * Returns the word's id instead when ignore_merges makes it a single token.
   */
  startWord(text: string, start: number, end: number): HeapMerge | number {
    const bytes = new Uint8Array((end - start) * 3);
    const n = utf8Encode(text, start, end, bytes);
    const whole = this.model.wholeWords?.get(byteLevelString(bytes, n));
    return whole ?? this.#merger.stepwise(bytes, n);
  }

  get maxTokenBytes(): number {
    return this.model.maxTokenBytes;
  }

  #lookup(key: string): Cached | undefined {
    const young = this.#young.get(key);
    if (young !== undefined) return young;
    const old = this.#old.get(key);
    if (old !== undefined) this.#store(key, old);
    return old;
  }

  #store(key: string, ids: Cached): void {
    if (this.#young.size >= WORD_CACHE_ENTRIES) {
      this.#old = this.#young;
      this.#young = new Map();
    }
    this.#young.set(key, ids);
  }

  /** Forgets cached words (benchmarks measure first-sight encoding with it). */
  clearWordCache(): void {
    this.#young.clear();
    this.#old.clear();
  }
}
