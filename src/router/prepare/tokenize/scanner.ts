// A hand-written pre-tokenizer for the regex Qwen2/Qwen3 (digits one by one) and Llama 3 / cl100k
// (digits up to three at a time) share:
//
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// Invariant: from any position it ends the piece where the regex, as @huggingface/tokenizers compiles it for
// JavaScript (\s as \p{White_Space}, (?i:...) as ASCII case folding, code points under the u flag), ends
// its match; the regex matches at every position, so there are no gaps. Character classes come from the
// same Unicode property escapes, tested once per code point and kept in a table.
import type { LevelCursor } from "./pre-tokenize.js";

export const QWEN_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
export const LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** The scanner that reproduces a Split regex exactly, if there is one. */
export function knownScanner(pattern: unknown): { name: string; make: () => LevelCursor } | null {
  if (pattern === QWEN_PATTERN) return { name: "Qwen2 scanner", make: () => new WordScanner(1) };
  if (pattern === LLAMA3_PATTERN) return { name: "Llama 3 scanner", make: () => new WordScanner(3) };
  return null;
}

const UNKNOWN = 0, LETTER = 1, NUMBER = 2, SPACE = 3, OTHER = 4;
/** Class of every code point, filled in as code points are met. */
const classes = new Uint8Array(0x110000);
const IS_LETTER = /^\p{L}$/u, IS_NUMBER = /^\p{N}$/u, IS_SPACE = /^\p{White_Space}$/u;

function classify(cp: number): number {
  const s = String.fromCodePoint(cp);
  const c = IS_LETTER.test(s) ? LETTER : IS_NUMBER.test(s) ? NUMBER : IS_SPACE.test(s) ? SPACE : OTHER;
  classes[cp] = c;
  return c;
}
for (let cp = 0; cp < 0x80; cp++) classify(cp);

const CR = 0x0d, LF = 0x0a, SP = 0x20, APOSTROPHE = 0x27;

export class WordScanner implements LevelCursor {
  text = "";
  start = 0;
  end = 0;
  /** Class and length (UTF-16 units) of the code point last read by #at. */
  #cls = 0;
  #len = 0;

  constructor(private readonly maxDigits: number) {}

  reset(text: string): this {
    this.text = text;
    this.end = 0;
    return this;
  }

  next(): boolean {
    const n = this.text.length;
    const i = this.end;
    if (i >= n) return false;
    this.start = i;
    this.end = this.#scan(i, n);
    return true;
  }

  /** Reads the code point at i: sets #cls and #len, returns the code point. */
  #at(i: number): number {
    const t = this.text;
    let cp = t.charCodeAt(i);
    this.#len = 1;
    if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < t.length) {
      const d = t.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (d - 0xdc00);
        this.#len = 2;
      }
    }
    const c = classes[cp]!;
    this.#cls = c === UNKNOWN ? classify(cp) : c;
    return cp;
  }

  /** End of the run of code points of class `cls` starting at j. */
  #run(j: number, n: number, cls: number): number {
    while (j < n) {
      this.#at(j);
      if (this.#cls !== cls) break;
      j += this.#len;
    }
    return j;
  }

  #scan(i: number, n: number): number {
    const t = this.text;
    const c0 = this.#at(i);
    const k0 = this.#cls;
    const l0 = this.#len;
    // 's 't 're 've 'm 'll 'd, ASCII letters in either case.
    if (c0 === APOSTROPHE && i + 1 < n) {
      const c1 = t.charCodeAt(i + 1) | 0x20;
      if (c1 === 0x73 || c1 === 0x74 || c1 === 0x6d || c1 === 0x64) return i + 2; // s t m d
      if (i + 2 < n) {
        const c2 = t.charCodeAt(i + 2) | 0x20;
        if ((c1 === 0x72 && c2 === 0x65) || (c1 === 0x76 && c2 === 0x65) || (c1 === 0x6c && c2 === 0x6c)) return i + 3; // re ve ll
      }
    }
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (k0 === LETTER) return this.#run(i + l0, n, LETTER);
    if (k0 !== NUMBER && c0 !== CR && c0 !== LF && i + l0 < n) {
      this.#at(i + l0);
      if (this.#cls === LETTER) return this.#run(i + l0, n, LETTER);
    }
    // \p{N}{1,maxDigits}
    if (k0 === NUMBER) {
      let j = i + l0;
      for (let d = 1; d < this.maxDigits && j < n; d++) {
        this.#at(j);
        if (this.#cls !== NUMBER) break;
        j += this.#len;
      }
      return j;
    }
    // " ?[^\s\p{L}\p{N}]+[\r\n]*"
    let j = -1;
    if (k0 === OTHER) j = i;
    else if (c0 === SP && i + 1 < n) {
      this.#at(i + 1);
      if (this.#cls === OTHER) j = i + 1;
    }
    if (j >= 0) {
      j = this.#run(j, n, OTHER);
      while (j < n && (t.charCodeAt(j) === CR || t.charCodeAt(j) === LF)) j++;
      return j;
    }
    // Whitespace (every White_Space code point is one UTF-16 unit). \s*[\r\n]+ ends after the run's last
    // line break; else \s+(?!\S) leaves the run's last space to the word after it; else \s+.
    const runEnd = this.#run(i, n, SPACE);
    for (let q = runEnd - 1; q >= i; q--) {
      const c = t.charCodeAt(q);
      if (c === CR || c === LF) return q + 1;
    }
    if (runEnd === n || runEnd - 1 === i) return runEnd;
    return runEnd - 1;
  }
}
