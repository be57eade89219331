// The router's client for one engine: many requests multiplexed on one connection, reconnection with
// backoff, and every in-flight request failed cleanly when the connection drops.
import { EventEmitter } from "node:events";
import { generateFields } from "./build.js";
import { encodeFrame, encodeGenerateFrame } from "./codec.js";
import { EngineConnectError, EngineConnection, type ConnectionOptions } from "./connection.js";
import { parseEngineUrl, type TcpAddress } from "./endpoint.js";
import { DEFAULT_MAX_FRAME_BYTES, FRAME_HEADER_BYTES } from "./frame.js";
import { stderrLog, type LogFn } from "./log.js";
import { parseDelta, parseError, parseFinish, type Envelope } from "./parse.js";
import { RequestStream } from "./request-stream.js";
import type { EngineEvent, Welcome, GenerateRequest } from "./types.js";
import { ErrorCode } from "./wire.js";
import type { AbortSignalLike } from "../util/abort.js";
import { IdMap } from "../util/id-map.js";

export interface ReconnectOptions {
  /** First delay after a drop (default 100 ms). */
  initialDelayMs?: number;
  /** Longest delay (default 5000 ms). */
  maxDelayMs?: number;
  /** Growth per failed attempt (default 2). */
  factor?: number;
}

export interface EngineClientOptions {
  /** Refuse an engine whose block size differs (the router's hashes would not match its blocks). */
  expectedBlockSize?: number;
  /** Reconnect after a drop (default on); `false` leaves the client disconnected. */
  reconnect?: ReconnectOptions | false;
  /** Keep retrying the first connect() with backoff instead of rejecting on the first failure (default false). */
  retryInitialConnect?: boolean;
  /** Time allowed for TCP connect plus handshake (default 5000 ms). */
  connectTimeoutMs?: number;
  /** How often to send a heartbeat (default 1000 ms; 0 turns heartbeats off). */
  heartbeatIntervalMs?: number;
  /** Drop the connection when nothing arrived for this long (default 5000 ms). */
  heartbeatTimeoutMs?: number;
  /** Largest frame accepted from the engine (default 16 MiB). */
  maxFrameBytes?: number;
  /** Stop reading from the socket while more events than this wait for their consumers (default 65536). */
  maxBufferedEvents?: number;
  /** Sent in the hello, for the engine's log. */
  clientName?: string;
  /** How messages name the engine (default: its URL). A router passes the engine's name, so that error
   * messages reaching clients never show an internal address. */
  name?: string;
  log?: LogFn;
}

export interface EngineDisconnect {
  reason: string;
  /** Requests that were in flight and have been ended with an `engine_disconnected` error event. */
  failedRequests: number;
  /** Whether the client will try to reconnect. */
  willReconnect: boolean;
}

export interface EngineClientEvents {
  connect: [info: Welcome];
  disconnect: [details: EngineDisconnect];
}

export interface GenerateOptions {
  /** Aborting sends an abort frame to the engine and ends the stream without a further event. */
  signal?: AbortSignalLike;
}

interface InFlight {
  id: number;
  stream: RequestStream;
  connection: EngineConnection;
  detach: () => void;
}

const CLIENT_NAME = "kvroute 0.1.0";

/**
 * Dispatches requests to one engine over the engine protocol (docs/protocol.md).
 *
 * Errors reach the caller as events, never as throws from the stream: a request whose connection drops
 * ends with `{ type: "error", code: "engine_disconnected", tokensProduced }`, one sent while not connected
 * with `engine_unavailable`, one the engine rejects with the engine's code.
 */
