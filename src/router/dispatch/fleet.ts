// The engines behind the router. The fleet starts each engine (msgpack or HTTP, from its spec), checks that
// it serves the same model at the same block size, and keeps the scheduler and the KV-event side in step
// with who is up: an engine that drops leaves scheduling and its index entries are dropped (a restarted
// engine has an empty cache); when it comes back, it rejoins. An engine whose KV events are not followed
// (it publishes none, kv=none, or they cannot be subscribed to) is put in approximate mode, its cache
// predicted from what the router sends it, unless that mode is off. Engines that report their own load
// (HTTP engines, from their metrics) have it passed to the scheduler as external load while it is fresh. Every
// engine's request streams are watched for progress (stall-watch.ts): an engine that is up but stalled
// takes no new requests until it moves again.
import type { Logger } from "pino";
import type { KvEventThread } from "../kv-index/kv-events/index.js";
import type { Scheduler } from "../schedule/index.js";
import type { Engine, EngineInfo } from "./engine.js";
import type { EngineSpec } from "./engine-spec.js";
import { HttpEngine } from "./http-engine.js";
import { MsgpackEngine } from "./msgpack-engine.js";
import { StallWatch, WatchedEngine, type StallChange } from "./stall-watch.js";

/** vLLM's default block size, assumed for HTTP engines when --block-size is not given (they cannot say). */
export const HTTP_DEFAULT_BLOCK_SIZE = 16;

/** What the fleet tells the KV-event side about engines joining and leaving. */
export type KvRegistry = Pick<KvEventThread, "addEngine" | "addApproxEngine" | "removeEngine">;

/**
 * How an engine that is up is routed: by `cache` (its KV events are followed), by `approx` (its cache is
 * predicted from the router's own decisions) or by `load` alone.
 */
export type Routing = "cache" | "approx" | "load";

export type EngineState = "connecting" | "up" | "down" | "refused";

export class EngineHandle {
  state: EngineState = "connecting";
  info: EngineInfo | null = null;
  /** Why the engine is down or refused (or, while connecting, why it is not up yet). */
  reason: string | null = null;
  /** While up: how it is routed. */
  routing: Routing | null = null;
  /** Whether the KV-event thread holds entries for it (they must be dropped when it leaves). */
  followed = false;
  /**
   * While up: set when its requests stopped moving, until they move again (`probing`: let back for one
   * request, to see).
   */
  stall: { reason: string; probing: boolean } | null = null;

  constructor(
    /** The engine's number in the scheduler and the prefix index. */
    readonly id: number,
    readonly spec: EngineSpec,
    readonly engine: Engine,
  ) {}

  get name(): string {
    return this.spec.name;
  }

  /** Taking new requests: up, and not stalled (or stalled and probing). */
  get schedulable(): boolean {
    return this.state === "up" && (this.stall === null || this.stall.probing);
  }

  /** What /health shows of the engine. */
  health(): EngineHealth {
    const stalled = this.state === "up" && this.stall !== null;
    const reason = stalled ? this.stall!.reason : this.reason;
    return { engine: this.name, state: stalled ? "stalled" : this.state, ...(reason ? { reason } : {}), ...(this.routing ? { routing: this.routing } : {}) };
  }
}

export interface EngineHealth {
  engine: string;
  /** `stalled`: up, but its requests stopped moving. */
  state: EngineState | "stalled";
  reason?: string;
  routing?: Routing;
}

export interface FleetOptions {
  /** The block size the router hashes with; null: take the first engine's (16 for HTTP engines). */
  blockSize: number | null;
  /** How often HTTP engines' /metrics are read for their load; 0: never. */
  metricsIntervalMs: number;
  /** How long an engine may leave a waiting request without an event before it counts as stalled; 0: never. */
  stallMs: number;
  /**
   * Approximate mode for engines whose KV events are not followed: the capacity in blocks assumed for an
   * engine that does not announce its own; null turns the mode off (such engines are routed by load alone).
   */
  approxBlocks: number | null;
  scheduler: Scheduler;
  kv: KvRegistry;
  log: Logger;
}

export class Fleet {
  readonly engines: EngineHandle[];
  #blockSize: number | null;
  #model: string | null = null;
  #closing = false;
  readonly #waiters = new Set<() => void>();
  readonly #watch: StallWatch;

