// `kvroute sim`: runs the simulated vLLM engine as its own process, speaking kvroute's engine protocol or,
// with --http, vLLM's OpenAI HTTP API.
import { parseArgs } from "node:util";
import type { LogFn } from "../engine-protocol/index.js";
import { DEFAULT_TIMING, type SimulatorOptions, startHttpSimulator, startSimulator } from "../mock-engine/index.js";
import { numberOption } from "./usage.js";

export const SIM_USAGE = `usage: kvroute sim [options]

A simulated vLLM engine: speaks the engine protocol on TCP (or, with --http, vLLM's OpenAI HTTP API) and
publishes vLLM's KV events on ZMQ. Prints one JSON line on stdout once it listens: {"url", "kv_events",
"replay", ...}.

listening:
  --host HOST                    address to listen on (default 127.0.0.1)
  --port PORT                    TCP port (default 0: any free port)
  --model NAME                   served model name (default Qwen/Qwen3-0.6B)
  --engine-id ID                 name in the handshake (default kvroute-sim@HOST:PORT)
  --http                         serve vLLM's OpenAI surface instead, as \`vllm serve\` does: GET /health,
                                 /v1/models, /metrics (vLLM's metric names), POST /v1/completions
                                 (token-id or text prompts; text is taken one token per UTF-8 byte)
  --enable-prompt-tokens-details with --http: usage carries prompt_tokens_details.cached_tokens when it is
                                 not 0, as vLLM's flag of that name

KV events:
  --kv-events ENDPOINT           ZMQ PUB endpoint to bind (default tcp://127.0.0.1:*; "none": off)
  --replay ENDPOINT              ZMQ ROUTER replay endpoint (default tcp://127.0.0.1:*; "none": off)
  --topic TOPIC                  ZMQ topic (default "")
  --layout array|map             payload layout (default array: events as arrays with medium, lora_name)
  --replay-format topic|legacy   replay replies with the topic frame (newer vLLM, default) or without

engine:
  --blocks N                     KV-cache capacity in blocks (default 8192)
  --block-size N                 tokens per block (default 16)
  --max-num-seqs N               most sequences running at once (default 256)
  --max-num-batched-tokens N     most tokens computed per step, chunking long prefills (default 8192)
  --max-model-len N              context length (default 32768)
  --vocab-size N                 prompt token ids must be below N (default 151936)
  --seed N                       seeds output tokens and block hashes (default 0)
  --eos-probability P            chance per token of stopping at EOS, unless ignore_eos (default 0)

timing (milliseconds of modelled time):
  --step-overhead-ms X           per step that does work (default ${DEFAULT_TIMING.stepOverheadMs})
  --prefill-ms-per-token X       per prompt token computed (default ${DEFAULT_TIMING.prefillMsPerToken})
  --decode-ms-per-seq X          per sequence decoding a token (default ${DEFAULT_TIMING.decodeMsPerSeq})
  --ms-per-kv-block X            per KV block held by the step's sequences (default ${DEFAULT_TIMING.msPerKvBlock})
  --speedup X                    modelled time runs X times faster than real time; 0: as fast as it can (default 0)

disaggregated prefill (vLLM's NixlConnector, as the router drives it with kv_transfer_params):
  --kv-transfer-host HOST        where the KV transfer channel listens, which decode engines pull held
                                 blocks from (default 127.0.0.1; "none": off)
  --kv-transfer-port PORT        its port (default 0: any free port)
  --kv-transfer-gbps X           the link this engine pulls blocks over, in Gb/s; a block is block size ×
                                 112 KiB (Qwen3-0.6B's KV per token), so 16-token blocks take 0.037 ms
                                 each at the default 400 (divided by --speedup; none at 0)
  --kv-hold-timeout-ms N         blocks a prefill request holds for a decode engine are freed after N ms
                                 if no decode engine has pulled them (default 30000)

  --no-cached-tokens             answer cached_tokens nil, like an engine that cannot count them
  --log-requests                 log each finished request: cached tokens beside the router's overlap_blocks
  -h, --help                     this help`;

function endpoint(value: string | undefined): string | null | undefined {
  if (value === undefined) return undefined;
  return value === "none" ? null : value;
}

/** The simulator's settings, and which surface it serves. */
export interface SimArgs extends SimulatorOptions {
  http: boolean;
  enablePromptTokensDetails: boolean;
}

