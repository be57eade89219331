import type { ChatMessage } from "../prepare/tokenize/index.js";
import type { GenerateInput, Prompt, Sampling } from "../types.js";
import { badField } from "./errors.js";
import { Fields, kindOf } from "./fields.js";

export type Endpoint = "completions" | "chat";

/** A validated OpenAI request: what the router needs, nothing it does not support. */
export interface ApiRequest {
  endpoint: Endpoint;
  model: string;
  prompts: Prompt[];
  sampling: Sampling;
  stream: boolean;
  includeUsage: boolean;
  cacheSalt: string | undefined;
}

/** What the router gets for one prompt of a request. */
export function generateInput(request: ApiRequest, prompt: Prompt): GenerateInput {
  return { prompt, sampling: request.sampling, cacheSalt: request.cacheSalt };
}

const KNOWN_ROLES = new Set(["system", "developer", "user", "assistant", "tool"]);
const MAX_STOP = 4;
/** Prompts in one completions batch: each becomes an engine request, so one body cannot flood the fleet. */
const MAX_BATCH = 256;
const U32_MAX = 4294967295;
/** OpenAI's default for /v1/completions when max_tokens is absent. */
const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

export function parseRequest(endpoint: Endpoint, body: unknown): ApiRequest {
  const f = Fields.of(body);
  const model = f.requiredString("model");
  const prompts = endpoint === "chat" ? [parseChat(f)] : parseCompletionPrompts(f);
  rejectUnsupported(f, endpoint);
  const stream = f.boolean("stream") ?? false;
  const streamOptions = f.object("stream_options");
  if (streamOptions && !stream) throw badField("stream_options", "'stream_options' is only allowed when 'stream' is true");
  const includeUsage = streamOptions?.boolean("include_usage") ?? false;
  return {
    endpoint,
    model,
    prompts,
    sampling: parseSampling(f, endpoint),
    stream,
    includeUsage,
    cacheSalt: parseCacheSalt(f),
  };
}

function parseCompletionPrompts(f: Fields): Prompt[] {
  const prompt = f.raw("prompt");
  if (prompt === undefined || prompt === null) throw badField("prompt", "'prompt' is required", "missing_required_parameter");
  if (typeof prompt === "string") return [textPrompt(prompt, "prompt")];
  if (!Array.isArray(prompt)) throw f.typeError("prompt", "a string, an array of token ids, or an array of either", prompt);
  if (prompt.length === 0) throw badField("prompt", "'prompt' must not be empty");
  if (typeof prompt[0] === "number") return [tokenPrompt(prompt, "prompt")];
  if (prompt.length > MAX_BATCH) {
    throw badField("prompt", `a batch takes at most ${MAX_BATCH} prompts, got ${prompt.length}; send several requests`, "batch_too_large");
  }
  return prompt.map((item, i) => {
    const param = `prompt[${i}]`;
    if (typeof item === "string") return textPrompt(item, param);
    if (Array.isArray(item)) return tokenPrompt(item, param);
    throw badField(param, `'${param}' must be a string or an array of token ids, got ${kindOf(item)}`, "invalid_type");
  });
}

function textPrompt(text: string, param: string): Prompt {
  if (text.length === 0) throw badField(param, `'${param}' must not be empty`);
  return { kind: "text", text };
}

/** Token ids must be integers from 0 up; the upper bound (the vocabulary) is checked once it is known. */
function tokenPrompt(items: unknown[], param: string): Prompt {
  if (items.length === 0) throw badField(param, `'${param}' must not be empty`);
  const tokens = new Uint32Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const v = items[i];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > U32_MAX) {
      throw badField(param, `'${param}[${i}]' must be a non-negative integer token id, got ${kindOf(v)}`, "invalid_token_id");
    }
    tokens[i] = v;
  }
  return { kind: "tokens", tokens };
}

