// The simulated engine running on the wall clock, whatever it is served over: the engine core stepping at
// its modelled pace (scaled by the speed-up factor) and publishing its KV events on ZMQ as vLLM does. A front
// end (the msgpack engine protocol in server.ts, vLLM's OpenAI HTTP API in http-server.ts) submits requests
// with a route of its own and receives each step's outputs with their routes.
//
// Invariant: a request's route is delivered with every output of that request until its finishing output,
// and never after it finished or was cancelled.
import { setImmediate as yieldToIo, setTimeout as sleep } from "node:timers/promises";
import type { GenerateRequest, KvEventsLayout, LogFn } from "../engine-protocol/index.js";
import { EngineCore, type CoreOutput, type EngineCoreOptions } from "./core.js";
import type { SimKvEvent } from "./kv-events.js";
import { KvEventPublisher, type ReplayFormat } from "./kv-publisher.js";

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
  readonly #options: RuntimeOptions;
  readonly #deliver: (outputs: RoutedOutput<R>[]) => void;
  readonly #routes = new Map<number, R>();
  #publisher: KvEventPublisher | null = null;
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
    runtime.#loop = runtime.#run();
    return runtime;
  }

  /** Requests in the engine (waiting or running). */
  get inFlight(): number {
    return this.#routes.size;
  }

  /** Queues a request; returns its id in the core. Throws the core's SimRequestError when it can never run. */
  submit(request: GenerateRequest, route: R): number {
    const id = this.#nextId++;
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
    this.core.abort(id);
  }

  /** Stops stepping and closes the KV-event sockets; requests in flight are dropped without outputs. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    this.#wake?.();
    await this.#loop;
    await this.#publisher?.close();
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
      const { durationMs, outputs } = this.core.step();
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

  #route(outputs: readonly CoreOutput[]): void {
    const routed: RoutedOutput<R>[] = [];
    for (const output of outputs) {
      const route = this.#routes.get(output.id);
      if (route === undefined) continue; // cancelled while the step ran
      if (output.finish) this.#routes.delete(output.id);
      routed.push({ route, output });
    }
    if (routed.length > 0) this.#deliver(routed);
  }
}
