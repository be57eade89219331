// Reads tokenizer.json and decides two things: whether the fast byte-level encoder reproduces this
// tokenizer exactly, and whether text may be encoded section by section (between added tokens). Each "no"
// comes with a reason the caller logs.
import * as hf from "@huggingface/tokenizers";
import { AddedTokenSplitter, rawMatchedTokens, readAddedTokens, stripping, type AddedToken } from "./added-tokens.js";
import { BYTE_TO_CHAR } from "./byte-level.js";
import { MAX_MERGES, PairTable } from "./bpe.js";
import type { ByteLevelModel } from "./byte-level-encoder.js";
import { PreTokenizer, type LevelCursor, type RegexStage } from "./pre-tokenize.js";
import { knownScanner } from "./scanner.js";

/** Ids the post-processor puts around a text when special tokens are added (completions). */
export interface SpecialIds {
  prefixIds: number[];
  suffixIds: number[];
}

export interface FastPlan {
  model: ByteLevelModel;
  /** Which pre-tokenizer runs, for logs: a hand-written scanner or the regexes. */
  preTokenizer: string;
}

export interface TokenizerPlan {
  addedTokens: AddedToken[];
  /** Cuts text at the added tokens matched on raw text. */
  splitter: AddedTokenSplitter;
  /** Null when encoding section by section gives the ids of the whole text; else why it may not. */
  sectionsInexact: string | null;
  /** The fast encoder's tables, or why it cannot reproduce this tokenizer. */
  fast: FastPlan | { reason: string };
  /** The post-processor's special tokens, or why they are not known (then the library adds them). */
  specials: SpecialIds | { reason: string };
  /** One more than the largest token id, added tokens included. */
  vocabSize: number;
}

type Json = Record<string, unknown>;

// The library compiles its pre-tokenizers' patterns (translating Oniguruma syntax to JavaScript); reusing
// its compiled RegExp keeps the pieces identical. Its type declarations omit these two exported classes.
const { SplitPreTokenizer, ByteLevelPreTokenizer } = hf as unknown as {
  SplitPreTokenizer: new (config: Json) => { pattern: RegExp | null };
  ByteLevelPreTokenizer: new (config: Json) => { pattern: RegExp };
};

export function planTokenizer(tokenizerJson: Json, tokenizerConfig: Json): TokenizerPlan {
  const addedTokens = readAddedTokens(tokenizerJson);
  const hasNormalizer = tokenizerJson.normalizer !== null && tokenizerJson.normalizer !== undefined;
  const raw = rawMatchedTokens(addedTokens, hasNormalizer);
  const splitter = new AddedTokenSplitter(raw);
  const fast = attempt(() => planFast(tokenizerJson, tokenizerConfig, addedTokens, hasNormalizer));
  const specials = attempt(() => planSpecials(tokenizerJson, addedTokens));
  return { addedTokens, splitter, sectionsInexact: sectionsInexact(tokenizerJson, raw), fast, specials, vocabSize: vocabSize(tokenizerJson, addedTokens) };
}

function attempt<T>(plan: () => T): T | { reason: string } {
  try {
    return plan();
  } catch (err) {
    if (!(err instanceof Unsupported)) throw err;
    return { reason: err.message };
  }
}

/** The length of the library's id → token array: every id below it is a valid token id. */
function vocabSize(json: Json, addedTokens: AddedToken[]): number {
  const vocab = (json.model as Json | undefined)?.vocab;
  let size = 0;
  if (typeof vocab === "object" && vocab !== null && !Array.isArray(vocab)) {
    let entries = 0;
    for (const token in vocab) {
      entries++;
      const id = (vocab as Json)[token];
      if (typeof id === "number" && id + 1 > size) size = id + 1;
    }
    size = Math.max(size, entries);
  } else if (Array.isArray(vocab)) {
    size = vocab.length; // Unigram: a list of [piece, score]
  }
  for (const t of addedTokens) if (t.id + 1 > size) size = t.id + 1;
  return size;
}

function planSpecials(json: Json, addedTokens: AddedToken[]): SpecialIds {
  const vocab = ((json.model as Json | undefined)?.vocab ?? {}) as Json;
  const added = new Map(addedTokens.map((t) => [t.content, t.id]));
  const idOf = (t: string): number => {
    const id = added.get(t) ?? (Object.hasOwn(vocab, t) ? vocab[t] : undefined);
    return typeof id === "number" ? id : unsupported(`post-processor token ${JSON.stringify(t)} is not in the vocabulary`);
  };
  const { prefix, suffix } = planPostProcessor(json.post_processor);
  return { prefixIds: prefix.map(idOf), suffixIds: suffix.map(idOf) };
}

