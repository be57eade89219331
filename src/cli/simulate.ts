// `kvroute simulate`: routing policies compared on a trace, on virtual time, with simulated engines.
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { join } from "node:path";
import { int } from "../tools/replay/index.js";
import { DEFAULT_EVICTION_WEIGHT, POLICIES, type PolicyName } from "../router/schedule/index.js";
import { DEFAULT_APPROX_TTL_MS, type EngineSettings, H100_8B, type JobProgress, KV_EVENTS_MODES, type KvEventsMode, reportTable, simulate, type SimulateOptions, type SimulationReport, sweepTable, type TraceSpec } from "../tools/policy-sim/index.js";
import { parseWorkloadSpec } from "../tools/trace/index.js";
import { numberOption, onOffOption, UsageError, type NumberRule } from "./usage.js";

const D = H100_8B;

export const SIMULATE_USAGE = `usage: kvroute simulate (--trace FILE | --generate SPEC) [options]

Runs a trace through the router's own scheduler and prefix index in front of simulated vLLM engines, on
virtual time and without sockets, once per routing policy, and prints the policies side by side. Each
policy gets a fresh fleet and a fresh index, with the same trace, settings and seed.

trace:
  --trace FILE                 Mooncake JSONL or Azure LLM inference CSV, plain or .gz
  --generate SPEC              groups of prompts sharing a system prompt, as in kvroute replay:
                               groups=8,prompts=32,system=2048,user=256,output=128,rate=8,block=16,seed=1
  --format F                   auto (default), mooncake or azure
  --block-size N               tokens per trace hash id (default 512, Mooncake's)
  --strict                     stop at the first bad line (default: skip and count bad lines)
  --max-requests N             simulate only the first N requests
  --speedup X                  requests arrive at timestamp / X: above 1 raises the load (default 1)

routing:
  --policy LIST                one or more of ${POLICIES.join(", ")}, comma-separated
                               (default: all of them). kv: the cost is predicted time (the router's
                               default); kv-blocks: the cost in blocks, weighted by --overlap-weight
  --engines N                  engines in the fleet (default 8)
  --engine-speeds S1,S2,...    one speed per engine, relative to the timing below (0.5: every step takes
                               twice as long); sets the number of engines. The router is not told
  --prefill-engines N --decode-engines M
                               disaggregated serving instead: N prefill engines and M decode engines, a
                               prompt prefilled on one and its KV blocks moved to the other, as kvroute
                               serve does with engine roles
  --disagg-min-prefill-tokens N
                               disaggregated: a prompt whose uncached part on its decode engine is under N
                               tokens is prefilled there (default 0)
  --kv-transfer-gbps X         disaggregated: the link KV blocks move over, in Gb/s (default ${D.kvTransferGbps}; a
                               block is ${D.kvBytesPerToken / 1024} KiB a token × the block size)
  --overlap-weight W           kv-blocks cost = W × blocks to prefill + decode blocks (default 1)
  --eviction-weight W          kv: the weight of what a request's new blocks evict, in their compute time,
                               scaled by how fast the engine's cache turns over against the others'
                               (default ${DEFAULT_EVICTION_WEIGHT}; 0: time alone)
  --temperature T              kv, kv-blocks: 0 (default) takes the cheapest engine; above 0 samples
  --kv-event-delay-ms X        a step's KV events reach the index X ms after the step ends (default 0:
                               as it ends)
  --kv-events events|none      events (default): the index follows the engines' KV events; none: the
                               engines publish none, and the router predicts their caches from its own
                               decisions (approximate mode, as \`kvroute serve\` does for such engines)
  --approx-ttl S               approximate mode: a prediction is believed S seconds of virtual time
                               after it was last made (default 120)
  --prefill-gate on|off        kv: hold a request in the router while its engine computes prompts it
                               would slow down, and send it when they have their first tokens (default on)
  --decide-together on|off     kv: decide requests that arrive at one instant together, the one with
                               the most cache to lose first, and send them shortest first (default on)
  --take-back on|off           kv: a prompt of at most 4,096 uncached tokens goes before the longer ones
                               its engine is computing, which are aborted there and sent again once it
                               has its first token (default on)
  --seed N                     seeds the random policy, tie-breaks and the engines' outputs (default 0)

engines (defaults: one H100 SXM 80 GB serving an 8B model in bf16, e.g. Llama 3.1 8B):
  --blocks N                   KV-cache blocks per engine (default ${int(D.numBlocks)}: 54 GiB at 2 MiB a block)
  --engine-block-size N        tokens per KV block; the router hashes with it too (default ${D.blockSize})
  --max-num-seqs N             most sequences running at once (default ${D.maxNumSeqs})
  --max-num-batched-tokens N   most tokens computed per step (default ${D.maxNumBatchedTokens})
  --max-model-len N            context length; longer prompts fail (default ${D.maxModelLen})
  --step-overhead-ms X         per step: reading the weights (default ${D.timing.stepOverheadMs})
  --prefill-ms-per-token X     per prompt token computed (default ${D.timing.prefillMsPerToken})
  --decode-ms-per-seq X        per sequence decoding a token (default ${D.timing.decodeMsPerSeq})
  --ms-per-kv-block X          per KV block the step's sequences hold (default ${D.timing.msPerKvBlock})

output:
  --sweep KEY=V1,V2,...        run once per value of one numeric option (e.g. speedup=1,2 or
                               overlap-weight=1,4,8) and print the runs in one table
  --jobs N                     policies simulated at once, in worker threads (default: the smaller of
                               the number of policies and of CPU cores; 1 runs them in this thread)
  --out DIR                    also write DIR/<policy>/summary.json, requests.jsonl and report.html
  --json                       print {"policies": [...], "bound": {...}, ...} instead of the table
  --quiet                      no progress lines on stderr
  -h, --help                   this help

Columns: hit ratio = engine-counted cached prompt tokens / prompt tokens; TTFT and E2E in ms of virtual
time; TTFT err = mean |observed - predicted| TTFT, the router's time model's prediction for the engine
it chose against what came; req/s and out tok/s over virtual time; busy max/mean and req max/mean = the
busiest engine's step time and request count over the mean across engines (1.00x is perfectly even);
virtual s/wall s = simulation speed. The bound is the hit ratio one unbounded prefix cache shared by
every engine would reach on the same prompts at the same block size; the fleet bound, one LRU cache of
all the engines' blocks together.

Exit status: 0 done, 1 the simulation failed (e.g. a bad line under --strict), 2 bad options.`;

