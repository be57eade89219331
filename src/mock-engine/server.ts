// The simulator as a running engine: the engine runtime (the core on the wall clock, publishing its KV
// events on ZMQ like vLLM; runtime.ts) behind the engine protocol on TCP.
import { createServer, type Server, type Socket } from "node:net";
import { type ConnectionCounters, DEFAULT_MAX_FRAME_BYTES, EngineSideConnection, ErrorCode, type GenerateCommand, type KvTransferParams, type LogFn, PROTOCOL_VERSION, stderrLog, type Welcome } from "../engine-protocol/index.js";
import { SimRequestError, type EngineCore, type EngineCoreMetrics } from "./core.js";
import { EngineRuntime, type RoutedOutput, type RuntimeOptions } from "./runtime.js";
import { listen, type BoundAddress } from "./listen.js";

export const SIMULATOR_VERSION = "kvroute-sim 0.1.0";

export interface SimulatorOptions extends RuntimeOptions {
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** TCP port for the engine protocol (default 0: an ephemeral port). */
  port?: number;
  /** Served model name (default Qwen/Qwen3-0.6B). */
  model?: string;
  /** Name in the handshake (default kvroute-sim@HOST:PORT). */
  engineId?: string;
  /** False: answer cached_tokens nil in every finish, as an engine that cannot count them (default true). */
  reportCachedTokens?: boolean;
  maxFrameBytes?: number;
}

export const DEFAULT_MODEL = "Qwen/Qwen3-0.6B";

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
  /** Where the KV transfer channel listens (held blocks are pulled from it); null when off. */
  readonly kvTransfer: { host: string; port: number } | null;
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
}

class Simulator implements SimulatorHandle {
  host = "";
  port = 0;
  url = "";
  info!: Welcome;
  private runtime!: EngineRuntime<Route>;
  private server: Server | null = null;
  private readonly connections = new Set<EngineSideConnection>();
  private readonly sockets = new Set<Socket>();
  private closing = false;
  private readonly log: LogFn;
  readonly counters: ConnectionCounters = { framesIn: 0, framesOut: 0, badFrames: 0, badMessages: 0 };

  constructor(private readonly options: SimulatorOptions) {
    this.log = options.log ?? stderrLog("kvroute sim");
  }

  get core(): EngineCore {
    return this.runtime.core;
  }

  get kvEventsEndpoint(): string | null {
    return this.runtime.kvEventsEndpoint;
  }

  get replayEndpoint(): string | null {
    return this.runtime.replayEndpoint;
  }

  get kvTransfer(): { host: string; port: number } | null {
    return this.runtime.kvTransfer;
  }

  async start(): Promise<void> {
    const o = this.options;
    this.runtime = await EngineRuntime.start<Route>(o, this.log, (outputs) => this.deliver(outputs));
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    let bound: BoundAddress;
    try {
      bound = await listen(server, o.host ?? "127.0.0.1", o.port ?? 0);
    } catch (error) {
      await this.runtime.close();
      throw error;
    }
    this.host = bound.host;
    this.port = bound.port;
    const shownHost = this.host.includes(":") ? `[${this.host}]` : this.host;
    this.url = `tcp://${shownHost}:${this.port}`;
    const c = this.core.options;
    const runtime = this.runtime;
    this.info = {
      protocolVersion: PROTOCOL_VERSION,
      engineId: o.engineId ?? `kvroute-sim@${shownHost}:${this.port}`,
      engine: SIMULATOR_VERSION,
      model: o.model ?? DEFAULT_MODEL,
      blockSize: c.blockSize,
      numBlocks: c.numBlocks,
      maxModelLen: c.maxModelLen,
      maxFrameBytes: o.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      // One engine core: a single data-parallel rank, 0, which its KV events also carry.
      dataParallelStartRank: 0,
      dataParallelLocalSize: 1,
      kvEvents:
        runtime.kvEventsEndpoint === null
          ? null
          : { endpoint: runtime.kvEventsEndpoint, topic: runtime.topic, dataParallelSize: 1, replayEndpoint: runtime.replayEndpoint, layout: runtime.layout, medium: "GPU" },
    };
  }

  metrics(): SimulatorMetrics {
    return { ...this.core.metrics(), ...this.counters, connections: this.connections.size, kvEventBatches: this.runtime.kvEventBatches };
  }

  resetPrefixCache(): boolean {
    return this.core.resetPrefixCache();
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const connection of [...this.connections]) connection.close("the simulator is shutting down");
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await this.runtime.close();
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
        cancel: (coreId) => this.runtime.cancel(coreId),
      },
      (conn) => this.connections.delete(conn),
    );
    this.connections.add(connection);
  }

  private submit(connection: EngineSideConnection, command: GenerateCommand): { code: string; message: string } | null {
    const route: Route = { connection, wireId: command.id };
    let coreId: number;
    try {
      coreId = this.runtime.submit(command.request, route);
    } catch (error) {
      if (error instanceof SimRequestError) return { code: error.code, message: error.message };
      this.log("error", `request ${command.id} failed to start: ${(error as Error).stack ?? String(error)}`);
      return { code: ErrorCode.engineError, message: `the simulator failed to start the request: ${(error as Error).message}` };
    }
    connection.requests.set(command.id, coreId);
    return null;
  }

  /** One step's outputs, one delivery per connection, so that each connection writes them in one go. */
  private deliver(outputs: RoutedOutput<Route>[]): void {
    const byConnection = new Map<EngineSideConnection, Array<{ wireId: number; output: RoutedOutput<Route>["output"] }>>();
    for (const { route, output } of outputs) {
      let list = byConnection.get(route.connection);
      if (!list) byConnection.set(route.connection, (list = []));
      list.push({ wireId: route.wireId, output });
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
