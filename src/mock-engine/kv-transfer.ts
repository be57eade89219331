// The simulated engines' KV transfer channel, standing in for NIXL's side channel and its reads: a decode
// engine connects to the prefill engine named in its kv_transfer_params, asks for a held request's blocks,
// takes the modelled transfer time, and says it is done, which frees them on the prefill engine. A decode
// request given up on (aborted) before its pull tells the prefill engine to free them at once.
//
// Wire: one TCP connection per pull, newline-delimited JSON, one reply per line:
//   → {"op": "read", "request_id": "17", "blocks": 6}   ← {"ok": true, "blocks": 7} | {"ok": false, "reason": "…"}
//   → {"op": "done", "request_id": "17"}                ← {"ok": true}
//   → {"op": "release", "request_id": "17"}             ← {"ok": true}
// A read fails when the request's blocks are not held (never were, already freed, expired) or are fewer
// than asked for. A connection that closes before its "done" is answered is a failed transfer.
import { connect, createServer, type Server, type Socket } from "node:net";
import type { LogFn } from "../engine-protocol/index.js";
import { listen } from "./listen.js";

/** What the prefill side serves pulls from: its held blocks, by request id. */
export interface KvHolder {
  heldBlocks(requestId: string): number | null;
  /** Frees a request's held blocks; `why` for the log. False when none were held. */
  release(requestId: string, why: "pulled" | "released"): boolean;
}

/** A line longer than this is refused: requests are a few dozen bytes. */
const MAX_LINE = 4096;

export class KvTransferServer {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  host = "";
  port = 0;

  private constructor(
    private readonly holder: KvHolder,
    private readonly log: LogFn,
  ) {
    this.#server = createServer((socket) => this.#accept(socket));
  }

  static async start(host: string, port: number, holder: KvHolder, log: LogFn): Promise<KvTransferServer> {
    const server = new KvTransferServer(holder, log);
    const bound = await listen(server.#server, host, port);
    server.host = bound.host;
    server.port = bound.port;
    return server;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
    socket.on("error", () => undefined);
    readLines(socket, (line) => {
      const reply = this.#handle(line);
      socket.write(`${JSON.stringify(reply)}\n`);
      if (!reply.ok) socket.end();
    });
  }

  #handle(line: string): { ok: true; blocks?: number } | { ok: false; reason: string } {
    let message: { op?: unknown; request_id?: unknown; blocks?: unknown };
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      return { ok: false, reason: "not JSON" };
    }
    const id = message?.request_id;
    if (typeof id !== "string") return { ok: false, reason: "request_id must be a string" };
    switch (message.op) {
      case "read": {
        const held = this.holder.heldBlocks(id);
        const wanted = typeof message.blocks === "number" ? message.blocks : 0;
        if (held === null) return { ok: false, reason: `request ${id} holds no blocks here (never held, already freed, or expired)` };
        if (held < wanted) return { ok: false, reason: `request ${id} holds ${held} blocks, ${wanted} were asked for` };
        return { ok: true, blocks: held };
      }
      case "done":
        this.holder.release(id, "pulled");
        return { ok: true };
      case "release":
        this.holder.release(id, "released");
        return { ok: true };
      default:
        this.log("warn", `KV transfer channel: unknown op ${JSON.stringify(message.op)}`);
        return { ok: false, reason: `unknown op ${JSON.stringify(message.op)}` };
    }
  }
}

export type PullResult = { ok: true } | { ok: false; reason: string };

/**
 * Pulls `blocks` blocks of a held request from a prefill engine's channel: reads, waits `transferMs` (the
 * modelled transfer), then says done. Never throws; an aborted pull asks the prefill engine to free them.
 */
export async function pullBlocks(host: string, port: number, requestId: string, blocks: number, transferMs: number, signal: AbortSignal): Promise<PullResult> {
  let conversation: Conversation | null = null;
  try {
    conversation = await Conversation.open(host, port, signal);
    const read = await conversation.ask({ op: "read", request_id: requestId, blocks });
    if (!read.ok) return { ok: false, reason: read.reason ?? "refused" };
    if (transferMs > 0) await abortableSleep(transferMs, signal);
    const done = await conversation.ask({ op: "done", request_id: requestId });
    return done.ok ? { ok: true } : { ok: false, reason: done.reason ?? "refused" };
  } catch (error) {
    if (signal.aborted) void releaseBlocks(host, port, requestId);
    return { ok: false, reason: (error as Error).message };
  } finally {
    conversation?.close();
  }
}

/** Asks a prefill engine to free a request's held blocks (best effort: a failure is only logged by the caller). */
export async function releaseBlocks(host: string, port: number, requestId: string): Promise<boolean> {
  let conversation: Conversation | null = null;
  try {
    conversation = await Conversation.open(host, port, AbortSignal.timeout(5000));
    return (await conversation.ask({ op: "release", request_id: requestId })).ok;
  } catch {
    return false;
  } finally {
    conversation?.close();
  }
}

/** One connection's requests and replies, in order. */
class Conversation {
  readonly #waiters: Array<{ resolve: (reply: { ok: boolean; reason?: string }) => void; reject: (error: Error) => void }> = [];
  #closed: Error | null = null;

  private constructor(private readonly socket: Socket) {
    readLines(socket, (line) => {
      let reply: { ok: boolean; reason?: string };
      try {
        reply = JSON.parse(line) as { ok: boolean; reason?: string };
      } catch {
        reply = { ok: false, reason: "the prefill engine answered something that is not JSON" };
      }
      this.#waiters.shift()?.resolve(reply);
    });
    const fail = (error: Error) => {
      this.#closed ??= error;
      for (const w of this.#waiters.splice(0)) w.reject(this.#closed);
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("the prefill engine's KV transfer channel closed")));
  }

  static open(host: string, port: number, signal: AbortSignal): Promise<Conversation> {
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(new Error("aborted"));
      const socket = connect({ host, port });
      const onAbort = () => socket.destroy(new Error("aborted"));
      signal.addEventListener("abort", onAbort, { once: true });
      socket.once("connect", () => resolve(new Conversation(socket)));
      socket.once("error", (error) => reject(new Error(`cannot reach the prefill engine's KV transfer channel at ${host}:${port}: ${error.message}`)));
      socket.once("close", () => signal.removeEventListener("abort", onAbort));
    });
  }

  ask(message: Record<string, unknown>): Promise<{ ok: boolean; reason?: string }> {
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.socket.write(`${JSON.stringify(message)}\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

function readLines(socket: Socket, onLine: (line: string) => void): void {
  let buffer = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    buffer += chunk;
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line !== "") onLine(line);
    }
    if (buffer.length > MAX_LINE) socket.destroy(new Error(`a line of over ${MAX_LINE} bytes on the KV transfer channel`));
  });
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Error("aborted"));
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Error("aborted"));
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
