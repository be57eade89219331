// `kvroute replay`: replays a recorded trace (or a generated workload) against an OpenAI-compatible endpoint.
import { parseArgs } from "node:util";
import { Agent } from "undici";
import {
  apiBase,
  defaultResultsDir,
  discoverModel,
  int,
  Progress,
  ReplayStats,
  ResultsFolder,
  runReplay,
  parseSlo,
  type ProgressMode,
  type ReplaySummary,
  type Slo,
} from "../tools/replay/index.js";
import {
  createPromptSynthesizer,
  openTrace,
  parseWorkloadSpec,
  QWEN3_VOCAB_SIZE,
  sharedPrefixWorkload,
  summarizeTrace,
  TraceError,
  type TraceSource,
  type TraceSummary,
} from "../tools/trace/index.js";
import { numberOption, UsageError } from "./usage.js";

export const REPLAY_USAGE = `usage: kvroute replay (--trace FILE | --generate SPEC) --target URL [options]

Replays a trace against an OpenAI-compatible server (vLLM, or kvroute itself) on the trace's clock:
each record becomes a streamed /v1/completions request with a token-id prompt, sent at its timestamp
divided by --speedup, and is measured (TTFT, inter-token latency, end-to-end, cached tokens).

trace:
  --trace FILE            Mooncake JSONL or Azure LLM inference CSV (2023 or 2024 layout), plain or .gz;
                          read as a stream, so files of any size work
  --generate SPEC         instead of a file, groups of prompts sharing a system prompt; SPEC is
                          key=value pairs (defaults): groups=8,prompts=32,system=2048,user=256,
                          output=128,rate=8,block=16,seed=1 ("default" for all defaults)
  --format F              auto (default), mooncake or azure
  --block-size N          tokens per hash id: 512 for Mooncake (default), 16 for traces recorded at
                          vLLM's block size
  --strict                stop at the first bad line (default: skip bad lines and count them)
  --dry-run               read and check the trace, print its figures, send nothing

target:
  --target URL[,URL...]   server base URL, e.g. http://127.0.0.1:8000; several (router replicas):
                          request i goes to the (i mod n)th, spreading the load evenly
  --model NAME            model to request (default: the first one GET /v1/models lists)
  --api-key KEY           bearer token (default: $OPENAI_API_KEY)

load:
  --speedup X             trace time runs X times faster than wall time (default 1)
  --max-concurrency N     at most N requests in flight; later ones wait for a free slot
  --max-requests N        send at most N requests
  --duration SEC          send only the requests scheduled within SEC seconds of the start
  --timeout SEC           per request, to the end of its stream (default 600)
  --no-ignore-eos         do not send ignore_eos (a vLLM extension to the OpenAI API that makes every
                          request generate exactly max_tokens = the trace's output length)

prompts (token ids made from the trace's hash ids; the same id always gives the same tokens):
  --vocab-size N          token ids stay below N (default ${QWEN3_VOCAB_SIZE}: Qwen3's ordinary tokens)
  --lowest-token-id N     token ids stay at or above N (default 0)
  --prompt-seed N         another seed gives prompts no earlier run has cached (default 0)

results:
  --slo SPEC              goodput objectives, e.g. ttft=500,itl=50 (ms; also e2e=MS); itl is a request's
                          mean inter-token latency
  --out DIR               results folder (default replay-results/<UTC time>): summary.json,
                          requests.jsonl, report.html (self-contained, opens offline)
  --json                  print the summary as JSON on stdout; progress as JSON lines on stderr
  --quiet                 no progress output
  -h, --help              this help

Server-side cached tokens come from usage.prompt_tokens_details.cached_tokens (vLLM reports it when
started with --enable-prompt-tokens-details). kvroute's x-kvroute-engine and
x-kvroute-cached-tokens-source headers are used when present.`;