function parseChat(f: Fields): Prompt {
  const raw = f.raw("messages");
  if (raw === undefined || raw === null) throw badField("messages", "'messages' is required", "missing_required_parameter");
  if (!Array.isArray(raw)) throw f.typeError("messages", "an array", raw);
  if (raw.length === 0) throw badField("messages", "'messages' must not be empty");
  const messages = raw.map((m, i) => parseMessage(m, `messages[${i}]`));
  const templateKwargs = { ...(f.record("chat_template_kwargs") ?? {}) };
  const addGenerationPrompt = f.boolean("add_generation_prompt");
  if (addGenerationPrompt !== undefined) templateKwargs.add_generation_prompt = addGenerationPrompt;
  return { kind: "chat", messages, templateKwargs };
}

function parseMessage(value: unknown, param: string): ChatMessage {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw badField(param, `'${param}' must be an object with 'role' and 'content', got ${kindOf(value)}`, "invalid_type");
  }
  const m = new Fields(value as Record<string, unknown>, `${param}.`);
  const role = m.requiredString("role");
  if (!KNOWN_ROLES.has(role)) {
    throw badField(`${param}.role`, `'${param}.role' must be one of ${[...KNOWN_ROLES].join(", ")}, got "${role}"`);
  }
  const message: ChatMessage = { role, content: messageContent(m, param) };
  const name = m.string("name");
  if (name !== undefined) message.name = name;
  return message;
}

/** Content is a string or a list of text parts; other part types (images, audio) are not supported. */
function messageContent(m: Fields, param: string): string {
  const content = m.raw("content");
  if (content === undefined || content === null) return "";
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) throw m.typeError("content", "a string or an array of content parts", content);
  return content
    .map((part, i) => {
      const p = `${param}.content[${i}]`;
      if (typeof part !== "object" || part === null || (part as { type?: unknown }).type !== "text") {
        throw badField(p, `'${p}' must be a text part ({"type": "text", "text": ...}); other content types are not supported`);
      }
      const text = (part as { text?: unknown }).text;
      if (typeof text !== "string") throw badField(`${p}.text`, `'${p}.text' must be a string, got ${kindOf(text)}`, "invalid_type");
      return text;
    })
    .join("");
}

function parseSampling(f: Fields, endpoint: Endpoint): Sampling {
  const maxKey = endpoint === "chat" && f.has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  let maxTokens = f.integer(maxKey, 1, U32_MAX) ?? null;
  if (maxTokens === null && endpoint === "completions") maxTokens = COMPLETIONS_DEFAULT_MAX_TOKENS;
  const minTokens = f.integer("min_tokens", 0, U32_MAX) ?? 0;
  if (maxTokens !== null && minTokens > maxTokens) {
    throw badField("min_tokens", `'min_tokens' (${minTokens}) must not exceed '${maxKey}' (${maxTokens})`);
  }
  return {
    maxTokens,
    temperature: f.number("temperature", 0, 2) ?? 1,
    topP: positiveFraction(f, "top_p"),
    topK: parseTopK(f),
    seed: f.integer("seed", Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER) ?? null,
    stop: parseStop(f),
    stopTokenIds: parseStopTokenIds(f),
    ignoreEos: f.boolean("ignore_eos") ?? false,
    minTokens,
  };
}

function positiveFraction(f: Fields, key: string): number {
  const v = f.number(key, 0, 1);
  if (v === 0) throw badField(key, `'${key}' must be greater than 0 and at most 1, got 0`);
  return v ?? 1;
}

function parseTopK(f: Fields): number {
  const v = f.integer("top_k", -1, U32_MAX);
  if (v === 0) throw badField("top_k", "'top_k' must be -1 (disabled) or at least 1, got 0");
  return v ?? -1;
}

function parseStop(f: Fields): string[] {
  const v = f.raw("stop");
  if (v === undefined || v === null) return [];
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== "string")) throw f.typeError("stop", "a string or an array of strings", v);
  if (list.length > MAX_STOP) throw badField("stop", `'stop' takes at most ${MAX_STOP} sequences, got ${list.length}`);
  if (list.some((s) => s === "")) throw badField("stop", "'stop' sequences must not be empty strings");
  return list as string[];
}

