// The engine's side of one router connection: framing, the handshake (version and block size checked),
// heartbeats (answered, and a router that falls silent is dropped), request bookkeeping, and output
// frames that are coalesced per request while the socket asks the engine to wait. Any engine written in
// TypeScript can serve the protocol with it; the mock engine does.
import type { Socket } from "node:net";
import { toWelcomeMessage } from "./build.js";
import { decodeBody, encodeFrame } from "./codec.js";
import { FrameDecoder, FrameError } from "./frame.js";
import type { LogFn } from "./log.js";
import { heartbeatTs, parseAbort, parseGenerate, parseHello, readEnvelope, type GenerateCommand } from "./parse.js";
import { PROTOCOL_VERSION, type EngineUsage, type KvTransferParams, type TokenLogprobs, type Welcome } from "./types.js";
import { ErrorCode, type EngineMessage, type FinishMessage } from "./wire.js";
import { IdMap } from "../util/id-map.js";

/** How a request ended, as the engine reports it. */
export interface EngineFinish {
  finishReason: string;
  stopReason: string | number | null;
  usage: EngineUsage;
  /** What the engine's KV connector returned for the request, sent as kv_transfer_params. */
  kvTransferParams?: KvTransferParams;
}

/** What one engine step produced for one request. */
export interface EngineOutput {
  tokenIds: number[];
  text: string;
  logprobs?: TokenLogprobs[];
  /** Present on the request's last output. */
  finish?: EngineFinish;
}

export interface ConnectionCounters {
  framesIn: number;
  framesOut: number;
  /** Frames that closed their connection: over the size limit or not msgpack. */
  badFrames: number;
  /** Messages answered with an error: wrong shape, unknown type, invalid request. */
  badMessages: number;
}

/** What a connection needs from the engine it belongs to. */
export interface EngineSide {
  info: Welcome;
  log: LogFn;
  counters: ConnectionCounters;
  /** False to answer cached_tokens nil, like an engine that cannot count them. */
  reportCachedTokens: boolean;
  /** Starts a request; returns an error to send back instead, or null. */
  submit(connection: EngineSideConnection, command: GenerateCommand): { code: string; message: string } | null;
  /** Stops a request the router aborted or abandoned. */
  cancel(coreId: number): void;
}

interface Pending {
  tokenIds: number[];
  text: string;
  logprobs: TokenLogprobs[] | null;
  finish: EngineFinish | null;
}

export class EngineSideConnection {
  /** The router's request id → the core's. */
  readonly requests = new IdMap<number>();
  private readonly decoder: FrameDecoder;
  private handshaken = false;
  private closed = false;
  private lastReceived = Date.now();
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly pending = new IdMap<Pending>();
  readonly name: string;

  constructor(
    private readonly socket: Socket,
    private readonly engine: EngineSide,
    private readonly onClosed: (connection: EngineSideConnection) => void,
  ) {
    this.name = `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`;
    this.decoder = new FrameDecoder(engine.info.maxFrameBytes);
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("drain", () => this.flushPending());
    socket.on("error", (error) => this.close(`socket error: ${error.message}`));
    socket.on("close", () => this.close("the router closed the connection"));
  }

  /** Sends one step's outputs for this connection's requests (ids already mapped to the router's). */
  deliver(outputs: ReadonlyArray<{ wireId: number; output: EngineOutput }>): void {
    if (this.closed) return;
    for (const { wireId, output } of outputs) {
      if (output.finish) this.requests.delete(wireId);
      let p = this.pending.get(wireId);
      if (!p) {
        p = { tokenIds: [], text: "", logprobs: null, finish: null };
        this.pending.set(wireId, p);
      }
      p.tokenIds.push(...output.tokenIds);
      p.text += output.text;
      if (output.logprobs) (p.logprobs ??= []).push(...output.logprobs);
      if (output.finish) p.finish = output.finish;
    }
    // While the socket is full, outputs pile up per request and go out as one delta each on drain.
    if (!this.socket.writableNeedDrain) this.flushPending();
  }

