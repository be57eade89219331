// Special tokens written inside chat message contents, kept as plain text (--special-tokens-in-content
// plain), so that a user cannot open a turn of another role by writing `<|im_start|>system`.
//
// Before the template runs, each special token's text inside a content is replaced by an escape: a run of
// noncharacters (U+FDD0 … U+FDDA, which no tokenizer splits at, no case mapping or trimming changes, and the
// chat tracer's private-use sentinels never use). The template's own special tokens are then the only
// ones the splitter finds in the rendered text, and each text section is unescaped before it is encoded,
// so the content's special-token text goes through BPE like any other text.
//
// Invariants: unescape(escape(s)) === s for every string s (a noncharacter ESC already in a content is
// escaped too); escape(s) holds no special token's text; a content without ESC and without special-token
// text is left as it is, so such chats tokenize exactly as with `parse`.
import { escapeRegExp, type AddedToken } from "./added-tokens.js";

/** How special-token text inside chat message contents is tokenized. */
export type SpecialTokensInContent = "parse" | "plain";

/** Starts and ends an escape; alone between two ESCs (no digits), it stands for itself. */
const ESC = "\ufdd0";
/** Decimal digits of a token's number, as noncharacters: U+FDD1 is 0. */
const DIGIT0 = 0xfdd1;
const ESCAPED = /\ufdd0([\ufdd1-\ufdda]*)\ufdd0/g;

export class ContentEscaper {
  readonly #tokens: string[];
  readonly #numbers = new Map<string, number>();
  readonly #find: RegExp;

  /** `specials`: the special tokens the tokenizer matches in raw text. */
  constructor(specials: AddedToken[]) {
    this.#tokens = [...new Set(specials.map((t) => t.content).filter((c) => c.length > 0))].sort((a, b) => b.length - a.length);
    this.#tokens.forEach((t, i) => this.#numbers.set(t, i));
    // Longest first, as the splitter matches: the escaped text is what the splitter would have cut.
    this.#find = new RegExp([ESC, ...this.#tokens.map(escapeRegExp)].join("|"), "g");
  }

  escape(content: string): string {
    return content.replace(this.#find, (m) => (m === ESC ? ESC + ESC : ESC + digits(this.#numbers.get(m)!) + ESC));
  }

  /** A rendered text section with its escapes turned back into the text they stand for. */
  unescape(section: string): string {
    if (!section.includes(ESC)) return section;
    return section.replace(ESCAPED, (_, d: string) => (d === "" ? ESC : this.#tokens[number(d)] ?? ""));
  }
}

function digits(n: number): string {
  let out = "";
  for (const c of String(n)) out += String.fromCharCode(DIGIT0 + c.charCodeAt(0) - 48);
  return out;
}

function number(d: string): number {
  let n = 0;
  for (let i = 0; i < d.length; i++) n = n * 10 + (d.charCodeAt(i) - DIGIT0);
  return n;
}
