// One TCP connection from the router to an engine: connect, handshake, framing, heartbeats and write
// backpressure. Requests and reconnection belong to EngineClient.
import { connect as netConnect, type Socket } from "node:net";
import { decodeBody, encodeFrame } from "./codec.js";
import { resolveWildcardHost, type TcpAddress } from "./endpoint.js";
import { FrameDecoder, FrameError } from "./frame.js";
import type { LogFn } from "./log.js";
import { parseError, parseWelcome, readEnvelope, type Envelope } from "./parse.js";
import { PROTOCOL_VERSION, type Welcome } from "./types.js";
import { ErrorCode, type HelloMessage } from "./wire.js";

export type ConnectErrorCode =
  | "connect_failed"
  | "timeout"
  | "closed"
  | "bad_welcome"
  | "version_mismatch"
  | "block_size_mismatch"
  | "refused";

/** A connection attempt that did not end in a usable handshake. */
export class EngineConnectError extends Error {
  constructor(
    readonly code: ConnectErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "EngineConnectError";
  }
}

export interface ConnectionOptions {
  expectedBlockSize: number | undefined;
  connectTimeoutMs: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  maxFrameBytes: number;
  clientName: string;
  log: LogFn;
}

export interface ConnectionHandlers {
  /** Every message after the handshake, in order. */
  message(envelope: Envelope): void;
  /** Called once, when the connection is gone for whatever reason. */
  close(reason: string): void;
}

interface Queued {
  frame: Buffer;
  /** The request a queued generate belongs to, so an abort before sending can take it back. */
  requestId: number | null;
}

export class EngineConnection {
  private readonly outbox: Queued[] = [];
  private flushScheduled = false;
  private handlers: ConnectionHandlers | null = null;
  private lastReceived = Date.now();
  private heartbeat: NodeJS.Timeout | null = null;
  private readPaused = false;
  private closedReason: string | null = null;

  private constructor(
    private readonly socket: Socket,
    readonly address: TcpAddress,
    private readonly options: ConnectionOptions,
    readonly info: Welcome,
    /** The handshake's decoder, which may hold the start of the next frame. */
    private readonly decoder: FrameDecoder,
    /** Frames that arrived together with the welcome. */
    private earlyFrames: Buffer[],
  ) {}

  /** Connects and handshakes. Rejects with an EngineConnectError that says what went wrong. */
  static open(address: TcpAddress, options: ConnectionOptions): Promise<EngineConnection> {
    return new Promise((resolve, reject) => {
      const where = `tcp://${address.host}:${address.port}`;
      const socket = netConnect({ host: address.host, port: address.port });
      socket.setNoDelay(true);
      const decoder = new FrameDecoder(options.maxFrameBytes);
      let settled = false;
      const fail = (code: ConnectErrorCode, message: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(new EngineConnectError(code, `${where}: ${message}`));
      };
      const timer = setTimeout(() => fail("timeout", `no handshake within ${options.connectTimeoutMs} ms`), options.connectTimeoutMs);
      socket.once("connect", () => {
        const hello: HelloMessage = {
          type: "hello",
          protocol: PROTOCOL_VERSION,
          client: options.clientName,
          block_size: options.expectedBlockSize ?? null,
          heartbeat_ms: options.heartbeatIntervalMs > 0 ? options.heartbeatIntervalMs : null,
        };
        socket.write(encodeFrame(hello));
      });
      socket.on("error", (error) => fail("connect_failed", error.message));
      socket.on("close", () => fail("closed", "the engine closed the connection during the handshake"));
      const onData = (chunk: Buffer): void => {
        let frames: Buffer[];
        try {
          frames = decoder.push(chunk);
        } catch (error) {
          return fail("bad_welcome", (error as Error).message);
        }
        if (frames.length === 0) return;
        socket.off("data", onData);
        let decoded: unknown;
        try {
          decoded = decodeBody(frames[0]!);
        } catch (error) {
          return fail("bad_welcome", `the first frame is not msgpack: ${(error as Error).message}`);
        }
        const result = EngineConnection.checkWelcome(decoded, address, options);
        if (!result.ok) return fail(result.code, result.message);
        settled = true;
        clearTimeout(timer);
        // Nothing may be read until attach() has put the real handlers in place.
        socket.pause();
        socket.removeAllListeners("error");
        socket.removeAllListeners("close");
        socket.removeAllListeners("connect");
        resolve(new EngineConnection(socket, address, options, result.info, decoder, frames.slice(1)));
      };
      socket.on("data", onData);
    });
  }

