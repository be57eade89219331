// `kvroute serve` options.
import { parseArgs } from "node:util";
import { DEFAULT_INLINE_MAX_TOKENS, DEFAULT_TOKENIZE_CACHE_MB } from "../router/prepare/index.js";
import { parseEngineSpec } from "../router/dispatch/engine-spec.js";
import { BIG_BODY_BYTES } from "../router/http/body-lane.js";
import type { RouterOptions } from "../router/serve.js";
import { DEFAULT_EVICTION_WEIGHT, POLICIES, type PolicyName } from "../router/schedule/index.js";
import { numberOption, onOffOption } from "./usage.js";

/** Shorter than the engine protocol's 5 s heartbeat timeout, and than HTTP engines' 5 s health timeout; longer than an engine step. */
const DEFAULT_STALL_TIMEOUT_S = 2.5;

export const SERVE_USAGE = `usage: kvroute serve [options]

The OpenAI-compatible router. With no --engine it starts simulated engines itself (see --sim).

engines:
  --engine URL[,kv=URL|none][,replay=URL][,name=NAME][,role=ROLE]
                               an engine, repeated for each one: tcp://HOST:PORT speaks kvroute's engine
                               protocol (the vLLM worker in python/); http://HOST:PORT is an OpenAI-compatible
                               server (\`vllm serve\`, SGLang). kv= is its KV-event publisher (tcp://HOST:PORT;
                               none: do not follow its events); an engine without events is routed in
                               approximate mode (see --approx-ttl). replay= is the publisher's replay
                               endpoint; name= names it in headers and metrics; role= is prefill, decode or
                               both (default): with prefill and decode engines, prompts are prefilled on a
                               prefill engine and decoded on a decode engine after a KV transfer
  --engine-metrics-interval S  read HTTP engines' /metrics every S seconds, so that their load from other
                               clients counts (default 1; 0: never)
  --stall-timeout S            an engine whose requests get no event for S seconds (a token, or the first
                               one later than predicted) while it is connected takes no new requests until
                               they move again (default ${DEFAULT_STALL_TIMEOUT_S}; 0: never)
  --sim N                      simulated engines to start when no --engine is given (default 4)
  --sim-http                   the simulated engines serve vLLM's OpenAI HTTP API and are reached as HTTP
                               engines (default: kvroute's engine protocol)
  --sim-speedup X              their modelled time runs X times faster than real time; 0: no delay at all
                               (default 1: a realistic pace)
  --sim-blocks N               KV-cache blocks per simulated engine (default 8192)
  --sim-max-model-len N        context length of the simulated engines (default 32768; at most
                               blocks × block size)
  --sim-engine-speeds S1,S2,...
                               one speed per simulated engine (0.5: every step takes twice as long);
                               sets their number. The router is not told: its time models find out
  --sim-prefill N --sim-decode M
                               start N simulated prefill engines and M decode engines instead (sim-p0…,
                               sim-d0…): disaggregated serving
  --sim-no-cached-tokens       the simulated engines withhold their cached-token count, so that answers
                               carry the router's estimate
  --block-size N               hash prompts with N-token blocks; engines with another block size are
                               refused, also when their KV events show it (default: the first engine's;
                               16, vLLM's default, for HTTP engines, which cannot say)
  --served-model-name NAME     the model name clients use (default: the engines' model name)

HTTP:
  --host HOST                  address to listen on (default 127.0.0.1)
  --port PORT                  port (default 8000; 0: any free port)
  --api-key KEY                require 'Authorization: Bearer KEY' on /v1/* (or set KVROUTE_API_KEY)
  --max-body-bytes N           largest request body (default 16777216)
  --body-lane-bytes N          a body over N bytes is parsed, and its prompts tokenized, on a thread of its
                               own, so that no other request waits while it is (default ${BIG_BODY_BYTES}; 0: all
                               on the main thread, and no such thread)

routing:
  --policy NAME                kv (default: the cost is predicted time), kv-blocks, round-robin, random or
                               least-loaded
  --overlap-weight W           kv-blocks: cost = W × prefill blocks + decode blocks (default 1)
  --eviction-weight W          kv: the weight of what a request's new blocks evict, in their compute time,
                               scaled by how fast the engine's cache turns over against the others'
                               (default ${DEFAULT_EVICTION_WEIGHT}; 0: time alone)
  --prefill-gate on|off        kv: hold a request in the router while its engine computes prompts it
                               would slow down, and send it when they have their first tokens (default on)
  --decide-together on|off     kv: decide requests whose prompts are ready in the same event-loop turn
                               together, the one with the most cache to lose first, and send them
                               shortest first (default on)
  --take-back on|off           kv: a prompt of at most 4,096 uncached tokens goes before the longer ones
                               its engine is computing, which are aborted there and sent again once it
                               has its first token (default on)
  --temperature T              0 (default): cheapest engine; above 0: softmax sampling over costs
  --cached-tokens-fallback router|none
                               when an engine does not report cached_tokens: report the router's estimate
                               overlap_blocks × block_size (router, default) or 0 (none)
  --disagg-min-prefill-tokens N
                               with prefill and decode engines: a prompt whose uncached part (on the decode
                               engine that would serve it) is under N tokens is prefilled there, without a
                               prefill engine (default 0: every prompt goes to a prefill engine)

preparation:
  --workers N                  preparation pool threads (default: cores - 1, at least 1)
  --tokenizer DIR              Hugging Face model folder (tokenizer.json, tokenizer_config.json, chat
                               template); default: the Qwen3 tokenizer shipped with kvroute
  --tokenize-cache-mb N        exact tokenization cache per pool thread, in MiB: token ids of the text
                               between special tokens (a repeated system prompt is tokenized once); 0
                               turns it off (default ${DEFAULT_TOKENIZE_CACHE_MB})
  --special-tokens-in-content parse|plain
                               special-token text inside chat messages (<|im_start|> and the like): parse
                               makes it special tokens, as vLLM does (default); plain tokenizes it as text,
                               so that a message cannot open a turn of another role
  --inline-max-tokens N        token-id prompts up to N tokens are prepared on the main thread
                               (default ${DEFAULT_INLINE_MAX_TOKENS})
  --index-capacity N           prefix-index entries (blocks) kept across the fleet (default 1048576)
  --approx-ttl S               approximate mode, for engines without KV events: a prompt sent to one is
                               taken as cached there for S seconds after it was last sent, up to the
                               engine's KV capacity (default 120; 0: route such engines by load alone)

replicas (several routers behind one load balancer, sharing load through NATS):
  --nats URL                   nats://HOST:PORT (comma-separated for a cluster): share this router's booked
                               load, approximate-mode predictions and view of engine health with the other
                               replicas on the same subject, and count theirs (default: a single router)
  --nats-subject SUBJECT       the subject the replicas of one fleet share (default kvroute.replicas)
  --replica-expiry S           a replica not heard from for S seconds (killed, cut off) has its load
                               dropped (default 3; replicas send their whole state every S/3 seconds)

  --log-level LEVEL            fatal, error, warn, info (default: one line per request), debug
  -h, --help                   this help`;

