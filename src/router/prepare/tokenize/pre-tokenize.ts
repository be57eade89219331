// Pre-tokenization: cutting a normalized section into the words BPE merges within.
//
// Invariant: a cursor yields, in order, exactly the pieces @huggingface/tokenizers' pre-tokenizer makes of
// the same string (its Split with the "Isolated" behaviour keeps the text between matches as pieces of
// their own; a matches-only stage, as ByteLevel's own regex or an inverted Split, drops it). Each stage
// after the first runs on the previous stage's piece as a string of its own, so lookarounds and anchors
// see the piece's ends, as they do there. Cursors are resumable: a caller may stop after any piece.

/** Yields the pieces of one string; `text`, `start` and `end` describe the current piece. */
export interface PieceCursor {
  text: string;
  start: number;
  end: number;
  next(): boolean;
}

export interface RegexStage {
  /** The compiled pattern, with the `g` flag. */
  pattern: RegExp;
  /** Whether the text between matches is a piece too (Split "Isolated") or dropped (matches only). */
  keepGaps: boolean;
}

/** One regex stage over one string, with the iteration rules of String.prototype.matchAll. */
class RegexLevel implements PieceCursor {
  text = "";
  start = 0;
  end = 0;
  readonly #re: RegExp;
  readonly #keepGaps: boolean;
  readonly #unicode: boolean;
  /** End of the last match: where the next gap starts. */
  #at = 0;
  #pendingStart = -1;
  #pendingEnd = -1;
  #exhausted = false;

  constructor(stage: RegexStage) {
    // A private copy: RegExp objects carry lastIndex.
    this.#re = new RegExp(stage.pattern.source, stage.pattern.flags.includes("g") ? stage.pattern.flags : `${stage.pattern.flags}g`);
    this.#keepGaps = stage.keepGaps;
    this.#unicode = this.#re.unicode;
  }

  reset(text: string): this {
    this.text = text;
    this.#re.lastIndex = 0;
    this.#at = 0;
    this.#pendingStart = -1;
    this.#exhausted = false;
    return this;
  }

  next(): boolean {
    if (this.#pendingStart >= 0) {
      this.start = this.#pendingStart;
      this.end = this.#pendingEnd;
      this.#pendingStart = -1;
      return true;
    }
    const text = this.text;
    const re = this.#re;
    while (!this.#exhausted) {
      const m = re.exec(text);
      if (m === null) {
        this.#exhausted = true;
        if (this.#keepGaps && this.#at < text.length) {
          this.start = this.#at;
          this.end = text.length;
          this.#at = text.length;
          return true;
        }
        return false;
      }
      const s = m.index;
      const e = s + m[0].length;
      if (e === s) re.lastIndex = advance(text, re.lastIndex, this.#unicode);
      const gapStart = this.#at;
      this.#at = e;
      if (this.#keepGaps && s > gapStart) {
        this.start = gapStart;
        this.end = s;
        if (e > s) {
          this.#pendingStart = s;
          this.#pendingEnd = e;
        }
        return true;
      }
      if (e > s) {
        this.start = s;
        this.end = e;
        return true;
      }
    }
    return false;
  }
}

function advance(text: string, index: number, unicode: boolean): number {
  if (!unicode || index + 1 >= text.length) return index + 1;
  const c = text.charCodeAt(index);
  if (c < 0xd800 || c > 0xdbff) return index + 1;
  const d = text.charCodeAt(index + 1);
  return d >= 0xdc00 && d <= 0xdfff ? index + 2 : index + 1;
}

/** A single-level cursor made fresh for each section. */
export interface LevelCursor extends PieceCursor {
  reset(text: string): this;
}

/** Stages applied one inside the other: each piece of stage k is cut again by stage k + 1. */
class ChainCursor implements PieceCursor {
  text = "";
  start = 0;
  end = 0;
  #depth = 0;

  constructor(private readonly levels: LevelCursor[]) {}

  reset(text: string): this {
    this.levels[0]!.reset(text);
    this.#depth = 0;
    return this;
  }

  next(): boolean {
    const last = this.levels.length - 1;
    for (;;) {
      const level = this.levels[this.#depth]!;
      if (level.next()) {
        if (this.#depth === last) {
          this.text = level.text;
          this.start = level.start;
          this.end = level.end;
          return true;
        }
        this.levels[++this.#depth]!.reset(level.text.slice(level.start, level.end));
      } else {
        if (this.#depth === 0) return false;
        this.#depth--;
      }
    }
  }
}

/** Makes the cursors of a pre-tokenizer. */
export class PreTokenizer {
  readonly #shared: PieceCursor & { reset(text: string): PieceCursor };

  /** `scanner` replaces the first regex stage where a hand-written scanner reproduces it exactly. */
  constructor(
    private readonly stages: RegexStage[],
    private readonly scanner: (() => LevelCursor) | null = null,
  ) {
    this.#shared = this.#build();
  }

  /** A cursor over the pieces of `text`. The next call reuses it, ending this one. */
  cursor(text: string): PieceCursor {
    return this.#shared.reset(text);
  }

  /** A cursor of its own, for work that is resumed later while other text is encoded. */
  freshCursor(text: string): PieceCursor {
    return this.#build().reset(text);
  }

  #build(): PieceCursor & { reset(text: string): PieceCursor } {
    if (this.stages.length === 0) return new WholeCursor();
    const levels = this.stages.map((s, i): LevelCursor => (i === 0 && this.scanner ? this.scanner() : new RegexLevel(s)));
    return levels.length > 1 ? new ChainCursor(levels) : levels[0]!;
  }
}

/** No pre-tokenizer stage: the whole string is one piece. */
class WholeCursor implements PieceCursor {
  text = "";
  start = 0;
  end = 0;
  #done = false;
  reset(text: string): this {
    this.text = text;
    this.#done = false;
    return this;
  }
  next(): boolean {
    if (this.#done || this.text.length === 0) return false;
    this.#done = true;
    this.end = this.text.length;
    return true;
  }
}
