// A model's tokenizer and chat template. Text is encoded by the fast byte-level encoder where it
// reproduces the tokenizer exactly, else by @huggingface/tokenizers; either way section by section through
// the exact tokenization cache when splitting at added tokens is exact for this tokenizer.
//
// Invariant: every encode gives the ids @huggingface/tokenizers gives for the same text and options; the
// one exception is asked for: chats with `specialTokensInContent: "plain"`, whose contents' special-token
// text is encoded as the text it is (content-specials.ts).
// Caches (rendered chats, sections, words) live in this object: one per pool thread.
import { Template } from "@huggingface/jinja";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { ChatRenderer, type ChatMessage, type ChatRenderStats } from "./chat-render.js";
import { ByteLevelEncoder } from "./byte-level-encoder.js";
import { ContentEscaper, type SpecialTokensInContent } from "./content-specials.js";
import { defaultTokenizerDir, readTokenizerFiles, type TokenizerFiles } from "./files.js";
import { IdBuffer } from "./id-buffer.js";
import { PieceCache, type PieceCacheStats } from "./piece-cache.js";
import { PiecewiseEncoding, runPiecewise, type LimitedResult, type LimitOptions, type PiecewiseParts } from "./piecewise.js";
import { planTokenizer, type SpecialIds } from "./plan.js";
import { SectionedEncoder, type SectionEncoder } from "./sections.js";

export type { ChatMessage } from "./chat-render.js";
export type { SpecialTokensInContent } from "./content-specials.js";
export type { LimitedResult, LimitOptions, PiecewiseEncoding } from "./piecewise.js";

/** The section cache's budget per pool thread unless told otherwise (`--tokenize-cache-mb`). */
export const DEFAULT_TOKENIZE_CACHE_MB = 32;

export interface TokenizerOptions {
  /** The exact tokenization cache's budget in bytes; 0 turns it off. */
  cacheBytes?: number;
  /**
   * Special-token text inside chat message contents: `parse` (default, as vLLM and the chat template's
   * plain render do) makes it special tokens, `plain` tokenizes it as text (content-specials.ts).
   */
  specialTokensInContent?: SpecialTokensInContent;
}

/** Which encoder runs, and why (for logs and /v1/models). */
export interface EncoderInfo {
  kind: "byte-level-bpe" | "huggingface";
  /** The fast encoder's pre-tokenizer, or why @huggingface/tokenizers encodes instead. */
  note: string;
}

export interface CacheInfo {
  enabled: boolean;
  budgetBytes: number;
  /** Why the cache is off, when it is. */
  reason: string | null;
}

export class TextTokenizer {
  readonly source: string;
  /** One more than the largest token id, added tokens included: ids at or above it are out of vocabulary. */
  readonly vocabSize: number;
  /** The context length the tokenizer declares (`model_max_length`), or null. */
  readonly modelMaxLength: number | null;
  readonly hasChatTemplate: boolean;
  readonly encoder: EncoderInfo;
  readonly cache: CacheInfo;
  readonly #files: TokenizerFiles;
  #hf: HfTokenizer | null = null;
  readonly #fast: ByteLevelEncoder | null;
  /** Null when encoding section by section could differ from encoding the whole text. */
  readonly #sectioned: SectionedEncoder | null;
  readonly #specials: SpecialIds | null;
  readonly #renderer: ChatRenderer | null;
  /** Set with `specialTokensInContent: "plain"`. */
  readonly #escaper: ContentEscaper | null;
  readonly #out = new IdBuffer();

  constructor(files: TokenizerFiles, options: TokenizerOptions = {}) {
    this.source = files.source;
    this.#files = files;
    const plan = planTokenizer(files.tokenizerJson, files.tokenizerConfig);
    this.vocabSize = plan.vocabSize;
    const declared = files.tokenizerConfig.model_max_length;
    // Configs without a limit carry a huge sentinel (1e30); treat anything absurd as "not declared".
    this.modelMaxLength = typeof declared === "number" && declared > 0 && declared < 1e9 ? declared : null;

    let sectionEncoder: SectionEncoder;
    if ("model" in plan.fast) {
      this.#fast = new ByteLevelEncoder(plan.fast.model);
      sectionEncoder = this.#fast;
      this.encoder = { kind: "byte-level-bpe", note: plan.fast.preTokenizer };
    } else {
      this.#fast = null;
      // Built now: it encodes everything, and a tokenizer it cannot load should fail at start.
      const hf = this.#reference();
      sectionEncoder = { encodeSection: (text, out) => out.pushAll(hf.encode(text, { add_special_tokens: false }).ids) };
      this.encoder = { kind: "huggingface", note: plan.fast.reason };
    }
    this.#specials = "reason" in plan.specials ? null : plan.specials;

    const budgetBytes = Math.max(0, Math.floor(options.cacheBytes ?? DEFAULT_TOKENIZE_CACHE_MB * 1024 * 1024));
    const reason = plan.sectionsInexact ?? (budgetBytes === 0 ? "turned off (budget 0)" : null);
    this.cache = { enabled: reason === null, budgetBytes: reason === null ? budgetBytes : 0, reason };
    this.#sectioned = plan.sectionsInexact === null ? new SectionedEncoder(plan.splitter, sectionEncoder, reason === null ? new PieceCache(budgetBytes) : null) : null;

    const specialTokens: Record<string, string> = {};
    for (const key of ["bos_token", "eos_token", "pad_token", "unk_token"]) {
      const token = specialTokenText(files.tokenizerConfig[key]);
      if (token !== null) specialTokens[key] = token;
    }
    this.#renderer = files.chatTemplate === null ? null : new ChatRenderer(new Template(files.chatTemplate), files.chatTemplate, specialTokens);
    this.hasChatTemplate = this.#renderer !== null;

    this.#escaper = null;
    if (options.specialTokensInContent === "plain") {
      // Sections are unescaped before the fast encoder merges them; the library would split them again.
      const why = "reason" in plan.fast ? `it is encoded by @huggingface/tokenizers (${plan.fast.reason})` : plan.sectionsInexact;
      if (why !== null) throw new Error(`special tokens in chat contents cannot be kept as plain text with the tokenizer at ${files.source}: ${why}`);
      this.#escaper = new ContentEscaper(plan.addedTokens.filter((t) => t.special));
    }
  }

