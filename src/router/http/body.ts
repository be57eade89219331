// Request bodies on uWebSockets.js: read whole up to a byte limit, given up on when no byte arrives for a
// while (a deadline that moves with progress, not one for the whole body), and a body over the limit read
// to its end and dropped, so that its client, still sending, reads the 413 instead of a reset connection.
//
// Invariants:
// - A body is pending from the moment its handler registers for it until its last byte, its error, or its
//   client leaving. Each pending body ends exactly once (resolved or rejected), and the sweep never touches
//   the response of a client that left.
// - uWS has a socket timeout of its own (about 10 s, that a body resets only while it arrives at 16 KB/s or
//   more). The sweep re-arms it for every pending body, so that only the limits here decide when a slow
//   body is given up on. Headers are not covered: uWS's timeout still bounds how long they may take.
// - A body holds at most `maxBytes` of memory: bytes past the limit are counted, never kept. Its bytes are
//   copied once, as they arrive, into one buffer (sized by Content-Length, else grown by doubling), so a
//   big body costs no per-chunk allocation and no final concatenation on the main thread.
import { ApiError } from "./errors.js";
import type { Exchange } from "./exchange.js";
import { IdMap } from "../../util/id-map.js";

export interface BodyLimits {
  /** Largest body accepted; a larger one gets a 413. */
  maxBytes: number;
  /** A body of which no byte arrives for this long gets a 408 (a refused one its 413), and its connection is closed. */
  idleTimeoutMs: number;
  /**
   * A body over `maxBytes` is read on and dropped, so that its client gets the 413 with the connection
   * intact, up to this many more bytes and for this long after the refusal; past either, the 413 is sent
   * and the connection closed (as nginx's lingering close does).
   */
  discardMaxBytes: number;
  discardMaxMs: number;
}

/** uWS fires its timeout 8 to 12 s after it was armed (4 s ticks); re-arming every 2 s keeps it away. */
const REARM_MS = 2_000;

interface Pending {
  ex: Exchange;
  lastProgress: number;
  lastRearm: number;
  /** When the body went over the limit; from then on it is dropped. */
  refusedAt: number | null;
  fail(err: ApiError): void;
}

/** Reads the request bodies of one server, and sweeps the pending ones for their deadlines. */
export class BodyReader {
  // Keyed by a number of its own: see IdMap for why not a Set.
  readonly #pending = new IdMap<Pending>();
  #nextId = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(readonly limits: BodyLimits) {}

  /** Starts the sweep; a server does this while it listens. */
  start(): void {
    if (this.#timer) return;
    const { idleTimeoutMs, discardMaxMs } = this.limits;
    const period = Math.max(10, Math.min(1_000, idleTimeoutMs / 4, discardMaxMs / 4));
    this.#timer = setInterval(() => this.#sweep(), period);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /**
   * Reads the whole body. Must be called synchronously in the route handler (uWS delivers the body only to
   * a handler registered there). `declared` is the request's Content-Length (0 when it has none).
   */
  read(ex: Exchange, declared: number): Promise<Buffer> {
    const { maxBytes, discardMaxBytes } = this.limits;
    return new Promise((resolve, reject) => {
      const now = performance.now();
      const id = this.#nextId;
      this.#nextId = (id + 1) >>> 0;
      const into = new GrowingBuffer(declared > 0 && declared <= maxBytes ? declared : 0);
      let dropped = 0;
      let ended = false;
      const end = () => {
        ended = true;
        this.#pending.delete(id);
      };
      const pending: Pending = {
        ex,
        lastProgress: now,
        lastRearm: now,
        refusedAt: declared > maxBytes ? now : null,
        fail: (err) => {
          end();
          reject(err);
        },
      };
      this.#pending.set(id, pending);
      ex.res.onData((chunk, isLast) => {
        if (ended) return;
        pending.lastProgress = performance.now();
        if (pending.refusedAt === null && into.size + chunk.byteLength > maxBytes) {
          pending.refusedAt = pending.lastProgress;
          into.drop();
        }
        if (pending.refusedAt !== null) {
          dropped += chunk.byteLength;
          if (isLast) pending.fail(tooLarge(maxBytes));
          else if (dropped > discardMaxBytes) pending.fail(tooLarge(maxBytes).closing());
          return;
        }
        // uWS reuses the chunk's memory after this callback returns: copy it.
        into.append(new Uint8Array(chunk));
        if (isLast) {
          end();
          resolve(into.take());
        }
      });
    });
  }

  #sweep(): void {
    const now = performance.now();
    const { idleTimeoutMs, discardMaxMs, maxBytes } = this.limits;
    for (const p of this.#pending.values()) {
      if (p.ex.aborted) p.fail(new ApiError(499, "client disconnected"));
      else if (p.refusedAt !== null && (now - p.refusedAt > discardMaxMs || now - p.lastProgress > idleTimeoutMs)) p.fail(tooLarge(maxBytes).closing());
      else if (now - p.lastProgress > idleTimeoutMs) p.fail(timedOut(idleTimeoutMs).closing());
      else if (now - p.lastRearm >= REARM_MS) {
        p.lastRearm = now;
        // pause() disarms uWS's timeout and resume() arms it afresh; reading goes on as before.
        p.ex.res.pause();
        p.ex.res.resume();
      }
    }
  }
}

/** The bytes of one body, copied in as they arrive. */
class GrowingBuffer {
  #buffer: Buffer;
  size = 0;

  constructor(expected: number) {
    this.#buffer = Buffer.allocUnsafe(expected > 0 ? expected : 16 << 10);
  }

  append(bytes: Uint8Array): void {
    const needed = this.size + bytes.byteLength;
    if (needed > this.#buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, this.#buffer.length * 2));
      this.#buffer.copy(grown, 0, 0, this.size);
      this.#buffer = grown;
    }
    this.#buffer.set(bytes, this.size);
    this.size = needed;
  }

  /** The body, once whole. */
  take(): Buffer {
    return this.size === this.#buffer.length ? this.#buffer : this.#buffer.subarray(0, this.size);
  }

  /** Lets go of the bytes so far (a body over the limit is only counted from then on). */
  drop(): void {
    this.#buffer = Buffer.alloc(0);
    this.size = 0;
  }
}

function tooLarge(limit: number): ApiError {
  return new ApiError(413, `the request body is larger than the limit of ${limit} bytes`, "invalid_request_error", "body", "body_too_large");
}

function timedOut(ms: number): ApiError {
  return new ApiError(408, `no part of the request body arrived for ${ms} ms; send the body without pausing`, "invalid_request_error", "body", "request_timeout");
}