export class EngineClient extends EventEmitter<EngineClientEvents> {
  readonly url: string;
  /** How messages name the engine. */
  readonly name: string;
  private readonly address: TcpAddress;
  private readonly connectionOptions: ConnectionOptions;
  private readonly reconnect: Required<ReconnectOptions> | null;
  private readonly retryInitialConnect: boolean;
  private readonly maxBufferedEvents: number;
  private readonly log: LogFn;
  private connection: EngineConnection | null = null;
  private lastInfo: Welcome | null = null;
  private readonly requests = new IdMap<InFlight>();
  private nextId = 1;
  private bufferedEvents = 0;
  private closed = false;
  private attempts = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private connecting: Promise<Welcome> | null = null;
  private cancelConnect: ((error: Error) => void) | null = null;
  /** The last connection failure, for the router's health view; null once connected. */
  lastError: string | null = null;

  constructor(url: string, options: EngineClientOptions = {}) {
    super();
    this.url = url;
    this.name = options.name ?? url;
    this.address = parseEngineUrl(url);
    this.log = options.log ?? stderrLog(`kvroute engine ${url}`);
    const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 1000;
    this.connectionOptions = {
      expectedBlockSize: options.expectedBlockSize,
      connectTimeoutMs: options.connectTimeoutMs ?? 5000,
      heartbeatIntervalMs,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? Math.max(5000, 3 * heartbeatIntervalMs),
      maxFrameBytes: options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
      clientName: options.clientName ?? CLIENT_NAME,
      log: this.log,
    };
    this.reconnect =
      options.reconnect === false
        ? null
        : {
            initialDelayMs: options.reconnect?.initialDelayMs ?? 100,
            maxDelayMs: options.reconnect?.maxDelayMs ?? 5000,
            factor: options.reconnect?.factor ?? 2,
          };
    this.retryInitialConnect = options.retryInitialConnect ?? false;
    this.maxBufferedEvents = options.maxBufferedEvents ?? 65536;
  }

  /** The engine's handshake, from the current connection or the last one; null before the first. */
  get info(): Welcome | null {
    return this.lastInfo;
  }

  get connected(): boolean {
    return this.connection !== null && !this.connection.closed;
  }

  /** Requests sent and not yet finished. */
  get inFlight(): number {
    return this.requests.size;
  }

  /**
   * Connects and handshakes. Resolves with the engine's info; rejects with an EngineConnectError when the
   * first attempt fails (or, with `retryInitialConnect`, only when the engine refuses the handshake or the
   * client is closed). Once connected, drops are repaired in the background until close().
   */
  connect(): Promise<Welcome> {
    if (this.closed) return Promise.reject(new EngineConnectError("closed", `engine ${this.name}: the client is closed`));
    if (this.connection && !this.connection.closed) return Promise.resolve(this.connection.info);
    if (this.connecting) return this.connecting;
    this.connecting = new Promise<Welcome>((resolve, reject) => {
      this.cancelConnect = reject;
      const tryOnce = (): void => {
        EngineConnection.open(this.address, this.connectionOptions).then(
          (connection) => {
            this.connecting = null;
            this.cancelConnect = null;
            if (this.closed) {
              connection.destroy("the client was closed");
              reject(new EngineConnectError("closed", `engine ${this.name}: the client is closed`));
              return;
            }
            this.adopt(connection);
            resolve(connection.info);
          },
          (error: EngineConnectError) => {
            this.lastError = error.message;
            const permanent = error.code === "version_mismatch" || error.code === "block_size_mismatch";
            if (this.closed || !this.retryInitialConnect || permanent) {
              this.connecting = null;
              this.cancelConnect = null;
              reject(error);
              return;
            }
            this.log("info", `${error.message}; retrying`);
            this.reconnectTimer = setTimeout(() => {
              this.reconnectTimer = null;
              tryOnce();
            }, this.backoff(this.attempts++));
          },
        );
      };
      tryOnce();
    });
    return this.connecting;
  }