/** The router's options, and how much the command logs. */
export interface ServeOptions extends RouterOptions {
  logLevel: string;
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeOptions | "help" {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      engine: { type: "string", multiple: true },
      "engine-metrics-interval": { type: "string" },
      "stall-timeout": { type: "string" },
      sim: { type: "string" },
      "sim-http": { type: "boolean" },
      "sim-speedup": { type: "string" },
      "sim-blocks": { type: "string" },
      "sim-max-model-len": { type: "string" },
      "sim-engine-speeds": { type: "string" },
      "sim-prefill": { type: "string" },
      "sim-decode": { type: "string" },
      "sim-no-cached-tokens": { type: "boolean" },
      "disagg-min-prefill-tokens": { type: "string" },
      "block-size": { type: "string" },
      "served-model-name": { type: "string" },
      host: { type: "string" },
      port: { type: "string" },
      "api-key": { type: "string" },
      "max-body-bytes": { type: "string" },
      "body-lane-bytes": { type: "string" },
      policy: { type: "string" },
      "overlap-weight": { type: "string" },
      "eviction-weight": { type: "string" },
      "prefill-gate": { type: "string" },
      "decide-together": { type: "string" },
      "take-back": { type: "string" },
      temperature: { type: "string" },
      "cached-tokens-fallback": { type: "string" },
      workers: { type: "string" },
      tokenizer: { type: "string" },
      "tokenize-cache-mb": { type: "string" },
      "inline-max-tokens": { type: "string" },
      "special-tokens-in-content": { type: "string" },
      "index-capacity": { type: "string" },
      "approx-ttl": { type: "string" },
      nats: { type: "string" },
      "nats-subject": { type: "string" },
      "replica-expiry": { type: "string" },
      "log-level": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return "help";
  const policy = values.policy ?? "kv";
  if (!POLICIES.includes(policy as PolicyName)) throw new Error(`--policy must be one of ${POLICIES.join(", ")}, got ${JSON.stringify(policy)}`);
  const fallback = values["cached-tokens-fallback"] ?? "router";
  if (fallback !== "router" && fallback !== "none") throw new Error(`--cached-tokens-fallback must be router or none, got ${JSON.stringify(fallback)}`);
  const specials = values["special-tokens-in-content"] ?? "parse";
  if (specials !== "parse" && specials !== "plain") throw new Error(`--special-tokens-in-content must be parse or plain, got ${JSON.stringify(specials)}`);
  const logLevel = values["log-level"] ?? "info";
  if (!LOG_LEVELS.includes(logLevel)) throw new Error(`--log-level must be one of ${LOG_LEVELS.join(", ")}, got ${JSON.stringify(logLevel)}`);
  const engines = (values.engine ?? []).map(parseEngineSpec);
  const simSpeeds = values["sim-engine-speeds"] === undefined ? [] : values["sim-engine-speeds"].split(",").map((part) => num("sim-engine-speeds", part.trim(), 1, 1e-3, 1e3));
  if (simSpeeds.length > 0 && values.sim !== undefined && Number(values.sim) !== simSpeeds.length) {
    throw new Error(`--sim ${values.sim} disagrees with the ${simSpeeds.length} speeds of --sim-engine-speeds`);
  }
  const simPrefill = int("sim-prefill", values["sim-prefill"], 0, 0, 64);
  const simDecode = int("sim-decode", values["sim-decode"], 0, 0, 64);
  if ((simPrefill > 0) !== (simDecode > 0)) throw new Error("--sim-prefill and --sim-decode go together: give both, each at least 1");
  if (simPrefill > 0 && (values.sim !== undefined || simSpeeds.length > 0)) throw new Error("--sim-prefill and --sim-decode set the simulated engines: leave out --sim and --sim-engine-speeds");
  return {
    engines,
    sim: simSpeeds.length > 0 ? simSpeeds.length : int("sim", values.sim, 4, 1, 64),
    simSpeeds,
    simHttp: values["sim-http"] ?? false,
    simPrefill,
    simDecode,
    simNoCachedTokens: values["sim-no-cached-tokens"] ?? false,
    disaggMinPrefillTokens: int("disagg-min-prefill-tokens", values["disagg-min-prefill-tokens"], 0, 0, 1 << 24),
    engineMetricsIntervalMs: Math.round(1000 * num("engine-metrics-interval", values["engine-metrics-interval"], 1, 0, 3600)),
    stallTimeoutMs: Math.round(1000 * num("stall-timeout", values["stall-timeout"], DEFAULT_STALL_TIMEOUT_S, 0, 3600)),
    simSpeedup: num("sim-speedup", values["sim-speedup"], 1, 0, 1e6),
    simBlocks: values["sim-blocks"] === undefined ? undefined : int("sim-blocks", values["sim-blocks"], 0, 1, 1 << 26),
    simMaxModelLen: values["sim-max-model-len"] === undefined ? undefined : int("sim-max-model-len", values["sim-max-model-len"], 0, 1, 1 << 24),
    blockSize: values["block-size"] === undefined ? null : int("block-size", values["block-size"], 16, 1, 1 << 20),
    servedModelName: values["served-model-name"] ?? null,
    host: values.host ?? "127.0.0.1",
    port: int("port", values.port, 8000, 0, 65535),
    apiKey: values["api-key"] ?? (env.KVROUTE_API_KEY || undefined),
    maxBodyBytes: int("max-body-bytes", values["max-body-bytes"], 16 * 1024 * 1024, 1024, 1 << 30),
    bodyLaneBytes: int("body-lane-bytes", values["body-lane-bytes"], BIG_BODY_BYTES, 0, 1 << 30),
    policy: policy as PolicyName,
    overlapWeight: num("overlap-weight", values["overlap-weight"], 1, 0, 1e6),
    evictionWeight: num("eviction-weight", values["eviction-weight"], DEFAULT_EVICTION_WEIGHT, 0, 1e6),
    prefillGate: onOffOption("prefill-gate", values["prefill-gate"], true),
    decideTogether: onOffOption("decide-together", values["decide-together"], true),
    takeBack: onOffOption("take-back", values["take-back"], true),
    temperature: num("temperature", values.temperature, 0, 0, 1e6),
    cachedTokensFallback: fallback,
    workers: values.workers === undefined ? undefined : int("workers", values.workers, 1, 1, 256),
    tokenizer: values.tokenizer ?? null,
    tokenizeCacheMb: num("tokenize-cache-mb", values["tokenize-cache-mb"], DEFAULT_TOKENIZE_CACHE_MB, 0, 1 << 20),
    specialTokensInContent: specials,
    inlineMaxTokens: int("inline-max-tokens", values["inline-max-tokens"], DEFAULT_INLINE_MAX_TOKENS, 0, 1 << 30),
    indexCapacity: int("index-capacity", values["index-capacity"], 1 << 20, 1024, 1 << 28),
    approxTtlMs: Math.ceil(1000 * num("approx-ttl", values["approx-ttl"], 120, 0, 86_400)),
    nats: values.nats === undefined ? null : natsUrl(values.nats),
    natsSubject: natsSubject(values["nats-subject"] ?? "kvroute.replicas"),
    replicaExpiryMs: Math.round(1000 * num("replica-expiry", values["replica-expiry"], 3, 0.1, 3600)),
    logLevel,
  };
}

function num(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  return numberOption(name, value, { min, max }) ?? fallback;
}

function int(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  return numberOption(name, value, { integer: true, min, max }) ?? fallback;
}

const NATS_URL = /^(nats|tls):\/\/([^:/\s,]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/;

function natsUrl(text: string): string {
  for (const url of text.split(",")) {
    const m = NATS_URL.exec(url);
    if (!m || Number(m[3]) < 1 || Number(m[3]) > 65535) throw new Error(`--nats must be nats://HOST:PORT (comma-separated for several servers), got ${JSON.stringify(url)}`);
  }
  return text;
}

/** A NATS subject without wildcards: dot-separated tokens. */
function natsSubject(text: string): string {
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(text)) throw new Error(`--nats-subject must be dot-separated tokens of letters, digits, _ and - (no wildcards), got ${JSON.stringify(text)}`);
  return text;
}
