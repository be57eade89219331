// The async-iterable stream of one request's events, fed by EngineClient.
import type { EngineEvent } from "./types.js";

export interface StreamHooks {
  /** The consumer stopped early (break out of for-await, or return()): the request should be aborted. */
  cancel(): void;
  /** The consumer took `count` buffered events. */
  consumed(count: number): void;
}

/**
 * Events are buffered until the consumer asks for them. The stream ends after a finish or an error event,
 * or silently, at once, when the request was aborted by its signal. It can be iterated once.
 */
export class RequestStream implements AsyncIterable<EngineEvent> {
  private readonly queue: EngineEvent[] = [];
  private waiting: ((result: IteratorResult<EngineEvent>) => void) | null = null;
  private done = false;
  private iterated = false;
  /** Output tokens received so far. */
  tokensProduced = 0;

  constructor(private readonly hooks: StreamHooks) {}

  /** True once the terminal event was queued or the stream was ended. */
  get ended(): boolean {
    return this.done;
  }

  /** Events queued and not yet taken by the consumer. */
  get buffered(): number {
    return this.queue.length;
  }

  /** Hands an event to a waiting consumer, or queues it; true when it was queued. */
  push(event: EngineEvent): boolean {
    if (this.done) return false;
    if (event.type === "delta") this.tokensProduced += event.tokenIds.length;
    else this.done = true;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve({ value: event, done: false });
      return false;
    }
    this.queue.push(event);
    return true;
  }

  /**
   * Ends the stream at once, its request aborted: events already queued are dropped, so the consumer sees
   * nothing after the abort (the client has already released them from its buffered count).
   */
  end(): void {
    if (this.done) return;
    this.done = true;
    this.queue.length = 0;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve({ value: undefined, done: true });
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<EngineEvent> {
    if (this.iterated) throw new Error("a request stream can be iterated only once");
    this.iterated = true;
    return {
      next: () => {
        const event = this.queue.shift();
        if (event) {
          this.hooks.consumed(1);
          return Promise.resolve({ value: event, done: false });
        }
        if (this.done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => (this.waiting = resolve));
      },
      return: () => {
        const left = this.queue.length;
        this.queue.length = 0;
        if (left > 0) this.hooks.consumed(left);
        if (!this.done) {
          this.done = true;
          this.hooks.cancel();
        }
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