  /**
   * Sends a request and returns its event stream. The request is sent at once, before iteration starts.
   * Breaking out of the iteration aborts the request on the engine, as the signal does.
   */
  generate(request: GenerateRequest, options: GenerateOptions = {}): AsyncIterable<EngineEvent> {
    const { signal } = options;
    let entry: InFlight | null = null;
    const stream = new RequestStream({
      cancel: () => entry && this.abort(entry),
      consumed: (count) => {
        if (entry && this.requests.get(entry.id) === entry) this.unbuffer(count);
      },
    });
    if (signal?.aborted) {
      stream.end();
      return stream;
    }
    const connection = this.connection;
    if (!connection || connection.closed) {
      stream.push(this.localError(ErrorCode.engineUnavailable, `engine ${this.name} is not connected${this.lastError ? `: ${this.lastError}` : ""}`));
      return stream;
    }
    if (request.promptTokenIds.length === 0) {
      stream.push(this.localError(ErrorCode.invalidRequest, "promptTokenIds must hold at least one token"));
      return stream;
    }
    const id = this.allocateId();
    const frame = encodeGenerateFrame(generateFields(id, request), request.promptTokenIds);
    if (frame.length - FRAME_HEADER_BYTES > connection.info.maxFrameBytes) {
      stream.push(
        this.localError(
          ErrorCode.frameTooLarge,
          `the request needs a ${frame.length - FRAME_HEADER_BYTES}-byte frame; engine ${this.name} accepts at most ${connection.info.maxFrameBytes}`,
        ),
      );
      return stream;
    }
    const onAbort = (): void => {
      if (entry) this.abort(entry);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    entry = { id, stream, connection, detach: () => signal?.removeEventListener("abort", onAbort) };
    this.requests.set(id, entry);
    connection.send(frame, id);
    return stream;
  }

  /** Closes the connection and stops reconnecting; requests in flight end with a `client_closed` error. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.cancelConnect?.(new EngineConnectError("closed", `engine ${this.name}: the client was closed`));
    this.connecting = null;
    for (const entry of this.requests.values()) {
      this.finishEntry(entry, this.localError(ErrorCode.clientClosed, `the client for engine ${this.name} was closed`, entry.stream.tokensProduced));
    }
    this.connection?.destroy("the client was closed");
  }

  private adopt(connection: EngineConnection): void {
    this.connection = connection;
    this.lastInfo = connection.info;
    this.lastError = null;
    this.attempts = 0;
    this.bufferedEvents = 0;
    connection.attach({
      message: (envelope) => this.onMessage(connection, envelope),
      close: (reason) => this.onClose(connection, reason),
    });
    this.emit("connect", connection.info);
  }

  private onMessage(connection: EngineConnection, envelope: Envelope): void {
    const { type, fields, id } = envelope;
    if (type === "heartbeat") return;
    if (type === "error" && id === null) {
      const parsed = parseError(fields, null);
      this.log("warn", `engine error: ${parsed.ok ? `${parsed.value.code}: ${parsed.value.message}` : "unreadable"}`);
      return;
    }
    if (type !== "delta" && type !== "finish" && type !== "error") {
      this.log("debug", `ignoring a message of unknown type ${JSON.stringify(type)}`);
      return;
    }
    const entry = id === null ? undefined : this.requests.get(id);
    // Frames for a request already aborted or finished may still arrive; they are dropped.
    if (!entry || entry.connection !== connection) return;
    if (type === "delta") {
      const delta = parseDelta(fields, id);
      if (!delta.ok) return this.protocolError(entry, delta.message);
      // Only events left waiting for their consumer count against the read-side limit.
      if (entry.stream.push(delta.value)) this.buffer(connection);
    } else if (type === "finish") {
      const finish = parseFinish(fields, id);
      if (!finish.ok) return this.protocolError(entry, finish.message);
      // "error" is a failure inside the engine, not an ending: it gets the error path, so the request is
      // retried elsewhere when no token was produced.
      if (finish.value.finishReason === "error") {
        this.finishEntry(entry, this.localError(ErrorCode.engineError, `the request failed inside engine ${this.name} (finish reason "error")`, entry.stream.tokensProduced));
      } else {
        this.finishEntry(entry, finish.value);
      }
    } else {
      const error = parseError(fields, id);
      if (!error.ok) return this.protocolError(entry, error.message);
      this.finishEntry(entry, { type: "error", code: error.value.code, message: error.value.message, tokensProduced: entry.stream.tokensProduced });
    }
  }

  private protocolError(entry: InFlight, message: string): void {
    this.log("warn", `request ${entry.id}: bad message from the engine: ${message}`);
    this.sendAbort(entry);
    this.finishEntry(entry, this.localError(ErrorCode.badMessage, `engine ${this.name} sent a bad message: ${message}`, entry.stream.tokensProduced));
  }

  private onClose(connection: EngineConnection, reason: string): void {
    if (this.connection !== connection) return;
    this.connection = null;
    let failed = 0;
    for (const entry of this.requests.values()) {
      if (entry.connection !== connection) continue;
      failed++;
      const tokens = entry.stream.tokensProduced;
      this.finishEntry(
        entry,
        this.localError(
          ErrorCode.engineDisconnected,
          `engine ${this.name} disconnected (${reason}) after ${tokens} output token${tokens === 1 ? "" : "s"}`,
          tokens,
        ),
      );
    }
    this.bufferedEvents = 0;
    const willReconnect = !this.closed && this.reconnect !== null;
    this.lastError = reason;
    this.emit("disconnect", { reason, failedRequests: failed, willReconnect });
    if (willReconnect) this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer !== null) return;
    const delay = this.backoff(this.attempts++);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.closed || this.connected) return;
      EngineConnection.open(this.address, this.connectionOptions).then(
        (connection) => {
          if (this.closed) connection.destroy("the client was closed");
          else this.adopt(connection);
        },
        (error: Error) => {
          this.lastError = error.message;
          this.log("info", `reconnect failed: ${error.message}`);
          this.scheduleReconnect();
        },
      );
    }, delay);
  }

  private backoff(attempt: number): number {
    const r = this.reconnect ?? { initialDelayMs: 100, maxDelayMs: 5000, factor: 2 };
    const base = Math.min(r.maxDelayMs, r.initialDelayMs * r.factor ** Math.min(attempt, 30));
    // Jitter keeps a fleet of routers from reconnecting in lockstep after an engine restart.
    return Math.round(base * (0.8 + 0.4 * Math.random()));
  }

  private abort(entry: InFlight): void {
    if (this.requests.get(entry.id) !== entry) return;
    this.sendAbort(entry);
    this.removeEntry(entry);
    entry.stream.end();
  }

  private sendAbort(entry: InFlight): void {
    if (!entry.connection.unsend(entry.id)) entry.connection.send(encodeFrame({ type: "abort", id: entry.id }));
  }

  private finishEntry(entry: InFlight, event: EngineEvent): void {
    if (this.requests.get(entry.id) !== entry) return;
    this.removeEntry(entry);
    entry.stream.push(event);
  }

  private removeEntry(entry: InFlight): void {
    this.requests.delete(entry.id);
    entry.detach();
    this.unbuffer(entry.stream.buffered);
  }

  private buffer(connection: EngineConnection): void {
    this.bufferedEvents++;
    if (this.bufferedEvents > this.maxBufferedEvents) connection.pauseReading();
  }

  private unbuffer(count: number): void {
    this.bufferedEvents = Math.max(0, this.bufferedEvents - count);
    if (this.bufferedEvents <= this.maxBufferedEvents / 2) this.connection?.resumeReading();
  }

  private allocateId(): number {
    // Ids are unique per client, never reused while in flight; they wrap after 2^32 - 1.
    let id = this.nextId;
    while (this.requests.has(id)) id = id === 0xffffffff ? 1 : id + 1;
    this.nextId = id === 0xffffffff ? 1 : id + 1;
    return id;
  }

  private localError(code: string, message: string, tokensProduced = 0): EngineEvent {
    return { type: "error", code, message, tokensProduced };
  }
}