/** Parses `kvroute sim` arguments; throws with a message naming the bad option. */
export function parseSimArgs(argv: string[]): SimArgs | "help" {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      host: { type: "string" },
      port: { type: "string" },
      model: { type: "string" },
      "engine-id": { type: "string" },
      "kv-events": { type: "string" },
      replay: { type: "string" },
      topic: { type: "string" },
      layout: { type: "string" },
      "replay-format": { type: "string" },
      blocks: { type: "string" },
      "block-size": { type: "string" },
      "max-num-seqs": { type: "string" },
      "max-num-batched-tokens": { type: "string" },
      "max-model-len": { type: "string" },
      "vocab-size": { type: "string" },
      http: { type: "boolean" },
      "enable-prompt-tokens-details": { type: "boolean" },
      seed: { type: "string" },
      "eos-probability": { type: "string" },
      "step-overhead-ms": { type: "string" },
      "prefill-ms-per-token": { type: "string" },
      "decode-ms-per-seq": { type: "string" },
      "ms-per-kv-block": { type: "string" },
      speedup: { type: "string" },
      "no-cached-tokens": { type: "boolean" },
      "kv-transfer-host": { type: "string" },
      "kv-transfer-port": { type: "string" },
      "kv-transfer-gbps": { type: "string" },
      "kv-hold-timeout-ms": { type: "string" },
      "log-requests": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  const layout = values.layout;
  if (layout !== undefined && layout !== "array" && layout !== "map") throw new RangeError(`--layout must be array or map, not ${JSON.stringify(layout)}`);
  const replayFormat = values["replay-format"];
  if (replayFormat !== undefined && replayFormat !== "topic" && replayFormat !== "legacy") {
    throw new RangeError(`--replay-format must be topic or legacy, not ${JSON.stringify(replayFormat)}`);
  }
  const timing: NonNullable<SimulatorOptions["timing"]> = {};
  const overhead = numberOption("step-overhead-ms", values["step-overhead-ms"]);
  if (overhead !== undefined) timing.stepOverheadMs = overhead;
  const prefill = numberOption("prefill-ms-per-token", values["prefill-ms-per-token"]);
  if (prefill !== undefined) timing.prefillMsPerToken = prefill;
  const decode = numberOption("decode-ms-per-seq", values["decode-ms-per-seq"]);
  if (decode !== undefined) timing.decodeMsPerSeq = decode;
  const kv = numberOption("ms-per-kv-block", values["ms-per-kv-block"]);
  if (kv !== undefined) timing.msPerKvBlock = kv;
  if (values["enable-prompt-tokens-details"] && !values.http) throw new RangeError("--enable-prompt-tokens-details needs --http");
  if (values["no-cached-tokens"] && values.http) throw new RangeError("--no-cached-tokens is for the engine protocol; with --http, leave out --enable-prompt-tokens-details");
  const options: SimArgs = {
    http: values.http ?? false,
    enablePromptTokensDetails: values["enable-prompt-tokens-details"] ?? false,
    host: values.host,
    port: numberOption("port", values.port, { integer: true }),
    model: values.model,
    engineId: values["engine-id"],
    kvEventsEndpoint: endpoint(values["kv-events"]),
    replayEndpoint: endpoint(values.replay),
    kvEventsTopic: values.topic,
    kvEventsLayout: layout,
    replayFormat,
    numBlocks: numberOption("blocks", values.blocks, { integer: true }),
    blockSize: numberOption("block-size", values["block-size"], { integer: true }),
    maxNumSeqs: numberOption("max-num-seqs", values["max-num-seqs"], { integer: true }),
    maxNumBatchedTokens: numberOption("max-num-batched-tokens", values["max-num-batched-tokens"], { integer: true }),
    maxModelLen: numberOption("max-model-len", values["max-model-len"], { integer: true }),
    vocabSize: numberOption("vocab-size", values["vocab-size"], { integer: true, min: 1 }),
    seed: numberOption("seed", values.seed, { integer: true }),
    eosProbability: numberOption("eos-probability", values["eos-probability"]),
    speedup: numberOption("speedup", values.speedup),
    reportCachedTokens: !values["no-cached-tokens"],
    kvTransferHost: endpoint(values["kv-transfer-host"]),
    kvTransferPort: numberOption("kv-transfer-port", values["kv-transfer-port"], { integer: true, min: 0, max: 65535 }),
    kvTransferGbps: numberOption("kv-transfer-gbps", values["kv-transfer-gbps"], { min: 0, above: true }),
    kvHoldTimeoutMs: numberOption("kv-hold-timeout-ms", values["kv-hold-timeout-ms"], { min: 0 }),
    timing,
  };
  if (values["log-requests"]) {
    const log: LogFn = (level, message) => {
      if (level !== "debug") console.error(`kvroute sim: ${message}`);
    };
    options.log = log;
  }
  return options;
}

export async function runSim(argv: string[]): Promise<number> {
  let options: SimArgs | "help";
  try {
    options = parseSimArgs(argv);
  } catch (error) {
    console.error(`kvroute sim: ${(error as Error).message}\n\n${SIM_USAGE}`);
    return 2;
  }
  if (options === "help") {
    console.log(SIM_USAGE);
    return 0;
  }
  let sim: { url: string; kvEventsEndpoint: string | null; replayEndpoint: string | null; kvTransfer: { host: string; port: number } | null; close(): Promise<void> };
  let info: { model: string; blockSize: number; numBlocks: number | null; maxModelLen: number };
  try {
    if (options.http) {
      const http = await startHttpSimulator(options);
      const c = http.core.options;
      sim = http;
      info = { model: http.model, blockSize: c.blockSize, numBlocks: c.numBlocks, maxModelLen: c.maxModelLen };
    } else {
      const tcp = await startSimulator(options);
      sim = tcp;
      info = tcp.info;
    }
  } catch (error) {
    console.error(`kvroute sim: ${(error as Error).message}`);
    return 1;
  }
  console.log(
    JSON.stringify({
      url: sim.url,
      kv_events: sim.kvEventsEndpoint,
      replay: sim.replayEndpoint,
      kv_transfer: sim.kvTransfer && `${sim.kvTransfer.host}:${sim.kvTransfer.port}`,
      model: info.model,
      block_size: info.blockSize,
      num_blocks: info.numBlocks,
      max_model_len: info.maxModelLen,
      pid: process.pid,
    }),
  );
  await new Promise<void>((resolve) => {
    const stop = (): void => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await sim.close();
  return 0;
}
