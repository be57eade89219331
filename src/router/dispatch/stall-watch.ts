// Engines whose requests stopped moving: an engine that is connected but makes no progress (stopped with
// SIGSTOP, a hung GPU loop behind a live socket) would otherwise keep getting new requests until its
// connection times out, its booked load frozen while the others' grows. The fleet wraps every engine's
// request streams here, whatever the engine speaks, so the rule is the same for all of them.
//
// The rule. A stream is overdue when its consumer has been waiting on the engine for longer than it should:
// `stallMs` since its last event once it has produced a token (the engine steps every sequence it decodes),
// `stallMs` plus twice the time model's predicted TTFT since it was sent before that (a long prefill is not
// a stall). An engine is stalled when one of its streams is overdue and none of its streams has had an
// event for `stallMs` (counted from when it last went from idle to busy). A stream whose consumer is not
// asking (a slow client holding the router back) is never overdue.
//
// Leaving the state. Any event from the engine ends the stall: it is moving again. A stalled engine whose
// streams all end without one (their clients left) is let back for one request, a probe: the next request
// sent to it makes it stalled again until that request moves.
//
// Invariants: a stream is counted until its last event, its consumer's return, or its error, and then
// never again; every state change is reported once, in order: stalled, then probing or recovered.
import type { Engine, EngineEvent, EngineListener, GenerateOptions, GenerateRequest } from "./engine.js";
import { IdMap } from "../../util/id-map.js";

export type StallChange =
  /** New requests should not go to the engine. */
  | { kind: "stalled"; reason: string }
  /** Stalled, but its requests all ended: one more may go to it, to see. */
  | { kind: "probing" }
  /** It moved again. */
  | { kind: "recovered" };

export interface StallWatchOptions {
  /** How long an engine may leave a waiting consumer without an event; 0 turns the watch off. */
  stallMs: number;
  onChange(engine: number, change: StallChange): void;
}

interface Stream {
  sentAt: number;
  /** Its first token has arrived. */
  started: boolean;
  /** The time model's TTFT for it, when it was sent. */
  expectMs: number;
  /** Since when its consumer has been waiting for its next event; null while it is not asking. */
  waitingSince: number | null;
}

interface EngineProgress {
  /** By a number of their own (see IdMap for why not a Set). */
  streams: IdMap<Stream>;
  /** The last event of any of its streams, or when it last went from no stream to one. */
  lastActivity: number;
  state: "moving" | "stalled" | "probing";
}

export class StallWatch {
  readonly stallMs: number;
  readonly #onChange: StallWatchOptions["onChange"];
  readonly #engines = new Map<number, EngineProgress>();
  #nextStream = 0;
  #timer: NodeJS.Timeout | null = null;

  constructor(options: StallWatchOptions) {
    if (!(options.stallMs >= 0)) throw new RangeError(`stallMs must be 0 or more, got ${options.stallMs}`);
    this.stallMs = options.stallMs;
    this.#onChange = options.onChange;
  }

  /** Checks every engine a few times per `stallMs`, until `stop`. */
  start(): void {
    if (this.stallMs === 0 || this.#timer) return;
    this.#timer = setInterval(() => this.check(performance.now()), Math.max(50, this.stallMs / 4));
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Whether new requests should stay away from the engine (stalled and not probing). */
  stalled(engine: number): boolean {
    return this.#engines.get(engine)?.state === "stalled";
  }

  /** Forgets a stall: the engine reconnected, or left. Its streams are still counted until they end. */
  reset(engine: number): void {
    const e = this.#engines.get(engine);
    if (e) e.state = "moving";
  }

  /** Applies the rule to every engine at time `now` (milliseconds, performance.now()). */
  check(now: number): void {
    for (const [id, e] of this.#engines) {
      if (e.state !== "moving" || e.streams.size === 0 || now - e.lastActivity < this.stallMs) continue;
      let overdue = 0;
      for (const s of e.streams.values()) {
        if (s.waitingSince === null) continue;
        if (s.started ? now - s.waitingSince >= this.stallMs : now - s.sentAt >= this.stallMs + 2 * s.expectMs) overdue++;
      }
      if (overdue === 0) continue;
      e.state = "stalled";
      const silent = ((now - e.lastActivity) / 1000).toFixed(1);
      this.#onChange(id, { kind: "stalled", reason: `no progress for ${silent} s on ${overdue} of its ${e.streams.size} requests in flight` });
    }
  }

  /** Counts a request's events from now on; `events` is what the engine's generate() returned. */
  track(engine: number, events: AsyncIterable<EngineEvent>, expectFirstTokenMs: number): AsyncIterable<EngineEvent> {
    if (this.stallMs === 0) return events;
    const now = performance.now();
    const e = this.#progress(engine, now);
    const stream: Stream = { sentAt: now, started: false, expectMs: Math.max(0, expectFirstTokenMs), waitingSince: null };
    const streamId = this.#nextStream;
    this.#nextStream = (streamId + 1) >>> 0;
    e.streams.set(streamId, stream);
    if (e.state === "probing") {
      e.state = "stalled";
      this.#onChange(engine, { kind: "stalled", reason: "probing: one request sent to see whether it moves again" });
    }
    let open = true;
    const close = () => {
      if (!open) return;
      open = false;
      e.streams.delete(streamId);
      if (e.state === "stalled" && e.streams.size === 0) {
        e.state = "probing";
        this.#onChange(engine, { kind: "probing" });
      }
    };
    const inner = events[Symbol.asyncIterator]();
    const iterator: AsyncIterator<EngineEvent> = {
      next: async () => {
        if (open) stream.waitingSince = performance.now();
        let result: IteratorResult<EngineEvent>;
        try {
          result = await inner.next();
        } catch (err) {
          close();
          throw err;
        } finally {
          stream.waitingSince = null;
        }
        if (result.done) {
          close();
          return result;
        }
        if (open) {
          e.lastActivity = performance.now();
          if (result.value.type === "delta") stream.started = true;
          if (e.state !== "moving") {
            e.state = "moving";
            this.#onChange(engine, { kind: "recovered" });
          }
          if (result.value.type !== "delta") close();
        }
        return result;
      },
      return: async (value?: unknown) => {
        close();
        return inner.return ? inner.return(value) : { done: true, value: undefined };
      },
    };
    return { [Symbol.asyncIterator]: () => iterator };
  }

  #progress(engine: number, now: number): EngineProgress {
    let e = this.#engines.get(engine);
    if (!e) this.#engines.set(engine, (e = { streams: new IdMap(), lastActivity: now, state: "moving" }));
    // An idle engine owes nothing: its silence counts from its first request on.
    if (e.streams.size === 0) e.lastActivity = now;
    return e;
  }
}

/** An engine whose request streams the watch counts: what the fleet hands to the dispatcher. */
export class WatchedEngine implements Engine {
  constructor(
    readonly inner: Engine,
    private readonly id: number,
    private readonly watch: StallWatch,
  ) {}

  get url(): string {
    return this.inner.url;
  }

  start(listener: EngineListener): void {
    this.inner.start(listener);
  }

  generate(request: GenerateRequest, options: GenerateOptions): AsyncIterable<EngineEvent> {
    return this.watch.track(this.id, this.inner.generate(request, options), options.expectFirstTokenMs ?? 0);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
