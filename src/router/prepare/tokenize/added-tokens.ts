// Added tokens (special tokens such as <|im_start|>) and the split of text at them.
//
// Invariant: sections come out exactly as @huggingface/tokenizers cuts text before normalizing it: at
// every occurrence of an added token that is matched on raw text (normalized: false, or any token when
// the tokenizer has no normalizer), taking at each position the longest token that starts there. Each
// text section is then normalized, pre-tokenized and merged on its own, so encoding the sections one by
// one gives the ids of the whole text (provided no token strips its neighbours' whitespace: see
// `stripping`).

export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  /** Matched on normalized text rather than raw text. */
  normalized: boolean;
  lstrip: boolean;
  rstrip: boolean;
}

/** Reads tokenizer.json's `added_tokens`, with the defaults @huggingface/tokenizers applies. */
export function readAddedTokens(tokenizerJson: Record<string, unknown>): AddedToken[] {
  const raw = tokenizerJson.added_tokens ?? [];
  if (!Array.isArray(raw)) throw new Error("tokenizer.json: added_tokens is not an array");
  return raw.map((t: unknown, i) => {
    const o = t as Record<string, unknown> | null;
    if (typeof o?.content !== "string" || typeof o.id !== "number" || !Number.isInteger(o.id) || o.id < 0) {
      throw new Error(`tokenizer.json: added_tokens[${i}] needs a string content and a non-negative integer id`);
    }
    const special = o.special === true;
    return {
      id: o.id,
      content: o.content,
      special,
      normalized: typeof o.normalized === "boolean" ? o.normalized : !special,
      lstrip: o.lstrip === true,
      rstrip: o.rstrip === true,
    };
  });
}

/** The added tokens matched on raw text, before normalization. */
export function rawMatchedTokens(tokens: AddedToken[], hasNormalizer: boolean): AddedToken[] {
  return tokens.filter((t) => !(t.normalized && hasNormalizer) && t.content.length > 0);
}

/** The first token that strips whitespace from its neighbours, or null. */
export function stripping(tokens: AddedToken[]): AddedToken | null {
  return tokens.find((t) => t.lstrip || t.rstrip) ?? null;
}

/** Receives the sections of a text in order. */
export interface SectionVisitor {
  text(start: number, end: number): void;
  token(id: number): void;
}

/** Few enough distinct first characters to look for each with indexOf (a block search). */
const INDEXOF_FIRST_CHARS = 4;

/** Cuts text at added tokens, leftmost first, longest first at a position. */
export class AddedTokenSplitter {
  /** All tokens, longest first: tried at one position (sticky) or searched for (global). */
  readonly #sticky: RegExp | null;
  readonly #global: RegExp | null;
  /** The tokens' distinct first characters, when few: candidates are found with indexOf. */
  readonly #firstChars: string[] | null;
  readonly #ids = new Map<string, number>();

  constructor(tokens: AddedToken[]) {
    // Later duplicates win, as in the library's content → token map.
    for (const t of tokens) this.#ids.set(t.content, t.id);
    const contents = [...this.#ids.keys()].sort((a, b) => b.length - a.length);
    // An alternation tried longest first finds the longest token at a position. No `u` flag: positions
    // are UTF-16 code units, as the library's character-by-character trie walks.
    const source = contents.map(escapeRegExp).join("|");
    this.#sticky = contents.length === 0 ? null : new RegExp(source, "y");
    this.#global = contents.length === 0 ? null : new RegExp(source, "g");
    const firsts = [...new Set(contents.map((c) => c[0]!))];
    this.#firstChars = firsts.length <= INDEXOF_FIRST_CHARS ? firsts : null;
  }

  split(text: string, visit: SectionVisitor): void {
    if (this.#sticky === null) {
      if (text.length > 0) visit.text(0, text.length);
      return;
    }
    let at = 0;
    for (let m = this.#next(text, at); m !== null; m = this.#next(text, at)) {
      if (m.index > at) visit.text(at, m.index);
      visit.token(this.#ids.get(m[0])!);
      at = m.index + m[0].length;
    }
    if (at < text.length) visit.text(at, text.length);
  }

  /** The leftmost token match at or after `from`, longest at its position. */
  #next(text: string, from: number): RegExpExecArray | null {
    const firsts = this.#firstChars;
    if (firsts === null) {
      this.#global!.lastIndex = from;
      return this.#global!.exec(text);
    }
    const sticky = this.#sticky!;
    for (let p = from; ; p++) {
      let candidate = -1;
      for (const c of firsts) {
        const i = text.indexOf(c, p);
        if (i >= 0 && (candidate < 0 || i < candidate)) candidate = i;
      }
      if (candidate < 0) return null;
      sticky.lastIndex = candidate;
      const m = sticky.exec(text);
      if (m !== null) return m;
      p = candidate;
    }
  }
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