  /** Closes the connection and cancels its requests; `reason` is logged. */
  close(reason: string): void {
    this.shutDown(reason, false);
  }

  /** With `flush`, bytes already written (a refusal) still go out before the socket closes. */
  private shutDown(reason: string, flush: boolean): void {
    if (this.closed) return;
    this.closed = true;
    if (this.idleTimer) clearInterval(this.idleTimer);
    for (const coreId of this.requests.values()) this.engine.cancel(coreId);
    this.requests.clear();
    this.pending.clear();
    this.engine.log("debug", `connection ${this.name} closed: ${reason}`);
    if (flush) this.socket.end(() => this.socket.destroy());
    else this.socket.destroy();
    this.onClosed(this);
  }

  private flushPending(): void {
    if (this.closed || this.pending.size === 0) return;
    const frames: Buffer[] = [];
    for (const [id, p] of this.pending.entries()) {
      if (p.tokenIds.length > 0 || p.text.length > 0) {
        frames.push(encodeFrame(p.logprobs ? { type: "delta", id, token_ids: p.tokenIds, text: p.text, logprobs: p.logprobs } : { type: "delta", id, token_ids: p.tokenIds, text: p.text }));
      }
      if (p.finish) {
        const { finishReason, stopReason, usage, kvTransferParams } = p.finish;
        const finish: FinishMessage = {
          type: "finish",
          id,
          finish_reason: finishReason,
          stop_reason: stopReason,
          usage: { prompt_tokens: usage.promptTokens, completion_tokens: usage.completionTokens, cached_tokens: this.engine.reportCachedTokens ? usage.cachedTokens : null },
        };
        if (kvTransferParams) finish.kv_transfer_params = kvTransferParams;
        frames.push(encodeFrame(finish));
      }
    }
    this.pending.clear();
    this.engine.counters.framesOut += frames.length;
    this.socket.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
  }

  private send(message: EngineMessage): void {
    if (this.closed) return;
    this.engine.counters.framesOut++;
    this.socket.write(encodeFrame(message));
  }

  private sendError(id: number | null, code: string, message: string): void {
    this.send({ type: "error", id, code, message });
  }

  /** Says why, then closes: the stream can no longer be trusted to be framed. */
  private refuse(code: string, message: string): void {
    this.engine.log("warn", `connection ${this.name}: ${code}: ${message}; closing it`);
    this.sendError(null, code, message);
    this.shutDown(`${code}: ${message}`, true);
  }

  private receive(chunk: Buffer): void {
    if (this.closed) return;
    this.lastReceived = Date.now();
    let frames: Buffer[];
    try {
      frames = this.decoder.push(chunk);
    } catch (error) {
      this.engine.counters.badFrames++;
      const code = error instanceof FrameError && error.code === "frame_too_large" ? ErrorCode.frameTooLarge : ErrorCode.badFrame;
      this.refuse(code, (error as Error).message);
      return;
    }
    for (const frame of frames) {
      if (this.closed) return;
      this.engine.counters.framesIn++;
      let decoded: unknown;
      try {
        decoded = decodeBody(frame);
      } catch (error) {
        this.engine.counters.badFrames++;
        this.refuse(ErrorCode.badFrame, `a ${frame.length}-byte frame is not msgpack: ${(error as Error).message}`);
        return;
      }
      try {
        this.handle(decoded);
      } catch (error) {
        // A fault of the engine's own must not take the process or the other requests down.
        this.engine.log("error", `connection ${this.name}: handling a message failed: ${(error as Error).stack ?? String(error)}`);
        const id = readEnvelope(decoded);
        this.sendError(id.ok ? id.value.id : id.id, ErrorCode.engineError, `the engine failed to handle the message: ${(error as Error).message}`);
      }
    }
  }

