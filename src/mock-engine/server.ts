// The simulator as a running engine: the engine core on the wall clock (scaled by the speed-up factor)
// behind the engine protocol on TCP, publishing its KV events on ZMQ like vLLM.
import { createServer, type Server, type Socket } from "node:net";
import { setImmediate as yieldToIo, setTimeout as sleep } from "node:timers/promises";
import { DEFAULT_MAX_FRAME_BYTES } from "../engine-protocol/frame.js";
import { stderrLog, type LogFn } from "../engine-protocol/log.js";
import type { GenerateCommand } from "../engine-protocol/parse.js";
import { PROTOCOL_VERSION, type Welcome, type KvEventsLayout, type KvTransferParams } from "../engine-protocol/types.js";
import { ErrorCode } from "../engine-protocol/wire.js";
import { EngineCore, SimRequestError, type CoreOutput, type EngineCoreMetrics, type EngineCoreOptions } from "./core.js";
import { EngineSideConnection, type ConnectionCounters } from "../engine-protocol/index.js";
import type { SimKvEvent } from "./kv-events.js";
import { KvEventPublisher, type ReplayFormat } from "./kv-publisher.js";

export const SIMULATOR_VERSION = "kvroute-sim 0.1.0";

export interface SimulatorOptions extends Omit<EngineCoreOptions, "kvEventSink"> {
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** TCP port for the engine protocol (default 0: an ephemeral port). */
  port?: number;
  /** Served model name (default Qwen/Qwen3-0.6B). */
  model?: string;
  /** Name in the handshake (default kvroute-sim@HOST:PORT). */
  engineId?: string;
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
  /** False: answer cached_tokens nil in every finish, as an engine that cannot count them (default true). */
  reportCachedTokens?: boolean;
  maxFrameBytes?: number;
  /** Extra sink for the structured KV events (e.g. to check them in tests). */
  kvEventSink?: (events: readonly SimKvEvent[]) => void;
  log?: LogFn;
}

export interface SimulatorMetrics extends EngineCoreMetrics, ConnectionCounters {
  connections: number;
  kvEventBatches: number;
}

export interface SimulatorHandle {
  readonly host: string;
  readonly port: number;
  /** `tcp://HOST:PORT`, what EngineClient takes. */
  readonly url: string;
  readonly kvEventsEndpoint: string | null;
  readonly replayEndpoint: string | null;
  readonly info: Welcome;
  /** The engine core, for inspection (its block pool and metrics). */
  readonly core: EngineCore;
  metrics(): SimulatorMetrics;
  /** Clears the prefix cache and publishes AllBlocksCleared; false while requests hold blocks. */
  resetPrefixCache(): boolean;
  close(): Promise<void>;
}

interface Route {
  connection: EngineSideConnection;
  wireId: number;
  /** Echoed in the finish as they came: the simulator has no KV connector of its own yet. */
  kvTransferParams?: KvTransferParams;
}

class Simulator implements SimulatorHandle {
  host = "";
  port = 0;
  url = "";
  kvEventsEndpoint: string | null = null;
  replayEndpoint: string | null = null;
  info!: Welcome;
  readonly core: EngineCore;
  private server: Server | null = null;
  private publisher: KvEventPublisher | null = null;
  private readonly connections = new Set<EngineSideConnection>();
  private readonly sockets = new Set<Socket>();
  private readonly routes = new Map<number, Route>();
  private nextCoreId = 1;
  private closing = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private lastStepEnd = 0;
  private kvEventBatches = 0;
  private readonly log: LogFn;
  readonly counters: ConnectionCounters = { framesIn: 0, framesOut: 0, badFrames: 0, badMessages: 0 };

  constructor(private readonly options: SimulatorOptions) {
    this.log = options.log ?? stderrLog("kvroute sim");
    const speedup = options.speedup ?? 0;
    if (!(Number.isFinite(speedup) && speedup >= 0)) throw new RangeError(`speedup must be 0 or a positive number, not ${speedup}`);
    this.core = new EngineCore({ ...options, kvEventSink: (events) => this.onKvEvents(events), log: this.log });
  }