const OPTIONS = {
  trace: { type: "string" },
  generate: { type: "string" },
  format: { type: "string", default: "auto" },
  "block-size": { type: "string" },
  strict: { type: "boolean", default: false },
  "dry-run": { type: "boolean", default: false },
  target: { type: "string" },
  model: { type: "string" },
  "api-key": { type: "string" },
  speedup: { type: "string", default: "1" },
  "max-concurrency": { type: "string" },
  "max-requests": { type: "string" },
  duration: { type: "string" },
  timeout: { type: "string", default: "600" },
  "no-ignore-eos": { type: "boolean", default: false },
  "vocab-size": { type: "string", default: String(QWEN3_VOCAB_SIZE) },
  "lowest-token-id": { type: "string", default: "0" },
  "prompt-seed": { type: "string", default: "0" },
  slo: { type: "string" },
  out: { type: "string" },
  json: { type: "boolean", default: false },
  quiet: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

type Values = ReturnType<typeof parse>["values"];

function parse(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

async function traceOf(v: Values): Promise<TraceSource> {
  if ((v.trace === undefined) === (v.generate === undefined)) throw new UsageError("give exactly one of --trace FILE and --generate SPEC");
  const blockSize = numberOption("block-size", v["block-size"], { integer: true, min: 1 });
  if (v.generate !== undefined) {
    const spec = parseWorkloadSpec(v.generate);
    return sharedPrefixWorkload(blockSize !== undefined ? { ...spec, blockSize } : spec);
  }
  const format = v.format;
  if (format !== "auto" && format !== "mooncake" && format !== "azure") throw new UsageError(`--format must be auto, mooncake or azure, got ${JSON.stringify(format)}`);
  return openTrace(v.trace!, { format, strict: v.strict, ...(blockSize !== undefined ? { blockSize } : {}) });
}

const fixed = (n: number, d = 1) => n.toFixed(d);

function traceText(s: TraceSummary): string {
  const lines = [
    `trace      ${s.name}`,
    `format     ${s.report.format}`,
    `records    ${int(s.records)} (${int(s.report.badLines)} bad lines skipped${Object.keys(s.report.byKind).length > 0 ? `: ${JSON.stringify(s.report.byKind)}` : ""})`,
    `time       ${int(s.firstTimestampMs)} to ${int(s.lastTimestampMs)} ms (${fixed((s.lastTimestampMs - s.firstTimestampMs) / 1000)} s), ${s.requestsPerSec === null ? "n/a" : fixed(s.requestsPerSec, 2)} requests/s`,
    `input      mean ${int(s.meanInputTokens)}, max ${int(s.maxInputTokens)} tokens`,
    `output     mean ${int(s.meanOutputTokens)}, max ${int(s.maxOutputTokens)} tokens`,
  ];
  if (s.blocks) {
    const b = s.blocks;
    lines.push(`blocks     ${int(b.references)} references of ${b.blockSize} tokens, ${int(b.repeats)} repeat an earlier block (${fixed(b.reuseRatio * 100, 2)}%), ${int(b.distinct)} distinct`);
  }
  for (const bad of s.report.firstBadLines.slice(0, 10)) lines.push(`bad line   ${bad.line}: ${bad.reason}`);
  return `${lines.join("\n")}\n`;
}

function latencyText(name: string, l: ReplaySummary["latency"]["ttft"]): string {
  return `${name.padEnd(12)} p50 ${fixed(l.p50Ms)}  p90 ${fixed(l.p90Ms)}  p99 ${fixed(l.p99Ms)}  max ${fixed(l.maxMs)}  (mean ${fixed(l.meanMs)}, n ${int(l.count)})`;
}

function summaryText(s: ReplaySummary, dir: string): string {
  const r = s.requests;
  const lines = [
    `kvroute replay: ${int(r.sent)} sent, ${int(r.succeeded)} succeeded, ${int(r.failed)} failed in ${fixed(s.durationSec)} s (stopped: ${s.stopped})`,
    `throughput   ${fixed(s.throughput.requestsPerSec, 2)} req/s, ${int(s.throughput.outputTokensPerSec)} output tok/s, ${int(s.throughput.inputTokensPerSec)} input tok/s`,
    latencyText("TTFT ms", s.latency.ttft),
    latencyText("ITL ms", s.latency.itl),
    latencyText("E2E ms", s.latency.e2e),
    s.cache.hitRatio === null
      ? "cache hit    n/a (the server reported no cached_tokens)"
      : `cache hit    ${fixed(s.cache.hitRatio * 100, 2)}% (${int(s.cache.cachedTokens)} cached of ${int(s.cache.promptTokens)} prompt tokens, ${int(s.cache.requestsReporting)} requests reporting)`,
  ];
  if (s.goodput) {
    const slo = Object.entries(s.goodput.slo).map(([k, v]) => `${k.replace(/Ms$/, "")}<=${v}ms`).join(", ");
    lines.push(`goodput      ${fixed(s.goodput.requestsPerSec, 2)} req/s (${fixed(s.goodput.fractionOfCompleted * 100)}% of requests met ${slo})`);
  }
  lines.push(`engines      ${Object.entries(s.engines).map(([k, v]) => `${k} ${int(v)}`).join(", ") || "none"}`);
  if (r.failed > 0) lines.push(`errors       ${Object.entries(r.errorsByKind).map(([k, v]) => `${k} ${int(v ?? 0)}`).join(", ")}; first: ${r.firstErrors[0]?.message ?? ""}`);
  lines.push(`trace        ${int(s.trace.records)} records read, ${int(s.trace.badLines)} bad lines skipped`);
  lines.push(`results      ${dir} (summary.json, requests.jsonl, report.html)`);
  return `${lines.join("\n")}\n`;
}

export async function replayCommand(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  try {
    return await replay(argv, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`kvroute replay: ${err.message}\n\nRun \`kvroute replay --help\` for the options.\n`);
      return 2;
    }
    io.stderr.write(`kvroute replay: ${(err as Error).message}\n`);
    return 1;
  }
}

async function replay(argv: string[], io: Io): Promise<number> {
  const { values: v } = parse(argv);
  if (v.help) {
    io.stdout.write(`${REPLAY_USAGE}\n`);
    return 0;
  }
  const trace = await traceOf(v);
  if (v["dry-run"]) {
    const summary = await summarizeTrace(trace);
    io.stdout.write(v.json ? `${JSON.stringify(summary, null, 2)}\n` : traceText(summary));
    return 0;
  }

  if (v.target === undefined) throw new UsageError("--target URL is required (or --dry-run)");
  const bases = v.target.split(",").map((t) => apiBase(t.trim()));
  const speedup = numberOption("speedup", v.speedup, { min: 0, above: true })!;
  const maxConcurrency = numberOption("max-concurrency", v["max-concurrency"], { integer: true, min: 1 });
  const maxRequests = numberOption("max-requests", v["max-requests"], { integer: true, min: 1 });
  const durationSec = numberOption("duration", v.duration, { min: 0, above: true });
  const timeoutMs = numberOption("timeout", v.timeout, { min: 0, above: true })! * 1000;
  const vocabSize = numberOption("vocab-size", v["vocab-size"], { integer: true, min: 2 })!;
  const lowestTokenId = numberOption("lowest-token-id", v["lowest-token-id"], { integer: true, min: 0 })!;
  const seed = numberOption("prompt-seed", v["prompt-seed"], { integer: true, min: 0 })!;
  const slo: Slo | null = v.slo === undefined ? null : parseSlo(v.slo);
  const apiKey = v["api-key"] ?? process.env.OPENAI_API_KEY;
  const ignoreEos = !v["no-ignore-eos"];
  const synthesize = createPromptSynthesizer({ blockSize: trace.blockSize ?? 512, vocabSize, lowestTokenId, seed });

  let model = v.model;
  if (model === undefined) {
    const agent = new Agent();
    try {
      model = await discoverModel(bases[0]!, agent, apiKey, Math.min(timeoutMs, 30_000));
    } finally {
      await agent.close();
    }
  }

  const results = await ResultsFolder.create(v.out ?? defaultResultsDir());
  const stats = new ReplayStats(slo);
  const counts = { sent: 0, done: 0, errors: 0, outputTokens: 0 };
  const startedAtMs = performance.now();
  const progressMode: ProgressMode = v.quiet ? "off" : v.json ? "json" : io.stderr.isTTY ? "bar" : "lines";
  const progress = new Progress(io.stderr, progressMode, () => ({
    ...counts,
    fraction: Math.max(
      maxRequests !== undefined ? counts.sent / maxRequests : 0,
      durationSec !== undefined ? Math.min(1, (performance.now() - startedAtMs) / 1000 / durationSec) : 0,
      trace.progress() ?? 0,
    ),
  }));

  // The first Ctrl-C stops sending and aborts what is in flight, then the results are written; a second one exits.
  const stop = new AbortController();
  const onSigint = () => {
    if (stop.signal.aborted) process.exit(130);
    io.stderr.write("\nkvroute replay: stopping (Ctrl-C again to quit without writing results)\n");
    stop.abort();
  };
  process.on("SIGINT", onSigint);
  progress.start();
  let run;
  try {
    run = await runReplay({
      base: bases,
      model,
      trace,
      synthesize,
      speedup,
      timeoutMs,
      ignoreEos,
      signal: stop.signal,
      ...(maxConcurrency !== undefined ? { maxConcurrency } : {}),
      ...(maxRequests !== undefined ? { maxRequests } : {}),
      ...(durationSec !== undefined ? { durationSec } : {}),
      ...(apiKey !== undefined ? { apiKey } : {}),
      onSent: () => counts.sent++,
      onResult: (result, gaps) => {
        counts.done++;
        if (!result.ok) counts.errors++;
        else counts.outputTokens += result.outputTokens;
        stats.add(result, gaps);
        results.write(result);
      },
    });
  } finally {
    progress.stop();
    process.off("SIGINT", onSigint);
  }

  const summary = stats.summary({
    tool: "kvroute replay",
    startedAt: run.startedAt,
    target: bases.join(","),
    model,
    trace: { name: trace.name, blockSize: trace.blockSize ?? null, report: trace.report },
    settings: {
      speedup,
      maxConcurrency: maxConcurrency ?? null,
      maxRequests: maxRequests ?? null,
      durationSec: durationSec ?? null,
      timeoutSec: timeoutMs / 1000,
      ignoreEos,
      strict: v.strict,
      vocabSize,
      lowestTokenId,
      promptSeed: seed,
    },
    stopped: run.stopped,
    durationMs: run.durationMs,
    sent: run.sent,
  });
  const files = await results.finish(summary);
  io.stdout.write(v.json ? `${JSON.stringify({ ...summary, files }, null, 2)}\n` : summaryText(summary, files.dir));
  if (run.error !== undefined) {
    const where = run.error instanceof TraceError ? "bad trace line" : "cannot go on";
    io.stderr.write(`kvroute replay: ${where}: ${run.error.message}\n`);
    return 1;
  }
  return run.sent > 0 && summary.requests.succeeded === 0 ? 1 : 0;
}