  constructor(
    specs: EngineSpec[],
    private readonly options: FleetOptions,
  ) {
    this.#blockSize = options.blockSize;
    this.#watch = new StallWatch({ stallMs: options.stallMs, onChange: (id, change) => this.#stallChange(id, change) });
    const names = new Set<string>();
    this.engines = specs.map((spec, id) => {
      if (names.has(spec.name)) throw new Error(`two engines are named ${JSON.stringify(spec.name)}: give each a unique name=`);
      names.add(spec.name);
      return new EngineHandle(id, spec, new WatchedEngine(this.#createEngine(spec), id, this.#watch));
    });
  }

  get blockSize(): number | null {
    return this.#blockSize;
  }

  get model(): string | null {
    return this.#model;
  }

  get up(): EngineHandle[] {
    return this.engines.filter((e) => e.state === "up");
  }

  /** Whether any engine takes new requests (up and not stalled). */
  get ready(): boolean {
    return this.engines.some((e) => e.schedulable);
  }

  /**
   * The smallest context length among engines that are up (they serve one model, so normally all equal);
   * null when none is up. Asked on every request, so it builds no array.
   */
  get maxModelLen(): number | null {
    let min: number | null = null;
    for (const e of this.engines) {
      if (e.state === "up" && (min === null || e.info!.maxModelLen < min)) min = e.info!.maxModelLen;
    }
    return min;
  }

  /** Starts every engine; engines that are not up yet keep being retried in the background. */
  start(): void {
    this.#watch.start();
    for (const handle of this.engines) {
      handle.engine.start({
        up: (info) => void this.#up(handle, info),
        down: (reason) => void this.#down(handle, reason),
        refused: (reason) => this.refuse(handle.id, reason),
        load: (report) => {
          if (handle.state === "up" || report === null) this.options.scheduler.setReport(handle.id, report);
        },
      });
    }
  }

  /** Resolves true once at least one engine is up, or false after `timeoutMs`. */
  waitForEngine(timeoutMs: number): Promise<boolean> {
    if (this.up.length > 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
        resolve(ok);
      };
      const wake = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#waiters.add(wake);
    });
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#watch.stop();
    await Promise.all(this.engines.map((e) => e.engine.close()));
  }

