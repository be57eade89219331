import type { HttpResponse } from "uWebSockets.js";
import { LeanAbortSignal, type AbortSignalLike } from "../../util/abort.js";
import { statusLine, type ApiError } from "./errors.js";

export type Headers = Record<string, string>;

/**
 * Sent with every response on a connection that stays open. uWebSockets.js closes a keep-alive connection
 * after 10 s without traffic, a limit fixed in its build, and says nothing of it; a client that keeps idle
 * connections longer (aiohttp: 15 s by default) can send its next request just as the close arrives and
 * see ECONNRESET instead of an answer. Told the server's timeout, undici (Node's fetch)
 * closes an idle connection first, 2 s before the time given; the margin below covers slower clients.
 */
export const KEEP_ALIVE = "timeout=8";

/**
 * One HTTP request/response on uWebSockets.js. uWS hands out a response object that must not be touched
 * after the client goes away and must be corked when written from async code; this wraps both rules, and
 * turns a client disconnect into an abort signal that cancels the engine request behind it.
 */
export class Exchange {
  #aborted = false;
  #responded = false;
  /** Made when first asked for: most requests (health checks, errors) never need one. */
  #signal: LeanAbortSignal | null = null;

  /** A HEAD request: answered as its GET would be, without the body. */
  head = false;

  constructor(readonly res: HttpResponse) {
    res.onAborted(() => {
      this.#aborted = true;
      this.#signal?.abort(new Error("client disconnected"));
    });
  }

  /** Aborted when the client disconnects before the response has been fully sent. */
  get signal(): AbortSignalLike {
    if (!this.#signal) {
      this.#signal = new LeanAbortSignal();
      if (this.#aborted) this.#signal.abort(new Error("client disconnected"));
    }
    return this.#signal;
  }

  get open(): boolean {
    return !this.#aborted && !this.#responded;
  }

  /** Sends a complete response (its headers alone for HEAD). `close` also closes the connection. */
  send(status: number, body: string, headers: Headers, close = false): void {
    if (!this.open) return;
    this.#responded = true;
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status));
      if (!close) this.res.writeHeader("keep-alive", KEEP_ALIVE);
      for (const key in headers) this.res.writeHeader(key, headers[key]!);
      if (this.head) {
        // The length the GET would have. endWithoutBody() of uWS 20.30 sends nothing at all when given any
        // argument; no HEAD answer needs the connection closed (HEAD routes read no body).
        this.res.writeHeader("content-length", String(Buffer.byteLength(body)));
        this.res.endWithoutBody();
      } else {
        this.res.end(body, close);
      }
    });
  }

  json(status: number, value: unknown, headers: Headers = {}): void {
    this.send(status, JSON.stringify(value), { "content-type": "application/json", ...headers });
  }

  error(err: ApiError, headers: Headers = {}): void {
    this.send(err.status, JSON.stringify(err.toBody()), { "content-type": "application/json", ...headers }, err.closeConnection);
  }

  /** Starts a server-sent-event stream; headers go out with the first frame. */
  stream(headers: Headers): SseStream {
    this.#responded = true;
    return new SseStream(this, headers);
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  /** Drops the connection (a client too slow to read its stream). uWS then runs the abort handler. */
  close(): void {
    if (!this.#aborted) this.res.close();
  }
}

/**
 * `data: {json}\n\n` frames with backpressure: `send` returns a promise when uWS had to buffer the frame,
 * and the caller stops pulling from the engine until the client has drained it. A slow client therefore
 * holds at most one buffered frame here, not the whole answer.
 */
export class SseStream {
  #headersSent = false;
  #ended = false;

  constructor(
    private readonly exchange: Exchange,
    private readonly headers: Headers,
  ) {}

  send(value: unknown): Promise<void> | undefined {
    return this.#write(`data: ${JSON.stringify(value)}\n\n`);
  }

  /** Ends the stream with `data: [DONE]`. */
  end(): void {
    this.#finish("data: [DONE]\n\n");
  }

  /** Ends the stream at once (after an error frame, or when giving up on a client). */
  #finish(last: string): void {
    if (this.#ended || this.exchange.aborted) return;
    this.#ended = true;
    const res = this.exchange.res;
    res.cork(() => {
      this.#writeHeaders();
      res.end(last);
    });
  }

  #write(frame: string): Promise<void> | undefined {
    if (this.#ended || this.exchange.aborted) return undefined;
    const res = this.exchange.res;
    let ok = true;
    res.cork(() => {
      this.#writeHeaders();
      ok = res.write(frame);
    });
    if (ok) return undefined;
    return new Promise((resolve) => {
      const done = () => resolve();
      this.exchange.signal.addEventListener("abort", done, { once: true });
      res.onWritable(() => {
        this.exchange.signal.removeEventListener("abort", done);
        resolve();
        return true;
      });
    });
  }

  #writeHeaders(): void {
    if (this.#headersSent) return;
    this.#headersSent = true;
    const res = this.exchange.res;
    res.writeStatus("200 OK");
    res.writeHeader("keep-alive", KEEP_ALIVE);
    res.writeHeader("content-type", "text/event-stream");
    res.writeHeader("cache-control", "no-cache");
    for (const key in this.headers) res.writeHeader(key, this.headers[key]!);
  }
}
