// `kvroute serve`: the router, with simulated engines when none are given.
import { pino, type Logger } from "pino";
import { Frontend } from "../router/http/server.js";
import { KvEventWriter } from "../router/kv-index/kv-events/index.js";
import { RouterMetrics } from "../router/metrics/index.js";
import { PreparePool } from "../router/prepare/index.js";
import { parseEngineSpec, type EngineSpec } from "../router/dispatch/engine-spec.js";
import { Fleet } from "../router/dispatch/fleet.js";
import { Router } from "../router/router.js";
import { startSimulatorThread, type SimulatorThread } from "../mock-engine/index.js";
import { Scheduler } from "../router/schedule/index.js";
import { watchKvEvents } from "../router/metrics/kv-metrics.js";
import { requestLogger } from "../router/metrics/request-log.js";
import { parseServeArgs, SERVE_USAGE, type ServeOptions } from "./serve-options.js";

/** Engines the index can track; the table's per-entry engine sets are sized for this many. */
const MAX_ENGINES = 256;
/** How long start-up waits for a first engine before serving anyway (/health says 503 until one is up). */
const FIRST_ENGINE_WAIT_MS = 10_000;

export async function runServe(argv: string[]): Promise<number> {
  let options: ServeOptions | "help";
  try {
    options = parseServeArgs(argv);
  } catch (err) {
    console.error(`kvroute serve: ${(err as Error).message}\n\n${SERVE_USAGE}`);
    return 2;
  }
  if (options === "help") {
    console.log(SERVE_USAGE);
    return 0;
  }
  const log = pino({ level: options.logLevel, base: undefined });
  let running: RunningRouter;
  try {
    running = await startRouter(options, log);
  } catch (err) {
    log.fatal((err as Error).message);
    return 1;
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, "shutting down");
      resolve();
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
  await running.close();
  return 0;
}

export interface RunningRouter {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Starts every part of the router; also used in-process by tests and benchmarks. */
export async function startRouter(options: ServeOptions, log: Logger): Promise<RunningRouter> {
  if (options.engines.length > MAX_ENGINES) throw new Error(`at most ${MAX_ENGINES} engines are supported, got ${options.engines.length}`);
  const closers: (() => Promise<void> | void)[] = [];
  const close = async () => {
    for (const c of closers.reverse()) await c();
  };
  try {
    let engines: EngineSpec[] = options.engines;
    let sims: SimulatorThread | null = null;
    if (engines.length === 0) {
      sims = await startSimulatorThread(options.sim, {
        speedup: options.simSpeedup,
        ...(options.blockSize ? { blockSize: options.blockSize } : {}),
        ...(options.simBlocks ? { numBlocks: options.simBlocks } : {}),
        ...(options.simMaxModelLen ? { maxModelLen: options.simMaxModelLen } : {}),
      });
      closers.push(() => sims!.close());
      engines = sims.engines.map((e, i) => ({ ...parseEngineSpec(e.url), name: `sim-${i}` }));
      log.info({ engines: engines.length, speedup: options.simSpeedup }, "no --engine given: started simulated engines");
    }
    const kv = await KvEventWriter.start({ capacity: options.indexCapacity, maxEngines: MAX_ENGINES });
    closers.push(() => kv.close());
    const metrics = new RouterMetrics();
    const scheduler = new Scheduler({ policy: options.policy, overlapWeight: options.overlapWeight, temperature: options.temperature });
    const fleet = new Fleet(engines, { blockSize: options.blockSize, scheduler, kv, log });
    closers.push(() => fleet.close());
    const pool = await PreparePool.start({
      tokenizerDir: options.tokenizer,
      index: kv.shared,
      ...(options.workers !== undefined ? { threads: options.workers } : {}),
      inlineMaxTokens: options.inlineMaxTokens,
    });
    closers.push(() => pool.close());
    watchKvEvents(metrics, kv, (id) => fleet.engines[id]?.name ?? String(id));
    metrics.engines(() =>
      fleet.engines.map((e) => {
        const load = scheduler.active.load(e.id);
        return { engine: e.name, up: e.state === "up", activeRequests: load.requests, prefillBlocks: load.prefillBlocks, decodeBlocks: load.decodeBlocks };
      }),
    );
    fleet.start();
    if (!(await fleet.waitForEngine(FIRST_ENGINE_WAIT_MS))) {
      log.warn("no engine is up yet: serving anyway; /health answers 503 until one connects");
    }
    const router = new Router({ fleet, scheduler, pool, metrics, log, cachedTokensFallback: options.cachedTokensFallback, servedModelName: options.servedModelName });
    const frontend = new Frontend(router, {
      host: options.host,
      port: options.port,
      apiKey: options.apiKey,
      maxBodyBytes: options.maxBodyBytes,
      telemetry: { requestDone: (r) => { metrics.requestDone(r); requestLog(r); }, interTokenLatency: (s) => metrics.interTokenLatency(s) },
    });
    const requestLog = requestLogger(log);
    const port = await frontend.listen();
    closers.push(() => frontend.close());
    const url = `http://${options.host.includes(":") ? `[${options.host}]` : options.host}:${port}`;
    printWelcome(log, url, router.modelName, sims !== null, options);
    return { url, port, close };
  } catch (err) {
    await close();
    throw err;
  }
}

function printWelcome(log: Logger, url: string, model: string | null, simulated: boolean, options: ServeOptions): void {
  const auth = options.apiKey ? ` -H 'Authorization: Bearer ${options.apiKey.slice(0, 2)}…'` : "";
  log.info({ url, model, engines: simulated ? `${options.sim} simulated` : options.engines.length }, "kvroute listening");
  // The first thing a new user needs, in plain text rather than a JSON log line.
  process.stderr.write(
    `\nkvroute is serving ${model ?? "(waiting for engines)"} at ${url}\n` +
      `try:\n  curl -s ${url}/v1/chat/completions -H 'Content-Type: application/json'${auth} \\\n` +
      `    -d '{"model": "${model ?? "MODEL"}", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 32}'\n\n`,
  );
}
