// startRouter: every part of the router, started and wired together. `kvroute serve` calls it, and so can
// a program that embeds the router.
import type { Logger } from "pino";
import { checkRoles, parseEngineSpec, type EngineSpec } from "./dispatch/engine-spec.js";
import { Fleet } from "./dispatch/fleet.js";
import { BodyLane } from "./http/body-lane.js";
import { Frontend } from "./http/server.js";
import { KvEventThread } from "./kv-index/kv-events/index.js";
import { MAX_ENGINES } from "./kv-index/prefix-index/index.js";
import { ReplicaMetrics, RouterMetrics, requestLogger, watchBodyLane, watchKvEvents, watchPool } from "./metrics/index.js";
import { ReplicaSync } from "./replicas/index.js";
import { PreparePool, type SpecialTokensInContent } from "./prepare/index.js";
import { Router, type ApproxRecorder } from "./router.js";
import { RoutingCore, Scheduler, type CachedTokensFallback, type PolicyName } from "./schedule/index.js";
import { startSimulatorThread, type SimulatorThread } from "../mock-engine/index.js";

export interface RouterOptions {
  /** The engines; none: start `sim` simulated engines in a worker thread. */
  engines: EngineSpec[];
  sim: number;
  /** Simulated engines serve vLLM's OpenAI HTTP API (and are reached as HTTP engines) instead of msgpack. */
  simHttp: boolean;
  simSpeedup: number;
  simBlocks: number | undefined;
  simMaxModelLen: number | undefined;
  /** Simulated engine i runs simSpeeds[i] times as fast as the default timing (empty: all at 1). */
  simSpeeds: number[];
  /** Simulated prefill and decode engines to start instead of `sim` aggregated ones (0 and 0: none). */
  simPrefill: number;
  simDecode: number;
  /** Simulated engines withhold their cached-token count. */
  simNoCachedTokens: boolean;
  /** With engine roles: prompts with fewer uncached tokens than this are prefilled on their decode engine. */
  disaggMinPrefillTokens: number;
  /** The block size prompts are hashed with; null: the first engine's (16 for HTTP engines). */
  blockSize: number | null;
  /** How often HTTP engines' /metrics are read for their load, in ms; 0: never. */
  engineMetricsIntervalMs: number;
  /** An engine whose waiting requests get no event for this long takes no new ones until it moves; 0: never. */
  stallTimeoutMs: number;
  servedModelName: string | null;
  host: string;
  /** 0: any free port. */
  port: number;
  apiKey: string | undefined;
  maxBodyBytes: number;
  /** Bodies over this many bytes are parsed and tokenized in the body lane's thread; 0: no lane. */
  bodyLaneBytes: number;
  policy: PolicyName;
  overlapWeight: number;
  /** kv: the cost's weight on what a request's new blocks evict (policy.ts). */
  evictionWeight: number;
  /** kv: hold a request while its engine computes prompts it would slow down (prefill-gate.ts). */
  prefillGate: boolean;
  /** kv: decide requests whose prompts are ready in one event-loop turn together (schedule/together.ts). */
  decideTogether: boolean;
  /** kv: a short prompt goes before the long ones its engine is computing (schedule/take-back.ts). */
  takeBack: boolean;
  temperature: number;
  cachedTokensFallback: CachedTokensFallback;
  /** Preparation pool threads; undefined: cores - 1, at least 1. */
  workers: number | undefined;
  /** Hugging Face model folder; null: the Qwen3 tokenizer shipped with kvroute. */
  tokenizer: string | null;
  /** Per pool thread: the tokenization cache's budget in MiB (0: off). */
  tokenizeCacheMb: number;
  /** Special-token text inside chat messages: parsed into special tokens (vLLM's way) or kept as text. */
  specialTokensInContent: SpecialTokensInContent;
  inlineMaxTokens: number;
  indexCapacity: number;
  /**
   * Approximate mode for engines without KV events: how long a prediction of their cache is believed, in
   * ms; 0 turns the mode off (they are routed by load alone).
   */
  approxTtlMs: number;
  /** Replicas: the NATS server(s) they share load through; null: a single router. */
  nats: string | null;
  natsSubject: string;
  /** A replica not heard from for this long has its bookings dropped (ms). */
  replicaExpiryMs: number;
}

export interface RunningRouter {
  url: string;
  port: number;
  /** The model name clients use, once an engine has said it. */
  readonly modelName: string | null;
  /** Whether the engines are simulated ones the router started. */
  simulated: boolean;
  close(): Promise<void>;
}

/** How long start-up waits for a first engine before serving anyway (/health says 503 until one is up). */
const FIRST_ENGINE_WAIT_MS = 10_000;