const OPTIONS = {
  trace: { type: "string" },
  generate: { type: "string" },
  format: { type: "string" },
  "block-size": { type: "string" },
  strict: { type: "boolean", default: false },
  "max-requests": { type: "string" },
  speedup: { type: "string" },
  policy: { type: "string" },
  engines: { type: "string" },
  "overlap-weight": { type: "string" },
  "eviction-weight": { type: "string" },
  temperature: { type: "string" },
  "kv-event-delay-ms": { type: "string" },
  "kv-events": { type: "string" },
  "approx-ttl": { type: "string" },
  "prefill-gate": { type: "string" },
  "decide-together": { type: "string" },
  "take-back": { type: "string" },
  seed: { type: "string" },
  blocks: { type: "string" },
  "engine-block-size": { type: "string" },
  "max-num-seqs": { type: "string" },
  "max-num-batched-tokens": { type: "string" },
  "max-model-len": { type: "string" },
  "step-overhead-ms": { type: "string" },
  "prefill-ms-per-token": { type: "string" },
  "decode-ms-per-seq": { type: "string" },
  "ms-per-kv-block": { type: "string" },
  "engine-speeds": { type: "string" },
  "prefill-engines": { type: "string" },
  "decode-engines": { type: "string" },
  "disagg-min-prefill-tokens": { type: "string" },
  "kv-transfer-gbps": { type: "string" },
  jobs: { type: "string" },
  sweep: { type: "string" },
  out: { type: "string" },
  json: { type: "boolean", default: false },
  quiet: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>["values"];

function num(v: Values, name: keyof Values, fallback: number, rule: NumberRule = {}): number {
  const text = v[name];
  if (typeof text === "boolean") throw new UsageError(`--${name} takes a value`);
  return numberOption(name, text, { min: 0, ...rule }) ?? fallback;
}

function policies(text: string | undefined): PolicyName[] {
  if (text === undefined) return [...POLICIES];
  const names = text.split(",").map((p) => p.trim()).filter((p) => p !== "");
  if (names.length === 0) throw new UsageError(`--policy must name at least one of ${POLICIES.join(", ")}`);
  for (const name of names) {
    if (!POLICIES.includes(name as PolicyName)) throw new UsageError(`--policy: ${JSON.stringify(name)} is not one of ${POLICIES.join(", ")}`);
  }
  if (new Set(names).size !== names.length) throw new UsageError(`--policy names a policy twice: ${JSON.stringify(text)}`);
  return names as PolicyName[];
}

/** `--engine-speeds 1,1,0.5,0.5`: one speed per engine, relative to the timing options. */
function engineSpeeds(text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  const speeds = text.split(",").map((part) => {
    const speed = Number(part.trim());
    if (part.trim() === "" || !(speed > 0 && Number.isFinite(speed))) throw new UsageError(`--engine-speeds takes numbers above 0, comma-separated; got ${JSON.stringify(part)}`);
    return speed;
  });
  if (speeds.length > 4096) throw new UsageError(`--engine-speeds gives ${speeds.length} engines; at most 4096`);
  return speeds;
}

function traceSpec(v: Values): TraceSpec {
  if ((v.trace === undefined) === (v.generate === undefined)) throw new UsageError("give exactly one of --trace FILE and --generate SPEC");
  const blockSize = v["block-size"] === undefined ? undefined : num(v, "block-size", 0, { integer: true, min: 1 });
  if (v.generate !== undefined) {
    let spec;
    try {
      spec = parseWorkloadSpec(v.generate);
    } catch (err) {
      throw new UsageError(`--generate: ${(err as Error).message}`);
    }
    return { generate: blockSize !== undefined ? { ...spec, blockSize } : spec };
  }
  const format = v.format ?? "auto";
  if (format !== "auto" && format !== "mooncake" && format !== "azure") throw new UsageError(`--format must be auto, mooncake or azure, got ${JSON.stringify(format)}`);
  return { file: v.trace!, format, strict: v.strict, ...(blockSize !== undefined ? { blockSize } : {}) };
}

function engineSettings(v: Values): EngineSettings {
  const settings: EngineSettings = {
    blockSize: num(v, "engine-block-size", D.blockSize, { integer: true, min: 1, max: 4096 }),
    numBlocks: num(v, "blocks", D.numBlocks, { integer: true, min: 1, max: 1 << 26 }),
    maxNumSeqs: num(v, "max-num-seqs", D.maxNumSeqs, { integer: true, min: 1 }),
    maxNumBatchedTokens: num(v, "max-num-batched-tokens", D.maxNumBatchedTokens, { integer: true, min: 1 }),
    maxModelLen: num(v, "max-model-len", D.maxModelLen, { integer: true, min: 2, max: 1 << 24 }),
    timing: {
      stepOverheadMs: num(v, "step-overhead-ms", D.timing.stepOverheadMs),
      prefillMsPerToken: num(v, "prefill-ms-per-token", D.timing.prefillMsPerToken),
      decodeMsPerSeq: num(v, "decode-ms-per-seq", D.timing.decodeMsPerSeq),
      msPerKvBlock: num(v, "ms-per-kv-block", D.timing.msPerKvBlock),
    },
    kvBytesPerToken: D.kvBytesPerToken,
    kvTransferGbps: num(v, "kv-transfer-gbps", D.kvTransferGbps, { above: true }),
  };
  const t = settings.timing;
  if (t.stepOverheadMs + t.prefillMsPerToken + t.decodeMsPerSeq === 0) {
    throw new UsageError("the timing model takes no time at all: give --step-overhead-ms, --prefill-ms-per-token or --decode-ms-per-seq above 0");
  }
  const needed = Math.ceil(settings.maxModelLen / settings.blockSize);
  if (needed > settings.numBlocks) {
    throw new UsageError(`--max-model-len ${settings.maxModelLen} needs ${needed} blocks of ${settings.blockSize} tokens, but --blocks is ${settings.numBlocks}`);
  }
  return settings;
}

function progressWriter(io: Io, json: boolean): (policy: PolicyName, p: JobProgress) => void {
  const shown = new Map<PolicyName, number>();
  return (policy, p) => {
    // A line per tenth of the trace (or every 5 s when its size is unknown) per policy.
    const now = performance.now();
    const fraction = p.fraction === undefined ? null : Math.min(1, p.fraction);
    const step = fraction === null ? Math.floor(now / 5000) : Math.floor(fraction * 10);
    if (step <= (shown.get(policy) ?? -1)) return;
    shown.set(policy, step);
    if (json) io.stderr.write(`${JSON.stringify({ policy, sent: p.sent, virtual_sec: p.virtualMs / 1000, fraction })}\n`);
    else io.stderr.write(`kvroute simulate: ${policy}: ${int(p.sent)} requests, ${int(p.virtualMs / 1000)} virtual s${fraction === null ? "" : ` (${(fraction * 100).toFixed(0)}% of the trace read)`}\n`);
  };
}

export async function simulateCommand(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let v: Values;
  try {
    v = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }).values;
    if (v.help) {
      io.stdout.write(`${SIMULATE_USAGE}\n`);
      return 0;
    }
    return await run(v, io);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      io.stderr.write(`kvroute simulate: ${(err as Error).message}\n\nRun \`kvroute simulate --help\` for the options.\n`);
      return 2;
    }
    io.stderr.write(`kvroute simulate: ${(err as Error).message}\n`);
    return 1;
  }
}

