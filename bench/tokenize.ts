// npm run bench:tokenize: tokenization per thread, side by side in one run: @huggingface/tokenizers, the
// fast byte-level encoder (first sight of the text, and with its word cache warm), a hit in the exact
// tokenization cache, and tiktoken's cl100k_base as a speed reference; then a chat with a long system
// prompt, rendered and tokenized as the preparation pool does it, today's way and the cached way.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import { Bench } from "tinybench";
import { get_encoding } from "tiktoken";
import { ByteLevelEncoder } from "../src/router/prepare/tokenize/byte-level-encoder.js";
import { IdBuffer } from "../src/router/prepare/tokenize/id-buffer.js";
import { planTokenizer } from "../src/router/prepare/tokenize/plan.js";
import { SectionedEncoder } from "../src/router/prepare/tokenize/sections.js";
import { defaultTokenizerDir, readTokenizerFiles, TextTokenizer } from "../src/router/prepare/tokenize/index.js";
import { packageRoot } from "../src/util/package-root.js";
import { fixed, machineLine, msPerOp, printTable, ratio } from "./lib/report.js";

const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 2000);
// Slow rows (the library on first sight takes tens of milliseconds a call) need few iterations.
const OPTIONS = { time: TIME_MS, warmup: true, iterations: 5, warmupIterations: 3 };

const files = await readTokenizerFiles(defaultTokenizerDir());
const hf = new Tokenizer(files.tokenizerJson, files.tokenizerConfig);
const plan = planTokenizer(files.tokenizerJson, files.tokenizerConfig);
if (!("model" in plan.fast)) throw new Error(`the fast encoder does not take the shipped tokenizer: ${plan.fast.reason}`);
const fast = new ByteLevelEncoder(plan.fast.model);
const fastSections = new SectionedEncoder(plan.splitter, fast, null);
const cached = new TextTokenizer(files, { cacheBytes: 64 << 20 });
const cl100k = get_encoding("cl100k_base");

const text = readFileSync(join(packageRoot(), "README.md"), "utf8");
const out = new IdBuffer();
const encodeFast = () => {
  out.clear();
  fastSections.encode(text, out);
  return out.length;
};

// Every row encodes the same text; the Qwen3 rows must agree on the ids.
const reference: number[] = hf.encode(text, { add_special_tokens: false }).ids;
encodeFast();
if (out.length !== reference.length || reference.some((id, i) => out.ids[i] !== id)) throw new Error("the fast encoder disagrees with @huggingface/tokenizers on the README");
if (!cached.encodeText(text, false).every((id, i) => id === reference[i])) throw new Error("the cache disagrees with @huggingface/tokenizers on the README");
const tokens = reference.length;
const cl100kTokens = cl100k.encode(text).length;

console.log(`bench:tokenize  Qwen3 tokenizer on README.md (${text.length.toLocaleString("en-US")} characters, ${tokens.toLocaleString("en-US")} tokens); ${machineLine()}; one thread; ${TIME_MS} ms per task`);

const bench = new Bench(OPTIONS);
bench
  .add("(a) @huggingface/tokenizers", () => void hf.encode(text, { add_special_tokens: false }))
  .add("(a') @huggingface/tokenizers, first sight (its word cache emptied)", () => {
    (hf as unknown as { model: { clear_cache(): void } }).model.clear_cache();
    hf.encode(text, { add_special_tokens: false });
  })
  .add("(b) fast encoder, first sight (word cache emptied)", () => {
    fast.clearWordCache();
    encodeFast();
  })
  .add("(b') fast encoder, word cache warm", () => void encodeFast())
  .add("(c) exact tokenization cache hit", () => void cached.encodeText(text, false))
  .add(`(d) tiktoken cl100k_base (${cl100kTokens.toLocaleString("en-US")} tokens, its own)`, () => void cl100k.encode(text));
await bench.run();
const base = msPerOp(bench.tasks[0]);
printTable(
  "tokens per second, one thread",
  ["encoder", "µs/call", "M tokens/s", "vs (a)"],
  bench.tasks.map((task, i) => {
    const ms = msPerOp(task);
    const n = i === 5 ? cl100kTokens : tokens;
    return [task.name, fixed(ms * 1000), fixed(n / ms / 1000, 2), ratio(base / ms)];
  }),
);

// A chat whose 900-word system prompt is the same in every request, with a new question each time.
const template = new Template(files.chatTemplate!);
const system = text.split(/\s+/).slice(0, 900).join(" ");
let question = 0;
const chat = () => [
  { role: "system", content: system },
  { role: "user", content: `Question ${question++}: how does the router pick an engine?` },
];
const todays = () => hf.encode(template.render({ eos_token: "<|im_end|>", pad_token: "<|endoftext|>", messages: chat(), add_generation_prompt: true }), { add_special_tokens: false });
const chatTokens = cached.encodeChat(chat()).length;
const chatBench = new Bench(OPTIONS);
chatBench
  .add("(e) template render + @huggingface/tokenizers", () => void todays())
  .add("(f) template render alone", () => void template.render({ eos_token: "<|im_end|>", pad_token: "<|endoftext|>", messages: chat(), add_generation_prompt: true }))
  .add("(g) traced render alone", () => void cached.renderChat(chat()))
  .add("(h) traced render + tokenization cache (the pool's path)", () => void cached.encodeChat(chat()));
await chatBench.run();
const chatBase = msPerOp(chatBench.tasks[0]);
printTable(
  `chat, 900-word system prompt + a new question (${chatTokens.toLocaleString("en-US")} tokens)`,
  ["path", "µs/request", "requests/s", "vs (e)"],
  chatBench.tasks.map((task) => {
    const ms = msPerOp(task);
    return [task.name, fixed(ms * 1000), fixed(1000 / ms, 0), ratio(chatBase / ms)];
  }),
);
const s = cached.stats();
console.log(`\ncache after the run: ${s.sections!.entries} sections, ${fixed(s.sections!.bytes / 1024)} KiB; chat renders from traces ${s.chat!.reused}, full ${s.chat!.full}`);
cl100k.free();
