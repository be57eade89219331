// Publishes KV-event batches as vLLM does: ZMQ PUB frames [topic, seq (8-byte big-endian), payload],
// sequence numbers from 0, and a ROUTER socket that replays buffered batches to a DEALER asking
// [b"", start_seq]. zeromq's sockets allow one send at a time, so each socket has one sending loop.
import { Publisher, Router } from "zeromq";
import type { KvEventsLayout, LogFn } from "../engine-protocol/index.js";
import { encodeKvEventBatch } from "./kv-event-encoder.js";
import type { SimKvEvent } from "./kv-events.js";

/** `topic`: [b"", topic, seq, payload], as newer vLLM sends; `legacy`: [b"", seq, payload], as older builds. */
export type ReplayFormat = "topic" | "legacy";

export interface KvPublisherOptions {
  /** ZMQ endpoint to bind, e.g. `tcp://127.0.0.1:*` (an ephemeral port) or `tcp://*:5557`. */
  endpoint: string;
  replayEndpoint: string | null;
  topic: string;
  layout: KvEventsLayout;
  replayFormat: ReplayFormat;
  /** Batches kept for replay (vLLM's buffer_steps). */
  bufferSteps: number;
  /** PUB high-water mark: past it, batches are dropped for slow subscribers. */
  hwm: number;
  dataParallelRank: number;
  log: LogFn;
  /** The batch timestamp in seconds (wall clock unless told). */
  clock?: () => number;
}

const END_SEQ = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);

function seqBytes(seq: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(seq));
  return b;
}

export class KvEventPublisher {
  private readonly pub = new Publisher();
  private readonly router: Router | null;
  private readonly topic: Buffer;
  private readonly buffer: Array<{ seq: number; payload: Buffer }> = [];
  private readonly queue: Array<[Buffer, Buffer, Buffer]> = [];
  private sending = false;
  private closed = false;
  private nextSeq = 0;
  private replayLoop: Promise<void> | null = null;
  private drained: Promise<void> = Promise.resolve();
  /** Endpoints as bound (ephemeral ports resolved). */
  endpoint = "";
  replayEndpoint: string | null = null;

  private constructor(private readonly options: KvPublisherOptions) {
    this.topic = Buffer.from(options.topic, "utf8");
    this.pub.sendHighWaterMark = options.hwm;
    this.pub.linger = 0;
    this.router = options.replayEndpoint === null ? null : new Router();
    if (this.router) this.router.linger = 0;
  }

  static async start(options: KvPublisherOptions): Promise<KvEventPublisher> {
    const publisher = new KvEventPublisher(options);
    try {
      await publisher.pub.bind(options.endpoint);
      publisher.endpoint = publisher.pub.lastEndpoint ?? options.endpoint;
      if (publisher.router && options.replayEndpoint !== null) {
        await publisher.router.bind(options.replayEndpoint);
        publisher.replayEndpoint = publisher.router.lastEndpoint ?? options.replayEndpoint;
        publisher.replayLoop = publisher.serveReplays(publisher.router);
      }
    } catch (error) {
      publisher.pub.close();
      publisher.router?.close();
      throw new Error(`cannot bind the KV-event sockets (${options.endpoint}, ${options.replayEndpoint ?? "no replay"}): ${(error as Error).message}`);
    }
    return publisher;
  }

  /** The sequence number the next batch will carry. */
  get sequence(): number {
    return this.nextSeq;
  }

  /** Encodes and queues one batch; returns its sequence number. */
  publish(events: readonly SimKvEvent[]): number {
    const seq = this.nextSeq++;
    const ts = this.options.clock ? this.options.clock() : Date.now() / 1000;
    const payload = encodeKvEventBatch(ts, events, this.options.dataParallelRank, this.options.layout);
    this.buffer.push({ seq, payload });
    if (this.buffer.length > this.options.bufferSteps) this.buffer.shift();
    if (!this.closed) {
      this.queue.push([this.topic, seqBytes(seq), payload]);
      if (!this.sending) this.drained = this.sendAll();
    }
    return seq;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.drained;
    this.closed = true;
    this.pub.close();
    this.router?.close();
    await this.replayLoop?.catch(() => undefined);
  }

  private async sendAll(): Promise<void> {
    this.sending = true;
    try {
      while (this.queue.length > 0 && !this.closed) {
        await this.pub.send(this.queue.shift()!);
      }
    } catch (error) {
      this.options.log("error", `KV-event publisher: ${(error as Error).message}`);
    } finally {
      this.sending = false;
    }
  }

  private async serveReplays(router: Router): Promise<void> {
    try {
      for await (const frames of router) {
        const [identity, , start] = frames;
        if (frames.length !== 3 || !identity || !start || start.length !== 8) {
          this.options.log("warn", `KV-event replay: ignoring a request of ${frames.length} frame(s); expected [identity, "", start_seq (8 bytes)]`);
          continue;
        }
        const from = Number(start.readBigUInt64BE());
        // A snapshot, so batches published while replying are neither skipped nor sent twice in this reply.
        for (const { seq, payload } of this.buffer.filter((b) => b.seq >= from)) {
          const reply =
            this.options.replayFormat === "topic" ? [identity, Buffer.alloc(0), this.topic, seqBytes(seq), payload] : [identity, Buffer.alloc(0), seqBytes(seq), payload];
          await router.send(reply);
        }
        const end = this.options.replayFormat === "topic" ? [identity, Buffer.alloc(0), Buffer.alloc(0), END_SEQ, Buffer.alloc(0)] : [identity, Buffer.alloc(0), END_SEQ, Buffer.alloc(0)];
        await router.send(end);
      }
    } catch (error) {
      if (!this.closed) this.options.log("error", `KV-event replay socket: ${(error as Error).message}`);
    }
  }
}
