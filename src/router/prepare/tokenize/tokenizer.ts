import { Template } from "@huggingface/jinja";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { defaultTokenizerDir, readTokenizerFiles, type TokenizerFiles } from "./files.js";

export interface ChatMessage {
  role: string;
  content: string;
  name?: string;
}

/** A model's tokenizer and chat template, loaded from a Hugging Face model folder. */
export class TextTokenizer {
  readonly source: string;
  /** One more than the largest token id, added tokens included: ids at or above it are out of vocabulary. */
  readonly vocabSize: number;
  /** The context length the tokenizer declares (`model_max_length`), or null. */
  readonly modelMaxLength: number | null;
  readonly hasChatTemplate: boolean;
  readonly #tokenizer: HfTokenizer;
  readonly #template: Template | null;
  readonly #specialTokens: Record<string, string>;

  constructor(files: TokenizerFiles) {
    this.source = files.source;
    this.#tokenizer = new HfTokenizer(files.tokenizerJson, files.tokenizerConfig);
    let maxId = -1;
    for (const id of this.#tokenizer.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    const declared = files.tokenizerConfig.model_max_length;
    // Configs without a limit carry a huge sentinel (1e30); treat anything absurd as "not declared".
    this.modelMaxLength = typeof declared === "number" && declared > 0 && declared < 1e9 ? declared : null;
    this.#template = files.chatTemplate === null ? null : new Template(files.chatTemplate);
    this.hasChatTemplate = this.#template !== null;
    this.#specialTokens = {};
    for (const key of ["bos_token", "eos_token", "pad_token", "unk_token"]) {
      const token = specialTokenText(files.tokenizerConfig[key]);
      if (token !== null) this.#specialTokens[key] = token;
    }
  }

  /** Token ids of a plain-text prompt, with the special tokens the model adds by default (as vLLM's completions do). */
  encode(text: string): Uint32Array {
    return Uint32Array.from(this.#tokenizer.encode(text).ids);
  }

  /** Renders messages with the model's chat template, ending with the assistant's turn. */
  renderChat(messages: ChatMessage[], templateKwargs: Record<string, unknown> = {}): string {
    if (this.#template === null) throw new Error(`the tokenizer at ${this.source} has no chat template`);
    return this.#template.render({
      ...this.#specialTokens,
      ...templateKwargs,
      messages,
      add_generation_prompt: templateKwargs.add_generation_prompt ?? true,
    });
  }

  /** Token ids of a chat: the rendered template already holds the special tokens, so none are added. */
  encodeChat(messages: ChatMessage[], templateKwargs?: Record<string, unknown>): Uint32Array {
    const text = this.renderChat(messages, templateKwargs);
    return Uint32Array.from(this.#tokenizer.encode(text, { add_special_tokens: false }).ids);
  }

  decode(ids: ArrayLike<number>): string {
    return this.#tokenizer.decode(Array.from(ids), { skip_special_tokens: true });
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
export async function loadTokenizer(dir?: string): Promise<TextTokenizer> {
  return new TextTokenizer(await readTokenizerFiles(dir ?? defaultTokenizerDir()));
}