  async start(): Promise<void> {
    const o = this.options;
    const kvEndpoint = o.kvEventsEndpoint === undefined ? "tcp://127.0.0.1:*" : o.kvEventsEndpoint;
    const replayEndpoint = o.replayEndpoint === undefined ? "tcp://127.0.0.1:*" : o.replayEndpoint;
    const layout = o.kvEventsLayout ?? "array";
    const topic = o.kvEventsTopic ?? "";
    if (kvEndpoint !== null) {
      this.publisher = await KvEventPublisher.start({
        endpoint: kvEndpoint,
        replayEndpoint,
        topic,
        layout,
        replayFormat: o.replayFormat ?? "topic",
        bufferSteps: o.replayBufferSteps ?? 10_000,
        hwm: 100_000,
        dataParallelRank: 0,
        log: this.log,
      });
      this.kvEventsEndpoint = this.publisher.endpoint;
      this.replayEndpoint = this.publisher.replayEndpoint;
    }
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(o.port ?? 0, o.host ?? "127.0.0.1", () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (error) {
      await this.publisher?.close();
      throw new Error(`cannot listen on ${o.host ?? "127.0.0.1"}:${o.port ?? 0}: ${(error as Error).message}`);
    }
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("the simulator's server has no TCP address");
    this.host = address.address;
    this.port = address.port;
    const shownHost = this.host.includes(":") ? `[${this.host}]` : this.host;
    this.url = `tcp://${shownHost}:${this.port}`;
    const c = this.core.options;
    this.info = {
      protocolVersion: PROTOCOL_VERSION,
      engineId: o.engineId ?? `kvroute-sim@${shownHost}:${this.port}`,
      engine: SIMULATOR_VERSION,
      model: o.model ?? "Qwen/Qwen3-0.6B",
      blockSize: c.blockSize,
      numBlocks: c.numBlocks,
      maxModelLen: c.maxModelLen,
      maxFrameBytes: o.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      // One engine core: a single data-parallel rank, 0, which its KV events also carry.
      dataParallelStartRank: 0,
      dataParallelLocalSize: 1,
      kvEvents:
        this.kvEventsEndpoint === null
          ? null
          : { endpoint: this.kvEventsEndpoint, topic, dataParallelSize: 1, replayEndpoint: this.replayEndpoint, layout, medium: "GPU" },
    };
    this.loop = this.run();
  }

  metrics(): SimulatorMetrics {
    return { ...this.core.metrics(), ...this.counters, connections: this.connections.size, kvEventBatches: this.kvEventBatches };
  }

  resetPrefixCache(): boolean {
    return this.core.resetPrefixCache();
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.wake?.();
    for (const connection of [...this.connections]) connection.close("the simulator is shutting down");
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await this.loop;
    await this.publisher?.close();
  }

  private accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    const connection = new EngineSideConnection(
      socket,
      {
        info: this.info,
        log: this.log,
        counters: this.counters,
        reportCachedTokens: this.options.reportCachedTokens ?? true,
        submit: (conn, command) => this.submit(conn, command),
        cancel: (coreId) => this.cancel(coreId),
      },
      (conn) => this.connections.delete(conn),
    );
    this.connections.add(connection);
  }

  private submit(connection: EngineSideConnection, command: GenerateCommand): { code: string; message: string } | null {
    const coreId = this.nextCoreId++;
    try {
      this.core.add({ ...command.request, id: coreId });
    } catch (error) {
      if (error instanceof SimRequestError) return { code: error.code, message: error.message };
      this.log("error", `request ${command.id} failed to start: ${(error as Error).stack ?? String(error)}`);
      return { code: ErrorCode.engineError, message: `the simulator failed to start the request: ${(error as Error).message}` };
    }
    connection.requests.set(command.id, coreId);
    const route: Route = { connection, wireId: command.id };
    if (command.request.kvTransferParams !== undefined) route.kvTransferParams = command.request.kvTransferParams;
    this.routes.set(coreId, route);
    this.wake?.();
    return null;
  }

  private cancel(coreId: number): void {
    this.routes.delete(coreId);
    this.core.abort(coreId);
  }

  private onKvEvents(events: readonly SimKvEvent[]): void {
    this.options.kvEventSink?.(events);
    if (this.publisher) {
      this.publisher.publish(events);
      this.kvEventBatches++;
    }
  }

  private async run(): Promise<void> {
    const speedup = this.options.speedup ?? 0;
    // True until a step with work has run since the engine was last idle.
    let idle = true;
    while (!this.closing) {
      if (!this.core.hasWork) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = null;
        idle = true;
        continue;
      }
      const { durationMs, outputs } = this.core.step();
      if (speedup > 0 && durationMs > 0) {
        // A step that follows another is due when that one was due plus its own modelled time, even if
        // the timer that ended the last one fired late: lateness is made up rather than added to every
        // step. After an idle spell the clock starts again from now.
        const now = performance.now();
        const end = (idle ? now : this.lastStepEnd) + durationMs / speedup;
        this.lastStepEnd = end;
        idle = false;
        if (end - now >= 1) await sleep(end - now);
        else await yieldToIo();
      } else {
        idle = idle || durationMs === 0;
        await yieldToIo();
      }
      this.deliver(outputs);
    }
  }

  private deliver(outputs: readonly CoreOutput[]): void {
    const byConnection = new Map<EngineSideConnection, Array<{ wireId: number; output: CoreOutput }>>();
    for (const output of outputs) {
      const route = this.routes.get(output.id);
      if (!route) continue;
      if (output.finish) this.routes.delete(output.id);
      let list = byConnection.get(route.connection);
      if (!list) byConnection.set(route.connection, (list = []));
      const finish = output.finish && route.kvTransferParams ? { ...output.finish, kvTransferParams: route.kvTransferParams } : output.finish;
      list.push({ wireId: route.wireId, output: finish === output.finish ? output : { ...output, finish } });
    }
    for (const [connection, list] of byConnection) connection.deliver(list);
  }
}

/** Starts a simulator in this process. */
export async function startSimulator(options: SimulatorOptions = {}): Promise<SimulatorHandle> {
  const simulator = new Simulator(options);
  await simulator.start();
  return simulator;
}