/** Options a sweep may vary: the numeric ones, and where the index's knowledge comes from. */
const SWEEPABLE = [
  "speedup", "engines", "overlap-weight", "eviction-weight", "temperature", "kv-event-delay-ms", "kv-events", "approx-ttl", "prefill-gate", "decide-together", "take-back", "seed", "blocks", "engine-block-size", "max-num-seqs",
  "max-num-batched-tokens", "max-model-len", "step-overhead-ms", "prefill-ms-per-token", "decode-ms-per-seq", "ms-per-kv-block", "max-requests",
  "prefill-engines", "decode-engines", "disagg-min-prefill-tokens", "kv-transfer-gbps",
] as const;

function parseSweep(text: string): { key: (typeof SWEEPABLE)[number]; values: string[] } {
  const eq = text.indexOf("=");
  const key = text.slice(0, eq) as (typeof SWEEPABLE)[number];
  const values = text.slice(eq + 1).split(",").map((s) => s.trim());
  if (eq < 1 || !SWEEPABLE.includes(key)) throw new UsageError(`--sweep takes KEY=V1,V2,... with KEY one of ${SWEEPABLE.join(", ")}; got ${JSON.stringify(text)}`);
  if (values.length < 2 || values.some((s) => s === "")) throw new UsageError(`--sweep ${key}: give at least two values, comma-separated`);
  return { key, values };
}