function parseStopTokenIds(f: Fields): number[] {
  const v = f.raw("stop_token_ids");
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((t) => typeof t !== "number" || !Number.isInteger(t) || t < 0 || t > U32_MAX)) {
    throw f.typeError("stop_token_ids", "an array of non-negative integer token ids", v);
  }
  return v as number[];
}

function parseCacheSalt(f: Fields): string | undefined {
  const salt = f.string("cache_salt");
  if (salt === "") throw badField("cache_salt", "'cache_salt' must not be empty when given");
  return salt;
}

interface Refused {
  key: string;
  /** The values that ask for nothing (absent and null always do). */
  unused: (value: unknown, endpoint: Endpoint) => boolean;
  message: string;
}

const is = (...values: unknown[]) => (v: unknown) => values.includes(v);
const emptyArray = (v: unknown) => Array.isArray(v) && v.length === 0;
const emptyObject = (v: unknown) => typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0;
const never = () => false;
const PROTOCOL = "is not supported by kvroute's engine protocol";

/**
 * Fields of the OpenAI API (and vLLM's extensions) that kvroute's engine protocol cannot honour. Silently
 * ignoring them would return something other than what was asked for, so any value but the one that asks
 * for nothing is refused by name, with one error per field whatever the value's type.
 */
const REFUSED: Refused[] = [
  { key: "n", unused: is(1), message: "'n' other than 1 is not supported; send one request per completion" },
  { key: "best_of", unused: is(1), message: "'best_of' other than 1 is not supported" },
  { key: "use_beam_search", unused: is(false), message: "'use_beam_search' is not supported" },
  { key: "echo", unused: is(false), message: "'echo' is not supported" },
  { key: "suffix", unused: is(""), message: "'suffix' is not supported" },
  { key: "presence_penalty", unused: is(0), message: `'presence_penalty' other than 0 ${PROTOCOL}` },
  { key: "frequency_penalty", unused: is(0), message: `'frequency_penalty' other than 0 ${PROTOCOL}` },
  { key: "repetition_penalty", unused: is(1), message: `'repetition_penalty' other than 1 ${PROTOCOL}` },
  { key: "min_p", unused: is(0), message: `'min_p' other than 0 ${PROTOCOL}` },
  { key: "logit_bias", unused: emptyObject, message: "'logit_bias' is not supported" },
  // Completions take a count of alternatives (0: none asked for), chat a boolean.
  { key: "logprobs", unused: (v, endpoint) => v === false || (endpoint === "completions" && v === 0), message: `'logprobs' ${PROTOCOL} yet` },
  { key: "top_logprobs", unused: is(0), message: `'top_logprobs' ${PROTOCOL} yet` },
  { key: "prompt_logprobs", unused: never, message: `'prompt_logprobs' ${PROTOCOL} yet` },
  { key: "tools", unused: emptyArray, message: "'tools' are not supported" },
  // Without tools, "none" and "auto" both mean no tool call.
  { key: "tool_choice", unused: is("none", "auto"), message: "'tool_choice' is not supported ('tools' are not)" },
  { key: "functions", unused: emptyArray, message: "'functions' are not supported" },
  { key: "function_call", unused: is("none", "auto"), message: "'function_call' is not supported ('functions' are not)" },
  {
    key: "response_format",
    unused: (v) => typeof v === "object" && v !== null && Object.keys(v).length === 1 && (v as { type?: unknown }).type === "text",
    message: `'response_format' other than {"type": "text"} is not supported`,
  },
  ...["guided_json", "guided_regex", "guided_choice", "guided_grammar", "structured_outputs"].map((key) => ({
    key,
    unused: never,
    message: `'${key}' (structured output) is not supported`,
  })),
];

function rejectUnsupported(f: Fields, endpoint: Endpoint): void {
  for (const { key, unused, message } of REFUSED) {
    const v = f.raw(key);
    if (v !== undefined && v !== null && !unused(v, endpoint)) throw badField(key, message, "unsupported_value");
  }
}
