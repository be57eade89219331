// npm run bench:big-prompt [-- --rounds N]: how long small chats wait while a 15.6 MB prompt is in flight,
// with the body lane (the default: big bodies parsed and tokenized on a thread of their own) and without
// it (--body-lane-bytes 0: parsed on the main thread, tokenized in the preparation pool). Two routers, one
// pool thread each (as on a 2-core machine), simulated engines with no delay; the rounds alternate between
// them, so that both see the same machine. Each round sends one huge prompt and, every 25 ms until it is
// answered, a small chat on a connection of its own.
//
// Two contexts: the simulated engines' default (32,768 tokens), where the prompt is refused once tokenizing
// passes the context; and 16 Mi tokens, where it is tokenized in full (about 3.4 million tokens) and
// refused afterwards for its max_tokens, the most work one request can ask of the router.
import { parseArgs } from "node:util";
import { MODEL, hugeText, jsonBody, percentile, post, probeWhile, startRouter, type RouterProcess } from "./lib/router-load.js";
import { fixed, machineLine, printTable } from "./lib/report.js";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "5" } } });
const ROUNDS = Number(values.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) {
  console.error("usage: npm run bench:big-prompt -- [--rounds N]");
  process.exit(2);
}
const HUGE_CHARS = 15_600_000;
const LONG_CONTEXT = 1 << 24;
const PROBE_EVERY_MS = 25;

interface Setup {
  name: string;
  context: "32,768" | "16 Mi";
  router: RouterProcess;
  /** Small-chat latencies while a huge prompt was in flight, and the huge prompts' own. */
  small: number[];
  huge: number[];
  /** Small-chat latencies with nothing else in flight. */
  idle: number[];
}

async function warm(router: RouterProcess): Promise<void> {
  for (let i = 0; i < 50; i++) await post(router.url, "/v1/chat/completions", jsonBody({ model: MODEL, messages: [{ role: "user", content: `warm up ${i}` }], max_tokens: 1 }));
}

async function round(setup: Setup, n: number): Promise<void> {
  const long = setup.context === "16 Mi";
  const body = jsonBody({ model: MODEL, prompt: hugeText(HUGE_CHARS, n + 1), max_tokens: long ? LONG_CONTEXT : 1 });
  for (let i = 0; i < 10; i++) setup.idle.push((await post(setup.router.url, "/v1/chat/completions", jsonBody({ model: MODEL, messages: [{ role: "user", content: `idle ${n} ${i}` }], max_tokens: 1 })))!.ms);
  const huge = post(setup.router.url, "/v1/completions", body);
  const small = await probeWhile(setup.router.url, huge, PROBE_EVERY_MS);
  const answer = (await huge)!;
  if (answer.status !== 400) throw new Error(`${setup.name}: the huge prompt got ${answer.status}, not its 400`);
  if (small.some((a) => a.status !== 200)) throw new Error(`${setup.name}: a small chat failed`);
  setup.huge.push(answer.ms);
  setup.small.push(...small.map((a) => a.ms));
}

const common = ["--sim", "1", "--sim-speedup", "0", "--workers", "1", "--log-level", "warn"];
const long = ["--sim-max-model-len", String(LONG_CONTEXT), "--sim-blocks", String(LONG_CONTEXT / 16)];
const setups: Setup[] = [];
try {
  for (const [name, lane] of [
    ["body lane", []],
    ["main thread", ["--body-lane-bytes", "0"]],
  ] as const) {
    for (const context of ["32,768", "16 Mi"] as const) {
      const router = await startRouter([...common, ...lane, ...(context === "16 Mi" ? long : [])]);
      setups.push({ name, context, router, small: [], huge: [], idle: [] });
    }
  }
  for (const s of setups) await warm(s.router);
  for (let n = 0; n < ROUNDS; n++) for (const s of setups) await round(s, n);
} finally {
  await Promise.all(setups.map((s) => s.router.stop()));
}

console.log(`kvroute bench:big-prompt (${machineLine()}), ${ROUNDS} rounds per row, small chats every ${PROBE_EVERY_MS} ms`);
const ms = (v: number) => fixed(v, 0);
printTable(
  "Small chats while a 15.6 MB prompt is in flight (ms)",
  ["big bodies parsed on", "context", "huge prompt p50", "small chats", "small p50", "small p99", "small max", "idle p50", "idle max"],
  setups.map((s) => [s.name, s.context, ms(percentile(s.huge, 50)), s.small.length, ms(percentile(s.small, 50)), ms(percentile(s.small, 99)), ms(Math.max(...s.small)), ms(percentile(s.idle, 50)), ms(Math.max(...s.idle))]),
);