/** Why encoding section by section could differ from encoding the whole text, or null. */
function sectionsInexact(tokenizerJson: Json, raw: AddedToken[]): string | null {
  const strip = stripping(raw);
  if (strip) return `added token ${JSON.stringify(strip.content)} strips whitespace from the text around it (lstrip/rstrip)`;
  // Metaspace with prepend_scheme "first" treats the first section differently from the others.
  if (findType(tokenizerJson.pre_tokenizer, (n) => n.type === "Metaspace" && n.prepend_scheme === "first")) {
    return "the Metaspace pre-tokenizer prepends to the first section only (prepend_scheme first)";
  }
  return null;
}

function findType(node: unknown, test: (n: Json) => boolean): boolean {
  if (Array.isArray(node)) return node.some((n) => findType(n, test));
  if (typeof node !== "object" || node === null) return false;
  if (test(node as Json)) return true;
  return Object.values(node).some((v) => findType(v, test));
}

class Unsupported extends Error {}

function unsupported(why: string): never {
  throw new Unsupported(why);
}

function planFast(json: Json, config: Json, addedTokens: AddedToken[], hasNormalizer: boolean): FastPlan {
  if (config.remove_space === true) unsupported("tokenizer_config.json sets remove_space");
  if (config.do_lowercase_and_remove_accent === true) unsupported("tokenizer_config.json sets do_lowercase_and_remove_accent");
  const strip = stripping(addedTokens);
  if (strip) unsupported(`added token ${JSON.stringify(strip.content)} strips the whitespace around it`);
  const normalizedToken = hasNormalizer ? addedTokens.find((t) => t.normalized) : undefined;
  if (normalizedToken) unsupported(`added token ${JSON.stringify(normalizedToken.content)} is matched after normalization`);

  const normalize = planNormalizer(json.normalizer);
  const { stages, prefixSpace, scanner, scannerName } = planPreTokenizer(json.pre_tokenizer);
  const model = json.model as Json | undefined;
  if (typeof model !== "object" || model === null) unsupported("tokenizer.json has no model");
  if (model.type !== "BPE") unsupported(`the model is ${String(model.type ?? "untyped")}, not BPE`);
  if (model.dropout !== null && model.dropout !== undefined && model.dropout !== 0) unsupported("BPE dropout is set");
  if (model.byte_fallback === true) unsupported("BPE byte_fallback is set (not a byte-level vocabulary)");
  for (const key of ["end_of_word_suffix", "continuing_subword_suffix", "continuing_subword_prefix"]) {
    if (typeof model[key] === "string" && model[key] !== "") unsupported(`BPE ${key} is set`);
  }
  const vocab = model.vocab;
  if (typeof vocab !== "object" || vocab === null || Array.isArray(vocab)) unsupported("the BPE vocab is not an object");

  // Token string → id as the library resolves it: an added token's id wins over the vocabulary's.
  const tokensToIds = new Map<string, number>();
  let maxTokenBytes = 1;
  for (const token in vocab) {
    // A byte-level token spells one byte per character.
    if (token.length > maxTokenBytes) maxTokenBytes = token.length;
    const id = (vocab as Json)[token];
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0) unsupported(`vocab entry ${JSON.stringify(token)} has no integer id`);
    tokensToIds.set(token, id);
  }
  for (const t of addedTokens) tokensToIds.set(t.content, t.id);
  // Merging works on ids: two tokens sharing an id would merge alike where the library tells them apart.
  const owner = new Map<number, string>();
  for (const [token, id] of tokensToIds) {
    const other = owner.get(id);
    if (other !== undefined) unsupported(`tokens ${JSON.stringify(other)} and ${JSON.stringify(token)} share id ${id}`);
    owner.set(id, token);
  }
  const known = (token: string, what: string): number => tokensToIds.get(token) ?? unsupported(`${what} ${JSON.stringify(token)} is not in the vocabulary`);

  const byteIds = new Int32Array(256);
  for (let b = 0; b < 256; b++) byteIds[b] = known(BYTE_TO_CHAR[b]!, `byte ${b}'s token`);
  const merges = model.merges;
  if (!Array.isArray(merges)) unsupported("the BPE merges are not an array");
  if (merges.length >= MAX_MERGES) unsupported(`${merges.length} merges is more than the encoder's ${MAX_MERGES}`);
  const pairs = new PairTable(merges.length);
  const newFormat = Array.isArray(merges[0]);
  for (let rank = 0; rank < merges.length; rank++) {
    const m: unknown = merges[rank];
    // The library's reading: [a, b] pairs, or "a b" strings split at the first two spaces.
    const parts = newFormat ? m : typeof m === "string" ? m.split(" ", 2) : null;
    if (!Array.isArray(parts) || typeof parts[0] !== "string" || typeof parts[1] !== "string") unsupported(`merge ${rank} is not a pair of tokens`);
    const [a, b] = parts as [string, string];
    pairs.set(known(a, `merge ${rank}'s left token`), known(b, `merge ${rank}'s right token`), rank, known(a + b, `merge ${rank}'s result`));
  }

  const wholeWords = model.ignore_merges === true ? tokensToIds : null;
  return {
    model: { normalize, prefixSpace, preTokenizer: new PreTokenizer(stages, scanner), byteIds, pairs, wholeWords, maxTokenBytes },
    preTokenizer: scannerName ?? `${stages.length} regex stage${stages.length === 1 ? "" : "s"}`,
  };
}

