// npm run bench:trace: the costs a replay or a simulation pays per record, measured side by side in one run:
// reading traces, making prompts and request bodies, recording latencies.
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import * as hdr from "hdr-histogram-js";
import { Bench } from "tinybench";
import { completionRequestBody, createPromptSynthesizer, LatencyHistogram, openTrace, type TraceRecord } from "../src/index.js";
import { fixed, machineLine, msPerOp, printTable, ratio, taskByName } from "./lib/report.js";

const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 1000);
const LINES = 10_000;

console.log(`bench:trace  ${machineLine()}; ${TIME_MS} ms per task`);

// Synthetic files in both formats, shaped like the real traces (Mooncake: ~24 ids a line).
const dir = mkdtempSync(join(tmpdir(), "kvroute-bench-trace-"));
const mooncake = join(dir, "trace.jsonl");
const azure = join(dir, "trace.csv");
const moonLines: string[] = [];
const azureLines = ["TIMESTAMP,ContextTokens,GeneratedTokens"];
for (let i = 0; i < LINES; i++) {
  const input = 1000 + ((i * 7919) % 23000);
  const ids = Array.from({ length: Math.ceil(input / 512) }, (_, b) => (b < 3 ? b : i * 64 + b));
  moonLines.push(JSON.stringify({ timestamp: i * 10, input_length: input, output_length: 300, hash_ids: ids }));
  const t = new Date(Date.UTC(2024, 4, 12) + i * 37.25).toISOString().replace("T", " ").replace("Z", "+00:00");
  azureLines.push(`${t},${input},${(i % 500) + 1}`);
}
writeFileSync(mooncake, `${moonLines.join("\n")}\n`);
writeFileSync(azure, `${azureLines.join("\n")}\n`);

async function drain(path: string): Promise<number> {
  let n = 0;
  for await (const _ of await openTrace(path)) n++;
  if (n !== LINES) throw new Error(`read ${n} records of ${LINES}`);
  return n;
}

/** The usual way to read JSONL in Node, without any checks: the baseline for the loader. */
async function readlineJson(path: string): Promise<number> {
  let n = 0;
  for await (const line of createInterface({ input: createReadStream(path), crlfDelay: Infinity })) {
    if (line !== "") {
      JSON.parse(line);
      n++;
    }
  }
  return n;
}

try {
  // Each pass reads the whole file: a few passes are enough (tinybench would otherwise run at least 64).
  const load = new Bench({ time: TIME_MS, iterations: 3, warmup: true, warmupIterations: 1 });
  load
    .add("(a) readline + JSON.parse, no checks", () => readlineJson(mooncake).then(() => undefined))
    .add("(b) openTrace, Mooncake JSONL", () => drain(mooncake).then(() => undefined))
    .add("(c) openTrace, Azure CSV (2024 stamps)", () => drain(azure).then(() => undefined));
  await load.run();
  const baseMs = msPerOp(taskByName(load, "(a) readline + JSON.parse, no checks"));
  printTable(
    `reading ${LINES.toLocaleString("en-US")} records`,
    ["reader", "records/s", "ns/record", "time vs (a)"],
    load.tasks.map((t) => {
      const ms = msPerOp(t);
      return [t.name, fixed(LINES / (ms / 1000), 0), fixed((ms * 1e6) / LINES, 0), ratio(ms / baseMs)];
    }),
  );

  const record: TraceRecord = { line: 1, timestampMs: 0, inputLength: 12_035, outputLength: 343, hashIds: Array.from({ length: 24 }, (_, i) => i) };
  const synthesize = createPromptSynthesizer({ blockSize: 512 });
  const prompt = synthesize(record);
  const prompts = new Bench({ time: TIME_MS, warmup: true });
  prompts
    .add("(a) synthesise the prompt", () => void synthesize(record))
    .add("(b) synthesise + completionRequestBody (join)", () => void completionRequestBody("m", synthesize(record), 343, true))
    .add("(c) synthesise + JSON.stringify body", () => void JSON.stringify({ model: "m", prompt: Array.from(synthesize(record)), max_tokens: 343, stream: true }));
  await prompts.run();
  const synthMs = msPerOp(taskByName(prompts, "(a) synthesise the prompt"));
  printTable(
    `a ${prompt.length.toLocaleString("en-US")}-token prompt (the Mooncake conversation mean) from 24 block ids`,
    ["step", "µs/prompt", "Mtokens/s", "time vs (a)"],
    prompts.tasks.map((t) => {
      const ms = msPerOp(t);
      return [t.name, fixed(ms * 1000), fixed(prompt.length / (ms / 1000) / 1e6), ratio(ms / synthMs)];
    }),
  );

  const values = Array.from({ length: 10_000 }, (_, i) => 1 + ((i * 2654435761) >>> 0) / 2 ** 32 * 5000);
  await hdr.initWebAssembly();
  const wasm = hdr.build({ bitBucketSize: 64, numberOfSignificantValueDigits: 3, autoResize: true, useWebAssembly: true });
  const plain = hdr.build({ bitBucketSize: 64, numberOfSignificantValueDigits: 3, autoResize: true, useWebAssembly: false });
  const latency = new LatencyHistogram();
  const record10k = new Bench({ time: TIME_MS, warmup: true });
  record10k
    .add("(a) hdr-histogram-js, JavaScript mode", () => {
      for (const v of values) plain.recordValue(Math.round(v * 1000));
    })
    .add("(b) hdr-histogram-js, WebAssembly mode", () => {
      for (const v of values) wasm.recordValue(Math.round(v * 1000));
    })
    .add("(c) LatencyHistogram.record (JS mode + checks)", () => {
      for (const v of values) latency.record(v);
    });
  await record10k.run();
  wasm.destroy();
  const jsMs = msPerOp(taskByName(record10k, "(a) hdr-histogram-js, JavaScript mode"));
  printTable(
    "recording latencies into an HDR histogram (3 significant digits)",
    ["implementation", "ns/value", "Mvalues/s", "time vs (a)"],
    record10k.tasks.map((t) => {
      const ms = msPerOp(t);
      return [t.name, fixed((ms * 1e6) / values.length), fixed(values.length / (ms / 1000) / 1e6, 2), ratio(ms / jsMs)];
    }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