  private handle(decoded: unknown): void {
    const envelope = readEnvelope(decoded);
    if (!envelope.ok) {
      this.engine.counters.badMessages++;
      this.sendError(envelope.id, envelope.code, envelope.message);
      return;
    }
    const { type, fields, id } = envelope.value;
    if (!this.handshaken) {
      if (type !== "hello") {
        this.engine.counters.badMessages++;
        this.refuse(ErrorCode.handshakeRequired, `the first message must be a hello, not ${JSON.stringify(type)}`);
        return;
      }
      this.hello(fields);
      return;
    }
    switch (type) {
      case "generate": {
        const parsed = parseGenerate(fields, id);
        if (!parsed.ok) {
          this.engine.counters.badMessages++;
          this.sendError(parsed.id, parsed.code, parsed.message);
          return;
        }
        const command = parsed.value;
        if (this.requests.has(command.id)) {
          this.sendError(command.id, ErrorCode.duplicateId, `request id ${command.id} is already in flight on this connection`);
          return;
        }
        const rankError = this.checkRank(command.request.dataParallelRank);
        if (rankError) {
          this.engine.counters.badMessages++;
          this.sendError(command.id, ErrorCode.invalidRequest, rankError);
          return;
        }
        const refused = this.engine.submit(this, command);
        if (refused) this.sendError(command.id, refused.code, refused.message);
        return;
      }
      case "abort": {
        const parsed = parseAbort(fields);
        if (!parsed.ok) {
          this.engine.counters.badMessages++;
          this.sendError(null, parsed.code, parsed.message);
          return;
        }
        const coreId = this.requests.get(parsed.value.id);
        if (coreId !== undefined) {
          this.requests.delete(parsed.value.id);
          this.pending.delete(parsed.value.id);
          this.engine.cancel(coreId);
        }
        return;
      }
      case "heartbeat":
        this.send({ type: "heartbeat", ts: heartbeatTs(fields) ?? 0 });
        return;
      case "hello":
        this.engine.counters.badMessages++;
        this.sendError(null, ErrorCode.badMessage, "the handshake is already done");
        return;
      default:
        this.engine.counters.badMessages++;
        this.sendError(id, ErrorCode.unknownType, `unknown message type ${JSON.stringify(type)}`);
    }
  }

  /** Why a requested data-parallel rank cannot be served, or null when it can (or none was asked for). */
  private checkRank(rank: number | undefined): string | null {
    if (rank === undefined) return null;
    const { dataParallelStartRank: start, dataParallelLocalSize: size } = this.engine.info;
    if (rank >= start && rank < start + size) return null;
    return `data_parallel_rank ${rank} is not served by this engine, which serves ranks ${start} to ${start + size - 1}`;
  }

  private hello(fields: Record<string, unknown>): void {
    const parsed = parseHello(fields);
    if (!parsed.ok) {
      this.refuse(parsed.code, parsed.message);
      return;
    }
    const hello = parsed.value;
    const info = this.engine.info;
    if (hello.protocol !== PROTOCOL_VERSION) {
      this.refuse(ErrorCode.versionMismatch, `the router speaks protocol version ${hello.protocol}; this engine speaks ${PROTOCOL_VERSION}`);
      return;
    }
    if (hello.blockSize !== null && hello.blockSize !== info.blockSize) {
      this.refuse(ErrorCode.blockSizeMismatch, `the router hashes blocks of ${hello.blockSize} tokens; this engine's block size is ${info.blockSize}`);
      return;
    }
    this.handshaken = true;
    this.engine.log("debug", `connection ${this.name}: hello from ${hello.client}`);
    this.send(toWelcomeMessage(info));
    if (hello.heartbeatMs !== null && hello.heartbeatMs > 0) {
      // A router that vanished without closing would otherwise keep its requests generating forever.
      const limit = 3 * hello.heartbeatMs;
      this.idleTimer = setInterval(() => {
        if (Date.now() - this.lastReceived > limit) this.close(`nothing received for over ${limit} ms`);
      }, hello.heartbeatMs);
      this.idleTimer.unref();
    }
  }
}
