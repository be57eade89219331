// The simulated engine running on the wall clock, whatever it is served over: the engine core stepping at
// its modelled pace (scaled by the speed-up factor) and publishing its KV events on ZMQ as vLLM does. A front
// end (the msgpack engine protocol in server.ts, vLLM's OpenAI HTTP API in http-server.ts) submits requests
// with a route of its own and receives each step's outputs with their routes.
//
// Disaggregated serving on the wall clock: the runtime serves its held blocks on a KV transfer channel
// (kv-transfer.ts), adds the channel's address to the kv_transfer_params a prefill request answers with,
// frees held blocks nobody pulled within the hold timeout, and fetches the blocks of its own decode
// requests, each pull taking the modelled transfer time (kv-link.ts) divided by the speed-up.
//
// Invariant: a request's route is delivered with every output of that request until its finishing output,
// and never after it finished or was cancelled.
import { setImmediate as yieldToIo, setTimeout as sleep } from "node:timers/promises";
import type { GenerateRequest, KvEventsLayout, LogFn } from "../engine-protocol/index.js";
import { EngineCore, type CoreOutput, type EngineCoreOptions, type KvPull } from "./core.js";
import type { SimKvEvent } from "./kv-events.js";
import { DEFAULT_KV_TRANSFER_GBPS, kvBytesPerToken, QWEN3_0_6B, transferMs } from "./kv-link.js";
import { KvEventPublisher, type ReplayFormat } from "./kv-publisher.js";
import type { RemotePrefill } from "./kv-transfer-params.js";
import { KvTransferServer, pullBlocks, releaseBlocks } from "./kv-transfer.js";
import { IdMap } from "../util/id-map.js";

export interface RuntimeOptions extends Omit<EngineCoreOptions, "kvEventSink"> {
  /** ZMQ PUB endpoint to bind (default tcp://127.0.0.1:*, an ephemeral port); null: no KV events. */
  kvEventsEndpoint?: string | null;
  /** ZMQ ROUTER endpoint for replays (default tcp://127.0.0.1:*); null: no replay. */
  replayEndpoint?: string | null;
  /** ZMQ topic (default "", vLLM's default). */
  kvEventsTopic?: string;
  /** Payload layout (default "array"). */
  kvEventsLayout?: KvEventsLayout;
  /** Replay reply shape (default "topic", newer vLLM). */
  replayFormat?: ReplayFormat;
  /** Batches kept for replay (default 10000, vLLM's default). */
  replayBufferSteps?: number;
  /** Modelled time runs this many times faster than the wall clock; 0 (default): as fast as it can. */
  speedup?: number;
  /** Extra sink for the structured KV events (e.g. to check them in tests). */
  kvEventSink?: (events: readonly SimKvEvent[]) => void;
  log?: LogFn;
  /** Address the KV transfer channel listens on (default 127.0.0.1); null: no channel, held blocks cannot be pulled. */
  kvTransferHost?: string | null;
  /** Its port (default 0: an ephemeral one). */
  kvTransferPort?: number;
  /** The link decode requests pull blocks over, in Gb/s (default 400). */
  kvTransferGbps?: number;
  /** KV bytes per token, for a block's size on the link (default: Qwen3-0.6B's, 112 KiB). */
  kvBytesPerToken?: number;
  /** Held blocks no decode engine pulled within this long (wall clock, ms) are freed (default 30000). */
  kvHoldTimeoutMs?: number;
}

export interface RoutedOutput<R> {
  route: R;
  output: CoreOutput;
}

export class EngineRuntime<R> {
  readonly core: EngineCore;
  /** Endpoints as bound (ephemeral ports resolved); null when off. */
  kvEventsEndpoint: string | null = null;
  replayEndpoint: string | null = null;
  readonly topic: string;
  readonly layout: KvEventsLayout;
  kvEventBatches = 0;
  /** Held blocks freed because no decode engine pulled them in time. */
  kvHoldsExpired = 0;
  readonly #options: RuntimeOptions;
  readonly #deliver: (outputs: RoutedOutput<R>[]) => void;
  readonly #routes = new IdMap<R>();
  #publisher: KvEventPublisher | null = null;
  #transfer: KvTransferServer | null = null;
  /** Held blocks' expiry timers, by request id. */
  readonly #holds = new Map<number, NodeJS.Timeout>();
  /** Pulls under way, by decode request id. */
  readonly #pulls = new Map<number, AbortController>();
  #nextId = 1;
  #closing = false;
  #wake: (() => void) | null = null;
  #loop: Promise<void> | null = null;
  #lastStepEnd = 0;

