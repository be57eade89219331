// npm run bench:serve: the router under load on loopback, against a bare uWebSockets.js server as the
// ceiling, in one run. The router runs as `kvroute serve` with zero-delay simulated engines, each server in
// its own process, twice: in front of msgpack engines (kvroute's engine protocol) and in front of HTTP
// engines (`--sim-http`: vLLM's OpenAI API), with the same load, rows alternating between the two. The load
// generator is wrk where installed (it leaves more of the two cores to the servers), else autocannon.
// Latency at a fixed rate is measured with autocannon, which can hold a rate.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import autocannon from "autocannon";
import { distFile } from "../src/util/package-root.js";
import { fixed, machineLine, printTable } from "./lib/report.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const MODEL = "Qwen/Qwen3-0.6B";
const prompt = Array.from({ length: 256 }, (_, i) => (i * 7919) % 150_000);

interface Load {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

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

function hasWrk(): boolean {
  return spawnSync("wrk", ["--version"]).error === undefined;
}

/** Peak load with wrk: one thread, CONNECTIONS connections, POSTing `body`. */
function wrk(url: string, body: string, seconds: number): Load {
  const script = join(tmpdir(), `kvroute-bench-${process.pid}.lua`);
  writeFileSync(script, `wrk.method = "POST"\nwrk.body = ${JSON.stringify(body)}\nwrk.headers["Content-Type"] = "application/json"\n`);
  const out = spawnSync("wrk", ["-t1", `-c${CONNECTIONS}`, `-d${seconds}s`, "--latency", "-s", script, url], { encoding: "utf8" });
  if (out.status !== 0) throw new Error(`wrk failed: ${out.stderr}`);
  const text = out.stdout;
  const ms = (label: string) => {
    const m = new RegExp(`^\\s*${label}%\\s+([\\d.]+)(us|ms|s)`, "m").exec(text);
    if (!m) throw new Error(`wrk printed no ${label}% latency:\n${text}`);
    return Number(m[1]) * (m[2] === "us" ? 0.001 : m[2] === "s" ? 1000 : 1);
  };
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(text)![1]),
    p50: ms("50"),
    p99: ms("99"),
    errors: Number(errors?.[1] ?? 0) + (socketErrors ? socketErrors.slice(1).reduce((n, v) => n + Number(v), 0) : 0),
  };
}

/** Load with autocannon; with `rate`, held at that many requests per second overall. */
async function cannon(url: string, body: string, seconds: number, rate?: number): Promise<Load> {
  const result = await autocannon({
    url,
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    connections: CONNECTIONS,
    duration: seconds,
    ...(rate ? { overallRate: rate } : {}),
  });
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.non2xx };
}

const peak = (url: string, body: string, seconds: number) => (hasWrk() ? Promise.resolve(wrk(url, body, seconds)) : cannon(url, body, seconds));

const bare = await start([distFile("bench/serve/bare-uws.js")], "stdout", (line) => (/^\d+$/.test(line) ? line : null));
// Request logs off (--log-level warn): a log line per request is not what this measures. The URL comes from
// the plain-text welcome on stderr.
const ROUTER_ARGS = ["serve", "--port", "0", "--sim", "4", "--sim-speedup", "0", "--log-level", "warn", "--workers", "1"];
const startRouter = (extra: string[]) => start([distFile("src/cli/main.js"), ...ROUTER_ARGS, ...extra], "stderr", (line) => /^kvroute is serving .* at (http:\S+)$/.exec(line)?.[1] ?? null);
const [router, httpRouter] = await Promise.all([startRouter([]), startRouter(["--sim-http"])]);

try {
  const bareUrl = `http://127.0.0.1:${bare.value}/v1/completions`;
  const routerUrl = `${router.value}/v1/completions`;
  const httpUrl = `${httpRouter.value}/v1/completions`;
  const plain = JSON.stringify({ model: MODEL, prompt, max_tokens: 1 });
  const streamed = JSON.stringify({ model: MODEL, prompt, max_tokens: 16, ignore_eos: true, stream: true });
  const tool = hasWrk() ? "wrk -t1" : "autocannon";
  console.log(
    `bench:serve  ${tool}, ${CONNECTIONS} connections, ${SECONDS} s per row; router: kvroute serve --sim 4 --sim-speedup 0 --workers 1 --log-level warn ` +
      `(msgpack engines; HTTP engines with --sim-http); ${machineLine()}`,
  );

  // Warm up every server (JIT, connection pools, the engines' caches).
  const warmup = Math.min(2, SECONDS);
  await peak(bareUrl, plain, warmup);
  for (const url of [routerUrl, httpUrl]) {
    await peak(url, plain, warmup);
    await peak(url, streamed, warmup);
  }

  const ceiling = await peak(bareUrl, plain, SECONDS);
  const a = await peak(routerUrl, plain, SECONDS);
  const aHttp = await peak(httpUrl, plain, SECONDS);
  const b = await peak(routerUrl, streamed, SECONDS);
  const bHttp = await peak(httpUrl, streamed, SECONDS);
  const halfRate = Math.max(1, Math.round(a.rps / 2));
  const aHalf = await cannon(routerUrl, plain, SECONDS, halfRate);

  const row = (name: string, l: Load, vs?: Load) => [
    name,
    fixed(l.rps, 0),
    fixed(l.p50, 2),
    fixed(l.p99, 2),
    `${fixed((100 * l.rps) / ceiling.rps, 1)}%`,
    vs ? `${fixed(l.rps / vs.rps, 2)}x` : "",
    String(l.errors),
  ];
  printTable(
    "requests per second and latency (ms)",
    ["load", "req/s", "p50", "p99", "of ceiling", "req/s vs msgpack", "errors"],
    [
      row("ceiling: bare uWebSockets.js, fixed body", ceiling),
      row("(a) router, 256-token ids, max_tokens 1", a),
      row("(a) router, same, HTTP engines", aHttp, a),
      row("(b) router, same, streaming 16 tokens", b),
      row("(b) router, same, streaming, HTTP engines", bHttp, b),
      row(`(a) at half its peak (${halfRate} req/s, autocannon)`, aHalf),
    ],
  );
} finally {
  bare.child.kill();
  router.child.kill();
  httpRouter.child.kill();
}
