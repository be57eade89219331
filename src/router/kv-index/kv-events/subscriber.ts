// The ZMQ side of one engine rank: a SUB socket on the rank's KV-event endpoint, and a DEALER for replay
// requests to the rank's replay socket. Frames go to a RankStream, which keeps them in order.
//
// vLLM's publisher sends [topic, seq (8 bytes, big-endian), payload]. Its replay socket (ROUTER) answers
// [b"", start_seq] with [b"", seq, payload] per buffered batch (newer builds: [b"", topic, seq, payload])
// and ends with seq -1 and an empty payload.
//
// Reconnection is ZMQ's own: the SUB socket redials a publisher that went away, waiting reconnectInterval
// and doubling up to reconnectMaxInterval. A disconnect drops the rank's entries (events published while
// it lasts are lost); the stream starts afresh on reconnect.

import { Dealer, Subscriber } from "zeromq";
import { RankStream, type Batch, type DropReason } from "./rank-stream.js";

export type ConnectionState = "connecting" | "connected" | "disconnected" | "closed";

export interface RankSubscriberOptions {
  /** The rank's publisher endpoint, e.g. tcp://10.0.0.5:5557 (already offset by the rank). */
  endpoint: string;
  /** The rank's replay endpoint, or null when the publisher has none. */
  replayEndpoint: string | null;
  /** ZMQ subscription prefix; "" takes every topic. */
  topic: string;
  /** How long a replay may wait for each reply. */
  replayTimeoutMs: number;
  reconnectIntervalMs: number;
  reconnectMaxIntervalMs: number;
  /** Decode and apply one batch; false when the payload was rejected. */
  apply(batch: Batch): boolean;
  drop(reason: DropReason): void;
  /** A frame or payload that could not be used, with what was wrong. */
  reject(message: string): void;
}

export interface RankSubscriberStats {
  endpoint: string;
  state: ConnectionState;
  connects: number;
  disconnects: number;
}

/** Most batches one replay may return. vLLM buffers 10,000 by default. */
const MAX_REPLAY = 100_000;

export class RankSubscriber {
  readonly stream: RankStream;
  readonly #options: RankSubscriberOptions;
  readonly #socket: Subscriber;
  #state: ConnectionState = "connecting";
  #connects = 0;
  #disconnects = 0;
  readonly #replays = new Set<Dealer>();
  #loop: Promise<void> = Promise.resolve();

  constructor(options: RankSubscriberOptions) {
    this.#options = options;
    this.stream = new RankStream({
      apply: options.apply,
      drop: options.drop,
      replay: options.replayEndpoint === null ? null : (from) => this.#replay(from),
    });
    this.#socket = new Subscriber({
      linger: 0,
      reconnectInterval: options.reconnectIntervalMs,
      reconnectMaxInterval: options.reconnectMaxIntervalMs,
      // Bounded: a writer that falls behind loses batches at the publisher, which shows up as a gap.
      receiveHighWaterMark: 10_000,
    });
  }

  get stats(): RankSubscriberStats {
    return { endpoint: this.#options.endpoint, state: this.#state, connects: this.#connects, disconnects: this.#disconnects };
  }

  start(): void {
    const socket = this.#socket;
    socket.events.on("connect", () => {
      this.#connects++;
      this.#state = "connected";
    });
    socket.events.on("disconnect", () => {
      if (this.#state === "closed") return;
      this.#disconnects++;
      this.#state = "disconnected";
      this.stream.reset();
      this.#options.drop("disconnect");
    });
    socket.connect(this.#options.endpoint);
    socket.subscribe(this.#options.topic);
    this.#loop = this.#receive();
  }

  async close(): Promise<void> {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.stream.close();
    for (const dealer of this.#replays) dealer.close();
    this.#socket.close();
    await this.#loop;
  }

  async #receive(): Promise<void> {
    try {
      for await (const frames of this.#socket) {
        const batch = this.#parse(frames);
        if (batch !== null) this.stream.receive(batch);
      }
    } catch (err) {
      if (this.#state !== "closed") this.#options.reject(`receive failed: ${(err as Error).message}`);
    }
  }

  #parse(frames: Buffer[]): Batch | null {
    if (frames.length !== 3) {
      this.#options.reject(`expected 3 frames [topic, seq, payload], got ${frames.length}`);
      return null;
    }
    const seq = sequence(frames[1]!);
    if (seq === null || seq < 0) {
      this.#options.reject(`sequence frame is not a non-negative 8-byte big-endian integer (${frames[1]!.length} bytes)`);
      return null;
    }
    return { seq, payload: frames[2]! };
  }

  async #replay(from: number): Promise<Batch[] | null> {
    const dealer = new Dealer({
      linger: 0,
      receiveTimeout: this.#options.replayTimeoutMs,
      sendTimeout: this.#options.replayTimeoutMs,
    });
    this.#replays.add(dealer);
    try {
      dealer.connect(this.#options.replayEndpoint!);
      const start = Buffer.alloc(8);
      start.writeBigInt64BE(BigInt(from));
      await dealer.send([Buffer.alloc(0), start]);
      const batches: Batch[] = [];
      while (batches.length <= MAX_REPLAY) {
        const frames = await dealer.receive();
        // [b"", seq, payload] or [b"", topic, seq, payload]
        if ((frames.length !== 3 && frames.length !== 4) || frames[0]!.length !== 0) {
          this.#options.reject(`replay reply: expected [b"", (topic,) seq, payload], got ${frames.length} frames`);
          return null;
        }
        const seq = sequence(frames[frames.length - 2]!);
        if (seq === null) {
          this.#options.reject("replay reply: sequence frame is not 8 bytes");
          return null;
        }
        if (seq === -1) return batches;
        batches.push({ seq, payload: frames[frames.length - 1]! });
      }
      this.#options.reject(`replay returned more than ${MAX_REPLAY} batches`);
      return null;
    } catch (err) {
      if (this.#state !== "closed") this.#options.reject(`replay from ${from} failed: ${(err as Error).message}`);
      return null;
    } finally {
      this.#replays.delete(dealer);
      dealer.close();
    }
  }
}

/** An 8-byte big-endian signed sequence number, or null when the frame is not 8 bytes. */
function sequence(frame: Buffer): number | null {
  if (frame.length !== 8) return null;
  return Number(frame.readBigInt64BE(0));
}

/** The endpoint of data-parallel rank `rank`: the same host, port + rank. */
export function rankEndpoint(endpoint: string, rank: number): string {
  if (rank === 0) return endpoint;
  const match = /^(tcp:\/\/.+):(\d+)$/.exec(endpoint);
  if (match === null) throw new RangeError(`data-parallel ranks need a tcp://host:port endpoint to offset, got ${JSON.stringify(endpoint)}`);
  const port = Number(match[2]) + rank;
  if (port > 65535) throw new RangeError(`endpoint ${endpoint}: rank ${rank}'s port ${port} is above 65535`);
  return `${match[1]}:${port}`;
}