const UNICODE_FORMS = new Set(["NFC", "NFD", "NFKC", "NFKD"]);

function planNormalizer(config: unknown): ((text: string) => string) | null {
  if (config === null || config === undefined) return null;
  const forms: string[] = [];
  const visit = (n: Json) => {
    if (n.type === "Sequence" && Array.isArray(n.normalizers)) {
      for (const child of n.normalizers) if (child !== null) visit(child as Json);
    } else if (typeof n.type === "string" && UNICODE_FORMS.has(n.type)) {
      forms.push(n.type);
    } else {
      unsupported(`the ${String(n.type)} normalizer`);
    }
  };
  visit(config as Json);
  if (forms.length === 0) return null;
  return (text) => {
    for (const form of forms) text = text.normalize(form);
    return text;
  };
}

interface PreTokenizerPlan {
  stages: RegexStage[];
  prefixSpace: boolean;
  scanner: (() => LevelCursor) | null;
  scannerName: string | null;
}

function planPreTokenizer(config: unknown): PreTokenizerPlan {
  const nodes = (config as Json | null)?.type === "Sequence" ? ((config as Json).pretokenizers as unknown[]) : [config];
  if (!Array.isArray(nodes) || nodes.length === 0) unsupported("no pre-tokenizer (byte-level BPE needs ByteLevel)");
  const last = nodes[nodes.length - 1] as Json | null;
  if (last?.type !== "ByteLevel") unsupported(`the pre-tokenizer does not end with ByteLevel (${describe(config)})`);
  const stages: RegexStage[] = [];
  for (const node of nodes.slice(0, -1) as (Json | null)[]) {
    if (node?.type !== "Split") unsupported(`the ${String(node?.type)} pre-tokenizer`);
    if (String(node.behavior ?? "").toLowerCase() === "removed" && node.invert !== true) unsupported("a Split pre-tokenizer with behavior Removed");
    const pattern = new SplitPreTokenizer(node).pattern;
    if (pattern === null) unsupported("a Split pre-tokenizer without a pattern");
    stages.push({ pattern, keepGaps: node.invert !== true });
  }
  // ByteLevel's add_prefix_space applies to each string it is given: the whole section only when it stands alone.
  const prefixSpace = last.add_prefix_space === true;
  if (prefixSpace && nodes.length > 1) unsupported("ByteLevel add_prefix_space after other pre-tokenizers");
  if (last.use_regex !== false) stages.push({ pattern: new ByteLevelPreTokenizer(last).pattern, keepGaps: false });
  const first = nodes[0] as Json;
  const known = first.type === "Split" && first.invert !== true ? knownScanner((first.pattern as Json | undefined)?.Regex) : null;
  return { stages, prefixSpace, scanner: known?.make ?? null, scannerName: known?.name ?? null };
}

function planPostProcessor(config: unknown): { prefix: string[]; suffix: string[] } {
  if (config === null || config === undefined) return { prefix: [], suffix: [] };
  const n = config as Json;
  switch (n.type) {
    case "ByteLevel":
      return { prefix: [], suffix: [] };
    case "TemplateProcessing": {
      const prefix: string[] = [], suffix: string[] = [];
      let seen = false;
      for (const item of (n.single as Json[] | undefined) ?? []) {
        const special = item.SpecialToken as Json | undefined;
        const sequence = item.Sequence as Json | undefined;
        if (special && typeof special.id === "string") (seen ? suffix : prefix).push(special.id);
        else if (sequence?.id === "A" && !seen) seen = true;
        else unsupported("a TemplateProcessing template other than special tokens around sequence A");
      }
      if (!seen) unsupported("a TemplateProcessing template without sequence A");
      return { prefix, suffix };
    }
    case "RobertaProcessing":
    case "BertProcessing": {
      const cls = n.cls as unknown[] | undefined, sep = n.sep as unknown[] | undefined;
      if (typeof cls?.[0] !== "string" || typeof sep?.[0] !== "string") unsupported(`a ${n.type} post-processor without cls and sep`);
      return { prefix: [cls[0]], suffix: [sep[0]] };
    }
    case "Sequence": {
      // Each processor wraps the previous one's output.
      let prefix: string[] = [], suffix: string[] = [];
      for (const p of (n.processors as unknown[] | undefined) ?? []) {
        const inner = planPostProcessor(p);
        prefix = [...inner.prefix, ...prefix];
        suffix = [...suffix, ...inner.suffix];
      }
      return { prefix, suffix };
    }
    default:
      unsupported(`the ${String(n.type)} post-processor`);
  }
}

function describe(config: unknown): string {
  return JSON.stringify(config)?.slice(0, 120) ?? "none";
}