  private constructor(options: RuntimeOptions, log: LogFn, deliver: (outputs: RoutedOutput<R>[]) => void) {
    const speedup = options.speedup ?? 0;
    if (!(Number.isFinite(speedup) && speedup >= 0)) throw new RangeError(`speedup must be 0 or a positive number, not ${speedup}`);
    this.#options = options;
    this.#deliver = deliver;
    this.topic = options.kvEventsTopic ?? "";
    this.layout = options.kvEventsLayout ?? "array";
    this.core = new EngineCore({ ...options, kvEventSink: (events) => this.#onKvEvents(events), log });
    const gbps = options.kvTransferGbps ?? DEFAULT_KV_TRANSFER_GBPS;
    transferMs(1, 1, 1, gbps); // checks the bandwidth now rather than at the first pull
    const hold = options.kvHoldTimeoutMs ?? 30_000;
    if (!(hold >= 0 && Number.isFinite(hold))) throw new RangeError(`kvHoldTimeoutMs must be a number of at least 0, got ${hold}`);
  }

  /** Where this engine's KV transfer channel listens; null when it has none. */
  get kvTransfer(): { host: string; port: number } | null {
    return this.#transfer && { host: this.#transfer.host, port: this.#transfer.port };
  }

  /** Binds the KV-event sockets and starts stepping. `deliver` gets each step's outputs with their routes. */
  static async start<R>(options: RuntimeOptions, log: LogFn, deliver: (outputs: RoutedOutput<R>[]) => void): Promise<EngineRuntime<R>> {
    const runtime = new EngineRuntime<R>(options, log, deliver);
    const kvEndpoint = options.kvEventsEndpoint === undefined ? "tcp://127.0.0.1:*" : options.kvEventsEndpoint;
    if (kvEndpoint !== null) {
      runtime.#publisher = await KvEventPublisher.start({
        endpoint: kvEndpoint,
        replayEndpoint: options.replayEndpoint === undefined ? "tcp://127.0.0.1:*" : options.replayEndpoint,
        topic: runtime.topic,
        layout: runtime.layout,
        replayFormat: options.replayFormat ?? "topic",
        bufferSteps: options.replayBufferSteps ?? 10_000,
        hwm: 100_000,
        dataParallelRank: 0,
        log,
      });
      runtime.kvEventsEndpoint = runtime.#publisher.endpoint;
      runtime.replayEndpoint = runtime.#publisher.replayEndpoint;
    }
    const transferHost = options.kvTransferHost === undefined ? "127.0.0.1" : options.kvTransferHost;
    if (transferHost !== null) {
      try {
        runtime.#transfer = await KvTransferServer.start(transferHost, options.kvTransferPort ?? 0, runtime.#holder(), log);
      } catch (error) {
        await runtime.#publisher?.close();
        throw new Error(`cannot listen for KV transfers on ${transferHost}:${options.kvTransferPort ?? 0}: ${(error as Error).message}`);
      }
    }
    runtime.#loop = runtime.#run();
    return runtime;
  }

  /** Requests in the engine (waiting or running). */
  get inFlight(): number {
    return this.#routes.size;
  }

  /** Queues a request; returns its id in the core. Throws the core's SimRequestError when it can never run. */
  submit(request: GenerateRequest, route: R): number {
    const id = this.#nextId;
    // Ids stay within 1 to 2^32 - 1, IdMap's range, however long the engine runs.
    this.#nextId = id === 0xffffffff ? 1 : id + 1;
    // Object.assign, not `{ ...request, id }`: V8 (Node 20) builds a spread followed by more properties on a
    // slow path, microseconds per request.
    this.core.add(Object.assign({}, request, { id }));
    this.#routes.set(id, route);
    this.#wake?.();
    return id;
  }

  /** Stops a request (its client left or aborted it); nothing more is delivered for it. */
  cancel(id: number): void {
    if (!this.#routes.delete(id)) return;
    // A decode request given up on before its pull tells the prefill engine to free the blocks, as vLLM's does.
    const unpulled = this.core.unpulledFrom(id);
    this.core.abort(id);
    this.#wake?.(); // its blocks are free: a request waiting for room may fit now
    this.#pulls.get(id)?.abort();
    if (unpulled?.host != null && unpulled.port != null) void releaseBlocks(unpulled.host, unpulled.port, unpulled.requestId);
  }

  /** Stops stepping and closes the KV-event sockets; requests in flight are dropped without outputs. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    this.#wake?.();
    await this.#loop;
    for (const pull of this.#pulls.values()) pull.abort();
    for (const timer of this.#holds.values()) clearTimeout(timer);
    await this.#transfer?.close();
    await this.#publisher?.close();
  }

  /** The held blocks the transfer channel serves, by the request ids this engine answered with. */
  #holder() {
    const idOf = (requestId: string) => (/^\d+$/.test(requestId) ? Number(requestId) : -1);
    return {
      heldBlocks: (requestId: string) => this.core.heldBlocks(idOf(requestId)),
      release: (requestId: string, why: "pulled" | "released") => this.#release(idOf(requestId), why),
    };
  }

