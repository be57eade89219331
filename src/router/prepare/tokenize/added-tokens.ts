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

/** Cuts text at added tokens, leftmost first, longest first at a position. */
export class AddedTokenSplitter {
  readonly #pattern: RegExp | null;
  readonly #ids = new Map<string, number>();

  constructor(tokens: AddedToken[]) {
    // Later duplicates win, as in the library's content → token map.
    for (const t of tokens) this.#ids.set(t.content, t.id);
    const contents = [...this.#ids.keys()].sort((a, b) => b.length - a.length);
    // An alternation tried longest first finds the longest token at the leftmost position that has one.
    // No `u` flag: positions are UTF-16 code units, as the library's character-by-character trie walks.
    this.#pattern = contents.length === 0 ? null : new RegExp(contents.map(escapeRegExp).join("|"), "g");
  }

  get empty(): boolean {
    return this.#pattern === null;
  }

  split(text: string, visit: SectionVisitor): void {
    const pattern = this.#pattern;
    if (pattern === null) {
      if (text.length > 0) visit.text(0, text.length);
      return;
    }
    pattern.lastIndex = 0;
    let at = 0;
    for (let m = pattern.exec(text); m !== null; m = pattern.exec(text)) {
      if (m.index > at) visit.text(at, m.index);
      visit.token(this.#ids.get(m[0])!);
      at = m.index + m[0].length;
    }
    if (at < text.length) visit.text(at, text.length);
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