  /** Token ids of a plain-text prompt, with the special tokens the model adds by default (as vLLM's completions do). */
  encode(text: string): Uint32Array {
    return this.encodeText(text, true);
  }

  /** Renders messages with the model's chat template, ending with the assistant's turn. */
  renderChat(messages: ChatMessage[], templateKwargs: Record<string, unknown> = {}): string {
    if (this.#renderer === null) throw new Error(`the tokenizer at ${this.source} has no chat template`);
    return this.#renderer.render(messages, templateKwargs);
  }

  /** Token ids of a chat: the rendered template already holds the special tokens, so none are added. */
  encodeChat(messages: ChatMessage[], templateKwargs?: Record<string, unknown>): Uint32Array {
    if (this.#escaper === null) return this.encodeText(this.renderChat(messages, templateKwargs), false);
    const encoding = this.startChatEncoding(messages, templateKwargs ?? {}, { maxTokens: Number.MAX_SAFE_INTEGER, sliceChars: Number.MAX_SAFE_INTEGER });
    while (!encoding.step());
    const result = encoding.result!;
    if (result.status !== "ok") throw new Error(`unreachable: an unlimited encoding ended ${result.status}`);
    return result.tokens;
  }

  /** How special-token text inside chat message contents is tokenized. */
  get specialTokensInContent(): SpecialTokensInContent {
    return this.#escaper === null ? "parse" : "plain";
  }

  decode(ids: ArrayLike<number>): string {
    return this.#reference().decode(Array.from(ids), { skip_special_tokens: true });
  }

  /** The section cache's and chat renderer's counters (null where off). */
  stats(): { sections: PieceCacheStats | null; chat: ChatRenderStats | null } {
    return { sections: this.#sectioned?.cache?.stats() ?? null, chat: this.#renderer?.stats() ?? null };
  }

  /**
   * Starts encoding a text a slice at a time, stopping once it has more than `maxTokens` ids: call
   * `step()` until it returns true, or hand it to `runPiecewise`. See piecewise.ts.
   */
  startEncoding(text: string, options: LimitOptions): PiecewiseEncoding {
    return new PiecewiseEncoding(this.#pieceParts, text, options);
  }

  /**
   * The same for a chat: renders it (in one go), then encodes the rendered text without added specials.
   * With `plain`, the contents' special-token text is escaped for the render and encoded as text.
   */
  startChatEncoding(messages: ChatMessage[], templateKwargs: Record<string, unknown>, options: LimitOptions): PiecewiseEncoding {
    const escaper = this.#escaper;
    if (escaper === null) return this.startEncoding(this.renderChat(messages, templateKwargs), { ...options, addSpecialTokens: false });
    const rendered = this.renderChat(
      messages.map((m) => ({ ...m, content: escaper.escape(m.content) })),
      templateKwargs,
    );
    return new PiecewiseEncoding(this.#pieceParts, rendered, { ...options, addSpecialTokens: false }, (section) => escaper.unescape(section));
  }

  /** Encodes with a token limit, yielding to the event loop between slices and stopping when cancelled. */
  encodeLimited(text: string, options: LimitOptions & { isCancelled?: () => boolean }): Promise<LimitedResult> {
    return runPiecewise(this.startEncoding(text, options), options.isCancelled);
  }

  get #pieceParts(): PiecewiseParts {
    return { sectioned: this.#sectioned, fast: this.#fast, specials: this.#specials, encodeWhole: (text, special) => this.encodeWithReference(text, special) };
  }

  /** Encodes with @huggingface/tokenizers, whatever encoder is in use (the reference, and the fallback). */
  encodeWithReference(text: string, addSpecialTokens: boolean): Uint32Array {
    return Uint32Array.from(this.#reference().encode(text, { add_special_tokens: addSpecialTokens }).ids);
  }

  /** Token ids of a text, with or without the post-processor's special tokens. */
  encodeText(text: string, addSpecialTokens: boolean): Uint32Array {
    const sectioned = this.#sectioned;
    const specials = addSpecialTokens ? this.#specials : { prefixIds: [], suffixIds: [] };
    if (sectioned === null || specials === null) return this.encodeWithReference(text, addSpecialTokens);
    const out = this.#out;
    out.clear();
    out.pushAll(specials.prefixIds);
    sectioned.encode(text, out);
    out.pushAll(specials.suffixIds);
    const ids = out.slice();
    out.shrink(1 << 20);
    return ids;
  }

  /** The library's tokenizer, built on first use when the fast encoder does the encoding. */
  #reference(): HfTokenizer {
    return (this.#hf ??= new HfTokenizer(this.#files.tokenizerJson, this.#files.tokenizerConfig));
  }
}

function specialTokenText(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (typeof value === "object" && value !== null && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return null;
}

/** Loads the tokenizer of a Hugging Face model folder, or the Qwen3 tokenizer that ships with kvroute. */
export async function loadTokenizer(dir?: string, options?: TokenizerOptions): Promise<TextTokenizer> {
  return new TextTokenizer(await readTokenizerFiles(dir ?? defaultTokenizerDir()), options);
}
