import type { Logger } from "pino";
import type { KvEventWriter } from "../kv-index/kv-events/index.js";
import { EngineClient, type Welcome } from "../../engine-protocol/index.js";
import type { Scheduler } from "../schedule/index.js";
import type { EngineSpec } from "./engine-spec.js";

/** What the fleet tells the KV-event side about engines joining and leaving. */
export type KvRegistry = Pick<KvEventWriter, "addEngine" | "removeEngine">;

export type EngineState = "connecting" | "up" | "down" | "refused";

export class EngineHandle {
  state: EngineState = "connecting";
  info: Welcome | null = null;
  /** Why the engine is down or refused. */
  reason: string | null = null;
  /** Learned from its answers: whether it reports cached_tokens (null until it has answered once). */
  reportsCachedTokens: boolean | null = null;

  constructor(
    readonly id: number,
    readonly spec: EngineSpec,
    readonly client: EngineClient,
  ) {}

  get name(): string {
    return this.spec.name;
  }
}

export interface FleetOptions {
  /** The block size the router hashes with; null: take the first engine's. */
  blockSize: number | null;
  scheduler: Scheduler;
  kv: KvRegistry;
  log: Logger;
}

/**
 * The engines behind the router: connects to each, checks that it serves the same model at the same block
 * size, and keeps the scheduler and the KV-event side in step with who is up. An engine that drops is
 * taken out of scheduling and its index entries are dropped (a restarted engine has an empty cache);
 * its client reconnects with backoff.
 */
export class Fleet {
  readonly engines: EngineHandle[];
  #blockSize: number | null;
  #model: string | null = null;
  #closing = false;
  readonly #waiters = new Set<() => void>();

  constructor(
    specs: EngineSpec[],
    private readonly options: FleetOptions,
  ) {
    this.#blockSize = options.blockSize;
    const names = new Set<string>();
    this.engines = specs.map((spec, id) => {
      if (names.has(spec.name)) throw new Error(`two engines are named ${JSON.stringify(spec.name)}: give each a unique name=`);
      names.add(spec.name);
      const client = new EngineClient(spec.url, {
        expectedBlockSize: options.blockSize ?? undefined,
        retryInitialConnect: true,
        log: (level, message) => options.log[level === "debug" ? "debug" : level === "info" ? "info" : "warn"]({ engine: spec.name }, message),
      });
      const handle = new EngineHandle(id, spec, client);
      client.on("connect", (info) => void this.#connected(handle, info));
      client.on("disconnect", (d) => void this.#disconnected(handle, d.reason));
      return handle;
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

  /** The smallest context length among engines that are up (they serve one model, so normally all equal). */
  get maxModelLen(): number | null {
    const lens = this.up.map((e) => e.info!.maxModelLen);
    return lens.length ? Math.min(...lens) : null;
  }

  /** Starts connecting every engine; engines that are not up yet keep being retried in the background. */
  start(): void {
    for (const engine of this.engines) {
      engine.client.connect().catch((err: Error) => this.#refuse(engine, err.message));
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
    await Promise.all(this.engines.map((e) => e.client.close()));
  }

  async #connected(engine: EngineHandle, info: Welcome): Promise<void> {
    const { log, scheduler, kv } = this.options;
    this.#blockSize ??= info.blockSize;
    this.#model ??= info.model;
    if (info.blockSize !== this.#blockSize) {
      return this.#refuse(engine, `block size ${info.blockSize} differs from the router's ${this.#blockSize}`);
    }
    if (info.model !== this.#model) {
      return this.#refuse(engine, `serves model ${JSON.stringify(info.model)}, but the fleet serves ${JSON.stringify(this.#model)}`);
    }
    engine.info = info;
    engine.reason = null;
    const endpoint = engine.spec.kvEndpoint ?? info.kvEvents?.endpoint ?? null;
    if (endpoint) {
      const replayEndpoint = engine.spec.replayEndpoint ?? info.kvEvents?.replayEndpoint ?? null;
      try {
        await kv.addEngine({
          id: engine.id,
          name: engine.name,
          model: info.model,
          blockSize: info.blockSize,
          endpoint,
          dataParallelSize: info.kvEvents?.dataParallelSize ?? 1,
          topic: info.kvEvents?.topic ?? "",
          ...(replayEndpoint ? { replayEndpoint } : {}),
        });
      } catch (err) {
        // A bad KV-event endpoint costs the engine its cache-aware routing, not its place in the fleet.
        log.error({ engine: engine.name, endpoint, reason: (err as Error).message }, "cannot follow the engine's KV events: it is routed by load alone");
      }
    } else {
      log.warn({ engine: engine.name }, "engine publishes no KV events: it is routed by load alone");
    }
    engine.state = "up";
    scheduler.setAvailable(engine.id, true);
    log.info({ engine: engine.name, model: info.model, blockSize: info.blockSize, kvEvents: endpoint, numBlocks: info.numBlocks }, "engine up");
    for (const wake of [...this.#waiters]) wake();
  }

  async #disconnected(engine: EngineHandle, reason: string): Promise<void> {
    if (engine.state !== "up") return;
    engine.state = "down";
    engine.reason = reason;
    this.options.scheduler.setAvailable(engine.id, false);
    this.options.log.warn({ engine: engine.name, reason }, "engine down");
    await this.options.kv.removeEngine(engine.id).catch((err: Error) => {
      this.options.log.error({ engine: engine.name, reason: err.message }, "cannot drop the engine's index entries");
    });
  }

  #refuse(engine: EngineHandle, reason: string): void {
    if (engine.state === "refused" || this.#closing) return;
    engine.state = "refused";
    engine.reason = reason;
    this.options.scheduler.setAvailable(engine.id, false);
    this.options.log.error({ engine: engine.name, reason }, "engine refused");
    void engine.client.close();
  }
}
