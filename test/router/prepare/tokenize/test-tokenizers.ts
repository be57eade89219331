// Tokenizers for tests besides the shipped Qwen3 one: byte-level BPE tokenizer.json files built from
// tiktoken's rank files (a devDependency, read offline), each set up like a real model family so that
// every path of the fast encoder is exercised against @huggingface/tokenizers.
import { mkdtemp, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { BYTE_TO_CHAR } from "../../../../src/router/prepare/tokenize/byte-level.js";
import type { TokenizerFiles } from "../../../../src/router/prepare/tokenize/index.js";

type Json = Record<string, unknown>;

/** tiktoken's ranks for an encoding: token bytes (as byte-level strings) in rank order, and its regex. */
function tiktokenRanks(name: "cl100k_base" | "o200k_base" | "gpt2", maxRank: number): { tokens: string[]; pattern: string } {
  const require = createRequire(import.meta.url);
  const file = JSON.parse(readFileSync(require.resolve(`tiktoken/encoders/${name}.json`), "utf8")) as { bpe_ranks: string; pat_str: string };
  const fields = file.bpe_ranks.split(" ");
  const tokens: string[] = [];
  // "! <offset>" starts a run of base64 tokens with consecutive ranks.
  for (let i = 0; i < fields.length && tokens.length < maxRank; i++) {
    if (fields[i] === "!") {
      i++;
      continue;
    }
    let s = "";
    for (const b of Buffer.from(fields[i]!, "base64")) s += BYTE_TO_CHAR[b];
    tokens.push(s);
  }
  return { tokens, pattern: file.pat_str };
}

/** Vocabulary and merges in tokenizer.json form: every split of a token into two tokens is a merge at its rank. */
function bpeModel(tokens: string[]): { vocab: Record<string, number>; merges: [string, string][] } {
  // No prototype: "constructor" and the like are tokens here, not inherited properties.
  const vocab = Object.create(null) as Record<string, number>;
  tokens.forEach((t, rank) => (vocab[t] ??= rank));
  for (const c of BYTE_TO_CHAR) if (!(c in vocab)) throw new Error(`the test vocabulary misses byte ${JSON.stringify(c)}`);
  const merges: [string, string, number, number, number][] = [];
  tokens.forEach((t, rank) => {
    for (let i = 1; i < t.length; i++) {
      const a = t.slice(0, i), b = t.slice(i);
      if (a in vocab && b in vocab) merges.push([a, b, rank, vocab[a]!, vocab[b]!]);
    }
  });
  merges.sort((x, y) => x[2] - y[2] || x[3] - y[3] || x[4] - y[4]);
  return { vocab, merges: merges.map(([a, b]) => [a, b]) };
}

function added(content: string, id: number, special = true): Json {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special };
}

/**
 * Llama 3's layout on cl100k's first 30,000 ranks: its Split regex (digits up to three at a time), no
 * normalizer, ignore_merges, and a template adding <|begin_of_text|>.
 */
export function llama3Style(): TokenizerFiles {
  const { tokens, pattern } = tiktokenRanks("cl100k_base", 30_000);
  const { vocab, merges } = bpeModel(tokens);
  const specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"];
  const tokenizerJson: Json = {
    version: "1.0",
    added_tokens: [...specials.map((c, i) => added(c, 30_000 + i)), added("<tool>", 30_010, false)],
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: pattern }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: "Sequence",
      processors: [
        { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: "TemplateProcessing",
          single: [{ SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
          pair: [],
          special_tokens: {},
        },
      ],
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: true, vocab, merges },
  };
  const chatTemplate =
    "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}" +
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";
  return { source: "llama3-style test tokenizer", tokenizerJson, tokenizerConfig: { bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>", model_max_length: 8192 }, chatTemplate };
}

/** GPT-2's layout on its first 20,000 ranks: ByteLevel alone, with its own regex; no post-processor tokens. */
export function gpt2Style(): TokenizerFiles {
  const { tokens } = tiktokenRanks("gpt2", 20_000);
  const { vocab, merges } = bpeModel(tokens);
  const tokenizerJson: Json = {
    version: "1.0",
    added_tokens: [{ ...added("<|endoftext|>", 20_000), normalized: true }],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: "", end_of_word_suffix: "", fuse_unk: false, byte_fallback: false, vocab, merges: merges.map(([a, b]) => `${a} ${b}`) },
  };
  return { source: "gpt2-style test tokenizer", tokenizerJson, tokenizerConfig: {}, chatTemplate: null };
}

/**
 * o200k's regex on its first 30,000 ranks, with NFKC, a second regex stage (ByteLevel's own) and a
 * RoBERTa-style post-processor: the encoder's general regex path.
 */
export function o200kStyle(): TokenizerFiles {
  const { tokens, pattern } = tiktokenRanks("o200k_base", 30_000);
  const { vocab, merges } = bpeModel(tokens);
  const tokenizerJson: Json = {
    version: "1.0",
    added_tokens: [added("<s>", 30_000), added("</s>", 30_001), added("<|im_start|>", 30_002), added("<|im_end|>", 30_003)],
    normalizer: { type: "Sequence", normalizers: [{ type: "NFKC" }] },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: pattern }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
      ],
    },
    post_processor: { type: "RobertaProcessing", sep: ["</s>", 30_001], cls: ["<s>", 30_000], trim_offsets: true, add_prefix_space: false },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges },
  };
  return { source: "o200k-style test tokenizer", tokenizerJson, tokenizerConfig: {}, chatTemplate: null };
}

/** Writes a tokenizer as a Hugging Face model folder, for --tokenizer DIR. */
export async function writeTokenizerDir(files: TokenizerFiles): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "kvroute-tokenizer-"));
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify(files.tokenizerJson));
  await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify(files.tokenizerConfig));
  if (files.chatTemplate !== null) await writeFile(join(dir, "chat_template.jinja"), files.chatTemplate);
  return dir;
}

/** The same tokenizer with its tokenizer.json changed (on a copy). */
export function withJson(files: TokenizerFiles, change: (json: Json) => void): TokenizerFiles {
  const tokenizerJson = structuredClone(files.tokenizerJson);
  change(tokenizerJson);
  return { ...files, tokenizerJson };
}

/** Asserts two id arrays are equal, showing both as plain arrays when they are not. */
export function expectSameIds(actual: Uint32Array, expected: Uint32Array): void {
  expect(Array.from(actual)).toEqual(Array.from(expected));
}
