// npm run bench:serve: the router under load on loopback, in one run, against two yardsticks: a bare
// uWebSockets.js server answering a fixed body (the ceiling) and nginx proxying to that bare server (what
// a reverse proxy costs; skipped with a note when nginx is not installed). Every server runs in its own
// process. The router runs as `kvroute serve` with four zero-delay simulated engines (in a worker thread of
// the router's process), twice: in front of msgpack engines (kvroute's engine protocol) and in front of HTTP
// engines (`--sim-http`: vLLM's OpenAI API). A third router runs in front of null engines (null-engine.ts,
// a process of their own that answers every request at once): what the router costs with no engine work
// on the two cores, as the nginx row is a proxy in front of the bare server.
//
// Rows: token ids (256 ids, max_tokens 1), chat with a repeated 900-word system prompt, chat with prompts
// never seen before, streaming, the same over HTTP engines, and the latency at half the router's peak for
// the token-id and the chat rows, held by autocannon (in bursts) and evenly paced (steady.ts); token ids in
// front of the null engines, at their peak and evenly paced at half of it. Ratios are to the nginx row of
// the same run.
//
// Knobs: BENCH_SECONDS (per row, default 10), BENCH_WARMUP_SECONDS (per load, default min(2, seconds)),
// BENCH_CONNECTIONS (default 32).
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { distFile } from "../src/util/package-root.js";
import { fixed, machineLine, printTable } from "./lib/report.js";
import { cannon, hasWrk, peak, type Load } from "./serve/drivers.js";
import { bodyOf, chatBody, idsBody, SYSTEM_WORDS } from "./serve/loads.js";
import { findNginx, startNginx, type Nginx } from "./serve/nginx.js";
import { steady } from "./serve/steady.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const WARMUP = Number(process.env.BENCH_WARMUP_SECONDS ?? Math.min(2, SECONDS));
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);

/** Starts a server process and waits for `ready` to find what it needs in a line of its output. */
function start(args: string[], stream: "stdout" | "stderr", ready: (line: string) => string | null): Promise<{ child: ChildProcess; value: string }> {
  const child = spawn(process.execPath, args, { stdio: ["ignore", stream === "stdout" ? "pipe" : "ignore", stream === "stderr" ? "pipe" : "inherit"] });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child[stream]! });
    lines.on("line", (line) => {
      const value = ready(line);
      if (value !== null) {
        lines.close();
        child[stream]!.resume(); // keep draining whatever else it writes
        resolve({ child, value });
      }
    });
    child.once("exit", (code) => reject(new Error(`${args.join(" ")} exited with ${code} before it was ready`)));
  });
}

// Request logs off (--log-level warn): a log line per request is not what this measures. The URL comes from
// the plain-text welcome on stderr.
const ROUTER_ARGS = ["serve", "--port", "0", "--log-level", "warn", "--workers", "1"];
const SIM_ARGS = ["--sim", "4", "--sim-speedup", "0"];
const startRouter = (extra: string[]) =>
  start([distFile("src/cli/main.js"), ...ROUTER_ARGS, ...extra], "stderr", (line) => /^kvroute is serving .* at (http:\S+)$/.exec(line)?.[1] ?? null);

const bare = await start([distFile("bench/serve/bare-uws.js")], "stdout", (line) => (/^\d+$/.test(line) ? line : null));
const nullEngines = await start([distFile("bench/serve/null-engine.js")], "stdout", (line) => (line.startsWith("tcp://") ? line : null));
// The null engines publish no KV events: that router routes them in approximate mode (kv=none).
const [router, httpRouter, nullRouter] = await Promise.all([
  startRouter(SIM_ARGS),
  startRouter([...SIM_ARGS, "--sim-http"]),
  startRouter(nullEngines.value.split(",").flatMap((url) => ["--engine", `${url},kv=none`])),
]);
const nginxBin = findNginx();
let nginx: Nginx | null = null;

