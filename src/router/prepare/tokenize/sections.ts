// Encoding a text section by section: added tokens become their ids, the text between them goes to the
// section encoder.
//
// Invariant: given a splitter that cuts where the tokenizer itself cuts (see added-tokens.ts), the ids are
// those of encoding the whole text without special tokens.
import type { AddedTokenSplitter, SectionVisitor } from "./added-tokens.js";
import type { IdBuffer } from "./id-buffer.js";

/** Encodes text that holds no added token. */
export interface SectionEncoder {
  encodeSection(text: string, out: IdBuffer): void;
}

export class SectionedEncoder {
  constructor(
    readonly splitter: AddedTokenSplitter,
    readonly encoder: SectionEncoder,
  ) {}

  encode(text: string, out: IdBuffer): void {
    const visitor: SectionVisitor = {
      text: (start, end) => this.encoder.encodeSection(start === 0 && end === text.length ? text : text.slice(start, end), out),
      token: (id) => out.push(id),
    };
    this.splitter.split(text, visitor);
  }
}