  #createEngine(spec: EngineSpec): Engine {
    const log = this.options.log;
    const common = {
      name: spec.name,
      kvEndpoint: spec.noKvEvents ? null : spec.kvEndpoint,
      replayEndpoint: spec.replayEndpoint,
      log: (level: "debug" | "info" | "warn" | "error", message: string) => log[level]({ engine: spec.name }, message),
    };
    if (spec.kind === "http") {
      return new HttpEngine(spec.url, { ...common, blockSize: this.options.blockSize ?? HTTP_DEFAULT_BLOCK_SIZE, metricsIntervalMs: this.options.metricsIntervalMs });
    }
    return new MsgpackEngine(spec.url, { ...common, noKvEvents: spec.noKvEvents, expectedBlockSize: this.options.blockSize });
  }

  /**
   * Takes an engine out for good (a handshake it failed, events it publishes at another block size): it
   * leaves scheduling, its index entries are dropped, and it stops trying.
   */
  refuse(id: number, reason: string): void {
    const handle = this.engines[id];
    if (!handle || handle.state === "refused" || this.#closing) return;
    handle.state = "refused";
    handle.reason = reason;
    handle.routing = null;
    this.#clearStall(handle);
    this.options.scheduler.setAvailable(handle.id, false);
    this.options.scheduler.setReport(handle.id, null);
    this.options.log.error({ engine: handle.name, reason }, "engine refused");
    void handle.engine.close();
    void this.#unfollow(handle);
  }

  async #up(handle: EngineHandle, info: EngineInfo): Promise<void> {
    const { log, scheduler, kv } = this.options;
    this.#blockSize ??= info.blockSize;
    this.#model ??= info.model;
    if (info.blockSize !== this.#blockSize) {
      return this.refuse(handle.id, `block size ${info.blockSize} differs from the router's ${this.#blockSize}`);
    }
    if (info.model !== this.#model) {
      return this.refuse(handle.id, `serves model ${JSON.stringify(info.model)}, but the fleet serves ${JSON.stringify(this.#model)}`);
    }
    handle.info = info;
    handle.reason = null;
    this.#clearStall(handle);
    const events = info.kvEvents;
    handle.routing = "load";
    if (events) {
      try {
        await kv.addEngine({
          id: handle.id,
          name: handle.name,
          model: info.model,
          blockSize: info.blockSize,
          endpoint: events.endpoint,
          dataParallelSize: info.ranks.size,
          topic: events.topic,
          ...(events.replayEndpoint ? { replayEndpoint: events.replayEndpoint } : {}),
        });
        handle.followed = true;
        handle.routing = "cache";
      } catch (err) {
        // A bad KV-event endpoint costs the engine its cache-aware routing, not its place in the fleet.
        log.error({ engine: handle.name, endpoint: events.endpoint, reason: (err as Error).message }, "cannot follow the engine's KV events: it is routed by load alone");
      }
    }
    const approxBlocks = this.options.approxBlocks;
    if (handle.routing === "load" && approxBlocks !== null) {
      try {
        await kv.addApproxEngine(handle.id, info.numBlocks ?? approxBlocks);
        handle.followed = true;
        handle.routing = "approx";
      } catch (err) {
        log.error({ engine: handle.name, reason: (err as Error).message }, "cannot predict the engine's cache: it is routed by load alone");
      }
    }
    if (handle.routing !== "cache" && !events) log.warn({ engine: handle.name }, `engine publishes no KV events${spec(handle)}: it is routed ${handle.routing === "approx" ? "by the router's predictions of its cache (approximate mode)" : "by load alone"}`);
    if (handle.state === "refused") return void this.#unfollow(handle); // refused while its events were being subscribed to
    handle.state = "up";
    scheduler.setAvailable(handle.id, true);
    log.info(
      { engine: handle.name, engineSoftware: info.software, model: info.model, blockSize: info.blockSize, kvEvents: events?.endpoint ?? null, routing: handle.routing, numBlocks: info.numBlocks },
      handle.routing === "cache" ? "engine up" : handle.routing === "approx" ? "engine up, routed in approximate mode" : "engine up, routed by load alone",
    );
    for (const wake of [...this.#waiters]) wake();
  }

  async #down(handle: EngineHandle, reason: string): Promise<void> {
    if (handle.state === "connecting" || handle.state === "down") {
      // Not up yet, or still down: only the reason is news (shown in /health).
      if (handle.reason !== reason) this.options.log.debug({ engine: handle.name, reason }, "engine not up");
      handle.reason = reason;
      return;
    }
    if (handle.state !== "up") return;
    handle.state = "down";
    handle.reason = reason;
    handle.routing = null;
    this.#clearStall(handle);
    this.options.scheduler.setAvailable(handle.id, false);
    this.options.scheduler.setReport(handle.id, null);
    this.options.log.warn({ engine: handle.name, reason }, "engine down");
    await this.#unfollow(handle);
  }

  /** What the stall watch saw of an engine that is up: it leaves or rejoins scheduling. */
  #stallChange(id: number, change: StallChange): void {
    const handle = this.engines[id];
    if (!handle || handle.state !== "up" || this.#closing) return;
    const { log, scheduler } = this.options;
    if (change.kind === "stalled") {
      if (handle.stall === null) log.warn({ engine: handle.name, reason: change.reason }, "engine stalled: no new requests go to it until it moves again");
      handle.stall = { reason: change.reason, probing: false };
    } else if (change.kind === "probing") {
      log.info({ engine: handle.name }, "stalled engine has no request left: the next one goes to it, to see whether it moves");
      handle.stall = { reason: handle.stall?.reason ?? "stalled", probing: true };
    } else {
      if (handle.stall !== null) log.info({ engine: handle.name }, "engine moving again: it takes new requests");
      handle.stall = null;
    }
    scheduler.setAvailable(id, handle.schedulable);
  }

  /** A stall ends with the engine's connection: it leaves, or comes back fresh. */
  #clearStall(handle: EngineHandle): void {
    handle.stall = null;
    this.#watch.reset(handle.id);
  }

  /** Engines in approximate mode, by name (the names replicas share). */
  approxEngine(name: string): EngineHandle | null {
    const handle = this.engines.find((e) => e.name === name);
    return handle !== undefined && handle.state === "up" && handle.routing === "approx" ? handle : null;
  }

  /** Stops following the engine's KV events and drops its index entries. */
  async #unfollow(handle: EngineHandle): Promise<void> {
    if (!handle.followed) return;
    handle.followed = false;
    await this.options.kv.removeEngine(handle.id).catch((err: Error) => {
      this.options.log.error({ engine: handle.name, reason: err.message }, "cannot drop the engine's index entries");
    });
  }
}

function spec(handle: EngineHandle): string {
  return handle.spec.noKvEvents ? " (kv=none)" : "";
}
