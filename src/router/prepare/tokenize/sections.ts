// Encoding a text section by section: added tokens become their ids, the text between them goes through
// the cache and, on a miss, the section encoder.
//
// Invariant: given a splitter that cuts where the tokenizer itself cuts (see added-tokens.ts), the ids are
// those of encoding the whole text without special tokens. Cached arrays are copied out, never handed out.
import type { AddedTokenSplitter, SectionVisitor } from "./added-tokens.js";
import type { IdBuffer } from "./id-buffer.js";
import type { PieceCache } from "./piece-cache.js";

/** Encodes text that holds no added token. */
export interface SectionEncoder {
  encodeSection(text: string, out: IdBuffer): void;
}

export type Section = { kind: "text"; text: string } | { kind: "token"; id: number };

/** Sections shorter than this skip the cache: encoding them costs about what a lookup does. */
const CACHED_MIN_CHARS = 32;

export class SectionedEncoder {
  constructor(
    readonly splitter: AddedTokenSplitter,
    readonly encoder: SectionEncoder,
    /** Null when caching is off. */
    readonly cache: PieceCache | null,
  ) {}

  encode(text: string, out: IdBuffer): void {
    const visitor: SectionVisitor = {
      text: (start, end) => this.encodeSection(start === 0 && end === text.length ? text : text.slice(start, end), out),
      token: (id) => out.push(id),
    };
    this.splitter.split(text, visitor);
  }

  /** Encodes one section, through the cache when there is one. */
  encodeSection(section: string, out: IdBuffer): void {
    const cache = this.cache;
    if (cache === null || section.length < CACHED_MIN_CHARS) {
      this.encoder.encodeSection(section, out);
      return;
    }
    const hit = cache.get(section);
    if (hit !== undefined) {
      out.pushAll(hit);
      return;
    }
    const from = out.length;
    this.encoder.encodeSection(section, out);
    cache.set(section, out.slice(from));
  }

  sections(text: string): Section[] {
    const sections: Section[] = [];
    this.splitter.split(text, {
      text: (start, end) => sections.push({ kind: "text", text: text.slice(start, end) }),
      token: (id) => sections.push({ kind: "token", id }),
    });
    return sections;
  }
}