export async function startRouter(options: RouterOptions, log: Logger): Promise<RunningRouter> {
  if (options.engines.length > MAX_ENGINES) throw new Error(`at most ${MAX_ENGINES} engines are supported, got ${options.engines.length}`);
  const closers: (() => Promise<void> | void)[] = [];
  const close = async () => {
    for (const c of closers.reverse()) await c();
  };
  try {
    let engines: EngineSpec[] = options.engines;
    let sims: SimulatorThread | null = null;
    if (engines.length === 0) {
      const split = options.simPrefill > 0;
      sims = await startSimulatorThread(split ? options.simPrefill + options.simDecode : options.sim, {
        http: options.simHttp,
        speedup: options.simSpeedup,
        ...(options.blockSize ? { blockSize: options.blockSize } : {}),
        ...(options.simBlocks ? { numBlocks: options.simBlocks } : {}),
        ...(options.simMaxModelLen ? { maxModelLen: options.simMaxModelLen } : {}),
        reportCachedTokens: !options.simNoCachedTokens,
        enablePromptTokensDetails: !options.simNoCachedTokens,
      }, options.simSpeeds);
      closers.push(() => sims!.close());
      // An HTTP engine announces no KV-event endpoint: it is given, as it would be on the command line.
      engines = sims.engines.map((e, i) => ({
        ...parseEngineSpec(options.simHttp && e.kvEventsEndpoint ? `${e.url},kv=${e.kvEventsEndpoint}${e.replayEndpoint ? `,replay=${e.replayEndpoint}` : ""}` : e.url),
        ...(!split ? { name: `sim-${i}` } : i < options.simPrefill ? { name: `sim-p${i}`, role: "prefill" as const } : { name: `sim-d${i - options.simPrefill}`, role: "decode" as const }),
      }));
      log.info(
        { engines: engines.length, ...(split ? { prefill: options.simPrefill, decode: options.simDecode } : {}), speedup: options.simSpeedup, api: options.simHttp ? "http" : "msgpack" },
        "no --engine given: started simulated engines",
      );
    }
    checkRoles(engines);
    // The index's engine sets are sized for the fleet: 8 bytes per entry for every 32 engines.
    const approxOn = options.approxTtlMs > 0;
    const kv = await KvEventThread.start({
      capacity: options.indexCapacity,
      maxEngines: Math.ceil(engines.length / 32) * 32,
      ...(approxOn ? { approxTtlMs: options.approxTtlMs } : {}),
    });
    closers.push(() => kv.close());
    const metrics = new RouterMetrics();
    const scheduler = new Scheduler({
      policy: options.policy,
      overlapWeight: options.overlapWeight,
      evictionWeight: options.evictionWeight,
      prefillGate: options.prefillGate,
      decideTogether: options.decideTogether,
      takeBack: options.takeBack,
      temperature: options.temperature,
    });
    const fleet = new Fleet(engines, {
      blockSize: options.blockSize,
      metricsIntervalMs: options.engineMetricsIntervalMs,
      // An engine that does not say how many blocks it caches gets its share of the index.
      approxBlocks: approxOn ? Math.max(1, Math.floor(options.indexCapacity / engines.length)) : null,
      stallMs: options.stallTimeoutMs,
      scheduler,
      kv,
      log,
    });
    closers.push(() => fleet.close());
    kv.onNotice((notice) => {
      if (notice.kind === "block_size_mismatch") {
        fleet.refuse(notice.engine, `its KV events carry blocks of ${notice.eventBlockSize} tokens, but the router hashes blocks of ${notice.engineBlockSize} (set --block-size to the engine's block size)`);
      }
    });
    const core = new RoutingCore({
      scheduler,
      cachedTokensFallback: options.cachedTokensFallback,
      blockSize: () => fleet.blockSize!,
      onTtft: (engine, predicted, observed) => metrics.ttftPrediction(fleet.engines[engine]!.name, predicted / 1000, observed / 1000),
      roles: engines.map((e) => e.role),
      disaggMinPrefillTokens: options.disaggMinPrefillTokens,
    });
    // The body lane loads a tokenizer of its own: it starts beside the pool's threads, not after them.
    const laneStarting =
      options.bodyLaneBytes === 0
        ? null
        : BodyLane.start({
            tokenizerDir: options.tokenizer,
            specialTokensInContent: options.specialTokensInContent,
            minBytes: options.bodyLaneBytes,
            served: () => ({ model: router.modelName, maxModelLen: fleet.maxModelLen }),
          });
    if (laneStarting !== null) {
      // Awaited below; until then a failure to start must not go unhandled, and a lane that did start is
      // closed with the rest.
      laneStarting.catch(() => undefined);
      closers.push(async () => (await laneStarting.catch(() => null))?.close());
    }
    const pool = await PreparePool.start({
      tokenizerDir: options.tokenizer,
      index: kv.shared,
      ...(options.workers !== undefined ? { threads: options.workers } : {}),
      inlineMaxTokens: options.inlineMaxTokens,
      tokenizeCacheMb: options.tokenizeCacheMb,
      specialTokensInContent: options.specialTokensInContent,
    });
    closers.push(() => pool.close());
    const { source, encoder, cache } = pool.tokenizer;
    log.info({ tokenizer: source, encoder, tokenizeCache: cache }, "tokenizer loaded");
    if (cache.reason !== null && options.tokenizeCacheMb > 0) log.warn({ reason: cache.reason }, "the tokenization cache turned itself off for this tokenizer");
    watchKvEvents(metrics, kv, (id) => fleet.engines[id]?.name ?? String(id));
    watchPool(metrics, () => pool.load);
    metrics.engines(() =>
      fleet.engines.map((e) => {
        const load = scheduler.active.load(e.id);
        const peer = scheduler.peerLoad(e.id);
        const report = scheduler.report(e.id);
        const timing = scheduler.predictor(e.id).timing;
        return {
          engine: e.name,
          up: e.state === "up",
          stalled: e.state === "up" && e.stall !== null,
          activeRequests: load.requests,
          prefillBlocks: load.prefillBlocks,
          decodeBlocks: load.decodeBlocks,
          peerPrefillBlocks: peer.prefillBlocks,
          peerDecodeBlocks: peer.decodeBlocks,
          reported: report ? { running: report.running, waiting: report.waiting } : null,
          prefillTokensPerSecond: timing.prefillMsPerToken > 0 ? 1000 / timing.prefillMsPerToken : 0,
          decodeStepSeconds: timing.stepMs / 1000,
          heldRequests: core.gate?.heldOn(e.id) ?? 0,
          pausedRequests: scheduler.takeBacks?.pausedOn(e.id) ?? 0,
          pauses: scheduler.takeBacks?.pausesOn(e.id) ?? 0,
        };
      }),
    );
    fleet.start();
    if (!(await fleet.waitForEngine(FIRST_ENGINE_WAIT_MS))) {
      log.warn("no engine is up yet: serving anyway; /health answers 503 until one connects");
    }
    // Replicas: bookings, predictions and engine health shared with the other routers through NATS.
    const replica =
      options.nats === null
        ? null
        : new ReplicaSync(
            { url: options.nats, subject: options.natsSubject, expiryMs: options.replicaExpiryMs },
            {
              engines: fleet.engines,
              blockSize: () => fleet.blockSize,
              ownLoad: (engine) => scheduler.active.snapshot(engine),
              setPeerLoad: (engine, load) => scheduler.setPeerLoad(engine, load),
              recordApprox: (engine, hashes) => kv.recordApprox(engine, hashes),
              telemetry: new ReplicaMetrics(metrics.registry),
              log,
            },
          );
    if (replica !== null) {
      replica.start();
      closers.push(() => replica.close());
    }
    const approx: ApproxRecorder = {
      record: (engine, hashes) => {
        kv.recordApprox(engine, hashes);
        replica?.shareApprox(engine, hashes);
      },
    };
    const router = new Router({
      fleet,
      approx,
      core,
      pool,
      metrics,
      log,
      servedModelName: options.servedModelName,
      ...(replica !== null ? { replication: () => replica.report() } : {}),
    });
    const bodyLane = laneStarting === null ? undefined : await laneStarting;
    if (bodyLane !== undefined) watchBodyLane(metrics, () => bodyLane.tasks);
    const requestLog = requestLogger(log);
    const frontend = new Frontend(router, {
      host: options.host,
      port: options.port,
      apiKey: options.apiKey,
      maxBodyBytes: options.maxBodyBytes,
      ...(bodyLane !== undefined ? { bodyLane } : {}),
      telemetry: {
        requestDone: (r) => {
          metrics.requestDone(r);
          requestLog(r);
        },
        interTokenLatency: (s) => metrics.interTokenLatency(s),
      },
    });
    const port = await frontend.listen();
    closers.push(() => frontend.close());
    const url = `http://${options.host.includes(":") ? `[${options.host}]` : options.host}:${port}`;
    log.info({ url, model: router.modelName, engines: sims ? `${engines.length} simulated` : options.engines.length, ...(core.disaggregated ? { disaggregated: true } : {}) }, "kvroute listening");
    return {
      url,
      port,
      get modelName() {
        return router.modelName;
      },
      simulated: sims !== null,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