try {
  if (nginxBin) nginx = await startNginx(nginxBin, Number(bare.value));
  const bareUrl = `http://127.0.0.1:${bare.value}/v1/completions`;
  const nginxUrl = nginx ? `http://127.0.0.1:${nginx.port}/v1/completions` : null;
  const completions = `${router.value}/v1/completions`;
  const chat = `${router.value}/v1/chat/completions`;
  const httpCompletions = `${httpRouter.value}/v1/completions`;
  const nullCompletions = `${nullRouter.value}/v1/completions`;
  const ids = idsBody();
  const streamed = idsBody({ stream: true });
  const repeated = chatBody(false);
  const unique = chatBody(true);

  const chatTokens = await promptTokens(chat, bodyOf(repeated, 0));
  const uniqueTokens = await promptTokens(chat, bodyOf(unique, 0));
  const tool = hasWrk() ? "wrk -t1" : "autocannon";
  console.log(
    `bench:serve  ${tool}, ${CONNECTIONS} connections, ${SECONDS} s per row; router: kvroute serve --sim 4 --sim-speedup 0 --workers 1 --log-level warn ` +
      `(msgpack engines; HTTP engines with --sim-http); ${machineLine()}`,
  );
  console.log(`chat: ${SYSTEM_WORDS}-word system prompt and a numbered question, ${chatTokens} prompt tokens (unique prompts: ${uniqueTokens})`);
  if (!nginx) console.log("nginx is not installed (Debian: nginx-light): the nginx row is skipped and no ratio to it is given");

  const run = (url: string, body: Parameters<typeof peak>[1], seconds: number) => peak(url, body, seconds, CONNECTIONS);
  // Warm up every server and load (JIT, connection pools, the engines' and tokenizer's caches).
  await run(bareUrl, ids, WARMUP);
  if (nginxUrl) await run(nginxUrl, ids, WARMUP);
  for (const [url, body] of [[completions, ids], [chat, repeated], [chat, unique], [completions, streamed], [httpCompletions, ids], [httpCompletions, streamed], [nullCompletions, ids]] as const) {
    await run(url, body, WARMUP);
  }

  const ceiling = await run(bareUrl, ids, SECONDS);
  const proxied = nginxUrl ? await run(nginxUrl, ids, SECONDS) : null;
  const a = await run(completions, ids, SECONDS);
  const c = await run(chat, repeated, SECONDS);
  const u = await run(chat, unique, SECONDS);
  const b = await run(completions, streamed, SECONDS);
  const aHttp = await run(httpCompletions, ids, SECONDS);
  const bHttp = await run(httpCompletions, streamed, SECONDS);
  const aNull = await run(nullCompletions, ids, SECONDS);
  const aRate = Math.max(1, Math.round(a.rps / 2));
  const cRate = Math.max(1, Math.round(c.rps / 2));
  const aHalf = await cannon(completions, ids, SECONDS, CONNECTIONS, aRate);
  const aSteady = await steady(completions, ids, SECONDS, CONNECTIONS, aRate);
  const cHalf = await cannon(chat, repeated, SECONDS, CONNECTIONS, cRate);
  const cSteady = await steady(chat, repeated, SECONDS, CONNECTIONS, cRate);
  const nullRate = Math.max(1, Math.round(aNull.rps / 2));
  const nullSteady = await steady(nullCompletions, ids, SECONDS, CONNECTIONS, nullRate);

  const row = (name: string, l: Load, vs?: Load) => [
    name,
    fixed(l.rps, 0),
    fixed(l.p50, 2),
    fixed(l.p99, 2),
    proxied ? `${fixed((100 * l.rps) / proxied.rps, 1)}%` : "",
    vs ? `${fixed(l.rps / vs.rps, 2)}x` : "",
    String(l.errors),
  ];
  printTable(
    "requests per second and latency (ms)",
    ["load", "req/s", "p50", "p99", "of nginx", "vs (a)/(b)", "errors"],
    [
      row("bare uWebSockets.js, fixed body", ceiling),
      ...(proxied ? [row("nginx, 1 worker, proxying to the bare server", proxied)] : []),
      row("(a) router, 256 token ids, max_tokens 1", a),
      row(`(c) router, chat, repeated ${SYSTEM_WORDS}-word system prompt`, c),
      row(`(u) router, chat, unique ${SYSTEM_WORDS}-word prompts`, u),
      row("(b) router, 256 token ids, streaming 16 tokens", b),
      row("(a) over HTTP engines", aHttp, a),
      row("(b) over HTTP engines", bHttp, b),
      row(`(a) at half its peak (${aRate} req/s), autocannon: bursts`, aHalf),
      row(`(a) at half its peak (${aRate} req/s), evenly paced`, aSteady),
      row(`(c) at half its peak (${cRate} req/s), autocannon: bursts`, cHalf),
      row(`(c) at half its peak (${cRate} req/s), evenly paced`, cSteady),
      row("(a) in front of null engines", aNull, a),
      row(`(a) in front of null engines at half that peak (${nullRate} req/s), evenly paced`, nullSteady),
    ],
  );
} finally {
  nginx?.stop();
  bare.child.kill();
  router.child.kill();
  httpRouter.child.kill();
  nullRouter.child.kill();
  nullEngines.child.kill();
}

/** The prompt length the router reports for a body (usage.prompt_tokens). */
async function promptTokens(url: string, body: string): Promise<number> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
  const json = (await res.json()) as { usage?: { prompt_tokens?: number } };
  if (!res.ok || typeof json.usage?.prompt_tokens !== "number") throw new Error(`the router answered ${res.status}: ${JSON.stringify(json)}`);
  return json.usage.prompt_tokens;
}
