// The request bodies bench:serve sends, made the same way by wrk (a Lua script) and by autocannon (a
// setupRequest function), so that a row measures the same load whichever tool drives it.
//
// - ids: 256 token ids, max_tokens 1 (optionally streaming 16 tokens): one fixed body.
// - chat, repeated system prompt: a 900-word system prompt that is the same in every request, and a user
//   question numbered per request (so only the question is new to the tokenization cache).
// - chat, unique prompts: every request's 900 words are drawn afresh (seeded by its number), so no
//   request's system prompt was seen before. The words are the simulated engine's plain English word list:
//   text of common words, as prose is, which the tokenizer's per-word cache does see again.
import { WORDS } from "../../src/mock-engine/index.js";

export const MODEL = "Qwen/Qwen3-0.6B";
export const SYSTEM_WORDS = 900;

/** A fixed body, or one made per request from the request's number. */
export type Body = { kind: "fixed"; body: string } | { kind: "chat"; unique: boolean };

const tokenIds = Array.from({ length: 256 }, (_, i) => (i * 7919) % 150_000);

export function idsBody(options: { stream?: boolean } = {}): Body {
  const body = options.stream
    ? { model: MODEL, prompt: tokenIds, max_tokens: 16, ignore_eos: true, stream: true }
    : { model: MODEL, prompt: tokenIds, max_tokens: 1 };
  return { kind: "fixed", body: JSON.stringify(body) };
}

export function chatBody(unique: boolean): Body {
  return { kind: "chat", unique };
}

// A 32-bit linear congruential generator whose products stay below 2^53, so that LuaJIT's doubles and
// JavaScript's numbers step it identically.
const LCG_A = 69069;
const LCG_C = 1;
const TWO_32 = 4294967296;
const REPEATED_SEED = 7;

function words(seed: number): string {
  const out: string[] = new Array(SYSTEM_WORDS);
  let x = seed % TWO_32;
  for (let i = 0; i < SYSTEM_WORDS; i++) {
    x = (x * LCG_A + LCG_C) % TWO_32;
    out[i] = WORDS[x % WORDS.length]!;
  }
  return out.join(" ");
}

const repeatedSystem = words(REPEATED_SEED);
// Seeds for unique prompts: the request number times an odd constant, kept apart from the repeated seed.
const uniqueSeed = (n: number) => ((n * 2654435) % TWO_32) + 1000;

function chatJson(system: string, n: number): string {
  return JSON.stringify({
    model: MODEL,
    messages: [
      { role: "system", content: system },
      { role: "user", content: `Question ${n}: how does the router pick an engine?` },
    ],
    max_tokens: 1,
  });
}

/** The body of request number `n` (from 1). */
export function bodyOf(body: Body, n: number): string {
  if (body.kind === "fixed") return body.body;
  return chatJson(body.unique ? `Request ${n}. ${words(uniqueSeed(n))}` : repeatedSystem, n);
}

/**
 * A wrk script sending `body` as POSTs with a JSON content type; per-request bodies are numbered from
 * `first` (each run takes new numbers, so that unique prompts stay unique across runs).
 */
export function wrkScript(body: Body, first: number): string {
  const head = `wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n`;
  if (body.kind === "fixed") return `${head}wrk.body = ${JSON.stringify(body.body)}\n`;
  // The same bodies as bodyOf: words and prefix built in Lua, the JSON around them fixed. Every string
  // involved is plain ASCII without quotes or backslashes, so no escaping is needed.
  const list = WORDS.map((w) => JSON.stringify(w)).join(",");
  return `${head}
local words = {${list}}
local nwords = #words
local repeated = ${JSON.stringify(repeatedSystem)}
local n = ${first - 1}
local function draw(seed)
  local parts = {}
  local x = seed % ${TWO_32}
  for i = 1, ${SYSTEM_WORDS} do
    x = (x * ${LCG_A} + ${LCG_C}) % ${TWO_32}
    parts[i] = words[(x % nwords) + 1]
  end
  return table.concat(parts, " ")
end
request = function()
  n = n + 1
  local system = ${body.unique ? `"Request " .. n .. ". " .. draw(((n * 2654435) % ${TWO_32}) + 1000)` : "repeated"}
  local json = '{"model":"${MODEL}","messages":[{"role":"system","content":"' .. system ..
    '"},{"role":"user","content":"Question ' .. n .. ': how does the router pick an engine?"}],"max_tokens":1}'
  return wrk.format(nil, nil, nil, json)
end
`;
}