  private static checkWelcome(
    decoded: unknown,
    address: TcpAddress,
    options: ConnectionOptions,
  ): { ok: true; info: Welcome } | { ok: false; code: ConnectErrorCode; message: string } {
    const envelope = readEnvelope(decoded);
    if (!envelope.ok) return { ok: false, code: "bad_welcome", message: envelope.message };
    const { type, fields } = envelope.value;
    if (type === "error") {
      const refusal = parseError(fields, null);
      const code = refusal.ok ? refusal.value.code : "refused";
      const known: ConnectErrorCode[] = ["version_mismatch", "block_size_mismatch"];
      const mapped = known.find((c) => c === code) ?? "refused";
      return { ok: false, code: mapped, message: `the engine refused the connection (${code}): ${refusal.ok ? refusal.value.message : ""}` };
    }
    if (type !== "welcome") return { ok: false, code: "bad_welcome", message: `expected a welcome, got a ${JSON.stringify(type)} message` };
    const parsed = parseWelcome(fields);
    if (!parsed.ok) return { ok: false, code: "bad_welcome", message: `bad welcome: ${parsed.message}` };
    const info = parsed.value;
    if (info.protocolVersion !== PROTOCOL_VERSION) {
      return {
        ok: false,
        code: "version_mismatch",
        message: `the engine speaks protocol version ${info.protocolVersion}; this router speaks ${PROTOCOL_VERSION}`,
      };
    }
    if (options.expectedBlockSize !== undefined && info.blockSize !== options.expectedBlockSize) {
      return {
        ok: false,
        code: "block_size_mismatch",
        message: `the engine's block size is ${info.blockSize}; the router hashes prompts in blocks of ${options.expectedBlockSize}`,
      };
    }
    if (info.kvEvents) {
      info.kvEvents.endpoint = resolveWildcardHost(info.kvEvents.endpoint, address.host);
      if (info.kvEvents.replayEndpoint) info.kvEvents.replayEndpoint = resolveWildcardHost(info.kvEvents.replayEndpoint, address.host);
    }
    return { ok: true, info };
  }

  /** Starts delivering messages, heartbeats and close notices. Call once, right after open(). */
  attach(handlers: ConnectionHandlers): void {
    this.handlers = handlers;
    this.socket.on("data", (chunk: Buffer) => this.receive(chunk));
    this.socket.on("drain", () => this.flush());
    this.socket.on("error", (error) => this.destroy(`socket error: ${error.message}`));
    this.socket.on("close", () => this.destroy("the engine closed the connection"));
    const early = this.earlyFrames;
    this.earlyFrames = [];
    for (const frame of early) if (!this.closed) this.deliver(frame);
    if (!this.readPaused) this.socket.resume();
    if (this.options.heartbeatIntervalMs > 0) {
      this.lastReceived = Date.now();
      this.heartbeat = setInterval(() => this.beat(), this.options.heartbeatIntervalMs);
      this.heartbeat.unref();
    }
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  /** Frames not yet handed to the socket (this loop turn's, or waiting for the socket to drain). */
  get queuedFrames(): number {
    return this.outbox.length;
  }

  /**
   * Queues a frame; the frames of one event-loop turn leave together in one write, which matters when
   * many requests arrive at once (one system call instead of one per request). While the socket asks the
   * sender to wait, frames stay queued until it drains.
   */
  send(frame: Buffer, requestId: number | null = null): void {
    if (this.closed) return;
    this.outbox.push({ frame, requestId });
    if (!this.flushScheduled && !this.socket.writableNeedDrain) {
      this.flushScheduled = true;
      setImmediate(this.flushNow);
    }
  }

  private readonly flushNow = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  /** Takes back a queued, not yet written generate; true when it was still queued. */
  unsend(requestId: number): boolean {
    const at = this.outbox.findIndex((q) => q.requestId === requestId);
    if (at < 0) return false;
    this.outbox.splice(at, 1);
    return true;
  }

  /** Stops reading from the socket (the consumers are behind); heartbeat checks wait too. */
  pauseReading(): void {
    if (this.readPaused || this.closed) return;
    this.readPaused = true;
    this.socket.pause();
  }

  resumeReading(): void {
    if (!this.readPaused || this.closed) return;
    this.readPaused = false;
    this.lastReceived = Date.now();
    this.socket.resume();
  }

  /** Closes the connection; handlers.close runs once with the reason. */
  destroy(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.outbox.length = 0;
    this.socket.destroy();
    this.handlers?.close(reason);
  }

  private flush(): void {
    if (this.closed || this.outbox.length === 0) return;
    this.socket.cork();
    while (this.outbox.length > 0 && !this.socket.writableNeedDrain) {
      this.socket.write(this.outbox.shift()!.frame);
    }
    this.socket.uncork();
  }

  private beat(): void {
    // While reading is paused nothing can arrive, so silence proves nothing; the engine still hears from us.
    const silent = Date.now() - this.lastReceived;
    if (!this.readPaused && silent > this.options.heartbeatTimeoutMs) {
      this.options.log("warn", `nothing received for ${silent} ms, dropping the connection`);
      this.destroy(`heartbeat timeout: nothing received for ${silent} ms`);
      return;
    }
    this.send(encodeFrame({ type: "heartbeat", ts: Date.now() }));
  }

  private receive(chunk: Buffer): void {
    this.lastReceived = Date.now();
    let frames: Buffer[];
    try {
      frames = this.decoder.push(chunk);
    } catch (error) {
      const reason = error instanceof FrameError ? `${error.code}: ${error.message}` : String(error);
      this.options.log("warn", `closing the connection: ${reason}`);
      this.destroy(reason);
      return;
    }
    for (const frame of frames) {
      if (this.closed) return;
      this.deliver(frame);
    }
  }

  private deliver(frame: Buffer): void {
    let decoded: unknown;
    try {
      decoded = decodeBody(frame);
    } catch (error) {
      const reason = `${ErrorCode.badFrame}: a ${frame.length}-byte frame is not msgpack (${(error as Error).message})`;
      this.options.log("warn", `closing the connection: ${reason}`);
      this.destroy(reason);
      return;
    }
    const envelope = readEnvelope(decoded);
    if (!envelope.ok) {
      this.options.log("warn", `ignoring a message: ${envelope.message}`);
      return;
    }
    this.handlers?.message(envelope.value);
  }
}