async function run(v: Values, io: Io): Promise<number> {
  if (v.sweep === undefined) {
    const { spec, options } = planRun(v, io);
    const report = await simulate(spec, options);
    io.stdout.write(v.json ? `${JSON.stringify(report, null, 2)}\n` : reportTable(report));
    if (v.out !== undefined && !v.json) io.stdout.write(`results      ${v.out}/<policy>/ (summary.json, requests.jsonl, report.html)\n`);
    return 0;
  }
  const { key, values } = parseSweep(v.sweep);
  if (v[key] !== undefined) throw new UsageError(`--sweep ${key} and --${key} both set it; give one`);
  // Every value's options are checked before the first run starts: a typo does not cost the runs before it.
  const plans = values.map((value) => ({ value, ...planRun({ ...v, [key]: value, ...(v.out !== undefined ? { out: join(v.out, `${key}=${value}`) } : {}) }, io) }));
  const runs: { value: string; report: SimulationReport }[] = [];
  for (const { value, spec, options } of plans) runs.push({ value, report: await simulate(spec, options) });
  io.stdout.write(v.json ? `${JSON.stringify({ sweep: { key, values }, runs }, null, 2)}\n` : sweepTable(key, runs));
  return 0;
}

/** The trace and the simulation options the command line asks for; throws a UsageError naming a bad one. */
function planRun(v: Values, io: Io): { spec: TraceSpec; options: SimulateOptions } {
  const spec = traceSpec(v);
  const chosen = policies(v.policy);
  const engine = engineSettings(v);
  const speeds = engineSpeeds(v["engine-speeds"]);
  const split = v["prefill-engines"] !== undefined || v["decode-engines"] !== undefined;
  if (split && (v["prefill-engines"] === undefined || v["decode-engines"] === undefined)) throw new UsageError("--prefill-engines and --decode-engines go together: give both");
  if (split && (v.engines !== undefined || speeds)) throw new UsageError("--prefill-engines and --decode-engines set the fleet: leave out --engines and --engine-speeds");
  const prefillEngines = split ? num(v, "prefill-engines", 0, { integer: true, min: 1, max: 2048 }) : 0;
  const decodeEngines = split ? num(v, "decode-engines", 0, { integer: true, min: 1, max: 2048 }) : 0;
  const engines = split ? prefillEngines + decodeEngines : speeds ? speeds.length : num(v, "engines", 8, { integer: true, min: 1, max: 4096 });
  if (speeds && v.engines !== undefined && Number(v.engines) !== speeds.length) {
    throw new UsageError(`--engines ${v.engines} disagrees with the ${speeds.length} speeds of --engine-speeds`);
  }
  const maxRequests = v["max-requests"] === undefined ? undefined : num(v, "max-requests", 0, { integer: true, min: 1 });
  const kvEvents = v["kv-events"] ?? "events";
  if (!KV_EVENTS_MODES.includes(kvEvents as KvEventsMode)) throw new UsageError(`--kv-events must be one of ${KV_EVENTS_MODES.join(", ")}, got ${JSON.stringify(kvEvents)}`);
  const jobs = num(v, "jobs", Math.min(chosen.length, availableParallelism()), { integer: true, min: 1, max: 64 });
  return {
    spec,
    options: {
      policies: chosen,
      engines,
      engine,
      ...(speeds ? { engineSpeeds: speeds } : {}),
      ...(split ? { prefillEngines } : {}),
      disaggMinPrefillTokens: num(v, "disagg-min-prefill-tokens", 0, { integer: true }),
      overlapWeight: num(v, "overlap-weight", 1),
      evictionWeight: num(v, "eviction-weight", DEFAULT_EVICTION_WEIGHT),
      temperature: num(v, "temperature", 0),
      kvEventDelayMs: num(v, "kv-event-delay-ms", 0),
      kvEvents: kvEvents as KvEventsMode,
      prefillGate: onOffOption("prefill-gate", v["prefill-gate"], true),
      decideTogether: onOffOption("decide-together", v["decide-together"], true),
      takeBack: onOffOption("take-back", v["take-back"], true),
      approxTtlMs: 1000 * num(v, "approx-ttl", DEFAULT_APPROX_TTL_MS / 1000, { above: true, max: 1e7 }),
      seed: num(v, "seed", 0, { integer: true }),
      speedup: num(v, "speedup", 1, { above: true }),
      jobs,
      ...(maxRequests !== undefined ? { maxRequests } : {}),
      ...(v.out !== undefined ? { outDir: v.out } : {}),
      ...(v.quiet ? {} : { onProgress: progressWriter(io, v.json) }),
    },
  };
}