  #release(id: number, why: "pulled" | "released" | "expired"): boolean {
    const timer = this.#holds.get(id);
    if (timer) clearTimeout(timer);
    this.#holds.delete(id);
    const released = this.core.releaseHeld(id);
    if (released) this.#wake?.();
    if (released && why === "expired") {
      this.kvHoldsExpired++;
      this.#options.log?.("warn", `request ${id}: no decode engine pulled its KV blocks within ${this.#options.kvHoldTimeoutMs ?? 30_000} ms; freed`);
    }
    return released;
  }

  /** Starts fetching a decode request's blocks; the core hears how it went. */
  #pull(pull: KvPull): void {
    const { host, port, requestId } = pull.from;
    if (host === null || port === null) {
      this.#received(pull.id, false, `its kv_transfer_params name no transfer channel (remote_host, remote_port)`);
      return;
    }
    const speedup = this.#options.speedup ?? 0;
    const o = this.#options;
    const ms = speedup > 0 ? transferMs(pull.blocks, this.core.options.blockSize, o.kvBytesPerToken ?? kvBytesPerToken(QWEN3_0_6B), o.kvTransferGbps ?? DEFAULT_KV_TRANSFER_GBPS) / speedup : 0;
    const controller = new AbortController();
    this.#pulls.set(pull.id, controller);
    void pullBlocks(host, port, requestId, pull.blocks, ms, controller.signal).then((result) => {
      this.#pulls.delete(pull.id);
      if (controller.signal.aborted) return;
      this.#received(pull.id, result.ok, result.ok ? "" : result.reason);
    });
  }

  #received(id: number, ok: boolean, reason: string): void {
    if (!ok) this.#options.log?.("warn", `request ${id}: its KV blocks could not be pulled (${reason}); it computes its prompt here`);
    if (this.core.finishReceive(id, ok)) this.#wake?.();
  }

  #onKvEvents(events: readonly SimKvEvent[]): void {
    this.#options.kvEventSink?.(events);
    if (this.#publisher) {
      this.#publisher.publish(events);
      this.kvEventBatches++;
    }
  }

  async #run(): Promise<void> {
    const speedup = this.#options.speedup ?? 0;
    // True until a step with work has run since the engine was last idle.
    let idle = true;
    while (!this.#closing) {
      if (!this.core.hasWork) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = null;
        idle = true;
        continue;
      }
      const { durationMs, outputs, pulls } = this.core.step();
      for (const pull of pulls) this.#pull(pull);
      if (durationMs === 0 && outputs.length === 0 && pulls.length === 0) {
        // Requests wait that cannot be scheduled (their blocks are held for decode engines): sleep until
        // something changes rather than spin.
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = null;
        idle = true;
        continue;
      }
      if (speedup > 0 && durationMs > 0) {
        // A step that follows another is due when that one was due plus its own modelled time, even if
        // the timer that ended the last one fired late: lateness is made up rather than added to every
        // step. After an idle spell the clock starts again from now.
        const now = performance.now();
        const end = (idle ? now : this.#lastStepEnd) + durationMs / speedup;
        this.#lastStepEnd = end;
        idle = false;
        if (end - now >= 1) await sleep(end - now);
        else await yieldToIo();
      } else {
        idle = idle || durationMs === 0;
        await yieldToIo();
      }
      if (this.#closing) return;
      this.#route(outputs);
    }
  }

  /** A finished prefill request's blocks are held: they are freed if nobody pulls them in time. */
  #hold(id: number): void {
    const timer = setTimeout(() => this.#release(id, "expired"), this.#options.kvHoldTimeoutMs ?? 30_000);
    timer.unref();
    this.#holds.set(id, timer);
  }

  #route(outputs: readonly CoreOutput[]): void {
    const routed: RoutedOutput<R>[] = [];
    for (const output of outputs) {
      const held = output.finish?.kvTransferParams;
      if (held) this.#hold(output.id);
      const route = this.#routes.get(output.id);
      if (route === undefined) continue; // cancelled while the step ran
      if (output.finish) this.#routes.delete(output.id);
      const transfer = this.#transfer;
      routed.push({ route, output: held && transfer ? { ...output, finish: { ...output.finish!, kvTransferParams: { ...held, remote_host: transfer.host, remote_port: transfer.port } } } : output });
    }
    if (routed.length > 0) this.#deliver(routed);
  }
}
