// The stall watch's rule on request streams the test drives by hand: when an engine counts as stalled,
// what keeps it moving, and how it comes back. Time is given to check() as an offset from now.
import { describe, expect, it } from "vitest";
import type { EngineEvent } from "../../../src/router/dispatch/engine.js";
import { StallWatch, type StallChange } from "../../../src/router/dispatch/stall-watch.js";

const STALL_MS = 1000;

/** A request stream the test feeds; `returned` says whether its consumer let go of it (an abort). */
class Feed implements AsyncIterable<EngineEvent> {
  readonly #queue: EngineEvent[] = [];
  #wake: (() => void) | null = null;
  returned = false;
  push(event: EngineEvent): void {
    this.#queue.push(event);
    this.#wake?.();
  }
  [Symbol.asyncIterator](): AsyncIterator<EngineEvent> {
    return {
      next: async () => {
        while (this.#queue.length === 0 && !this.returned) await new Promise<void>((resolve) => (this.#wake = resolve));
        if (this.returned) return { done: true, value: undefined };
        return { done: false, value: this.#queue.shift()! };
      },
      return: async () => {
        this.returned = true;
        this.#wake?.();
        return { done: true, value: undefined };
      },
    };
  }
}

const delta: EngineEvent = { type: "delta", tokenIds: [1], text: "x" };
const finish: EngineEvent = { type: "finish", finishReason: "length", stopReason: null, usage: { promptTokens: 1, completionTokens: 1, cachedTokens: null } };
const tick = () => new Promise((resolve) => setImmediate(resolve));

function setup() {
  const changes: [number, StallChange["kind"]][] = [];
  const watch = new StallWatch({ stallMs: STALL_MS, onChange: (engine, change) => changes.push([engine, change.kind]) });
  /** A request to `engine` whose consumer keeps asking for events; resolves with each event it gets. */
  const request = (engine: number, expectMs = 0) => {
    const feed = new Feed();
    const iterator = watch.track(engine, feed, expectMs)[Symbol.asyncIterator]();
    const got: EngineEvent[] = [];
    let asking = true;
    const pump = (async () => {
      for (;;) {
        if (!asking) await new Promise((resolve) => setTimeout(resolve, 5));
        else {
          const r = await iterator.next();
          if (r.done) return;
          got.push(r.value);
          if (r.value.type !== "delta") return;
        }
      }
    })();
    return {
      feed,
      got,
      pump,
      iterator,
      /** The consumer stops asking (a slow client), or asks again. */
      asking: (on: boolean) => (asking = on),
    };
  };
  const at = (ms: number) => watch.check(performance.now() + ms);
  return { watch, changes, request, at };
}

describe("StallWatch", () => {
  it("calls a decoding engine stalled once its waiting stream has had no event for the timeout", async () => {
    const { watch, changes, request, at } = setup();
    const r = request(0);
    r.feed.push(delta);
    await tick();
    at(STALL_MS - 100);
    expect(changes).toEqual([]);
    at(STALL_MS + 100);
    expect(changes).toEqual([[0, "stalled"]]);
    expect(watch.stalled(0)).toBe(true);
    at(STALL_MS + 500);
    expect(changes).toHaveLength(1); // reported once
    r.feed.push(delta);
    await tick();
    expect(changes).toEqual([[0, "stalled"], [0, "recovered"]]);
    expect(watch.stalled(0)).toBe(false);
  });

  it("gives a request without its first token its predicted TTFT twice over, on top of the timeout", async () => {
    const { changes, request, at } = setup();
    request(0, 3000);
    await tick();
    at(STALL_MS + 2 * 3000 - 200);
    expect(changes).toEqual([]);
    at(STALL_MS + 2 * 3000 + 200);
    expect(changes).toEqual([[0, "stalled"]]);
  });

  it("is kept moving by any of the engine's streams, and never calls a stream late whose consumer is not asking", async () => {
    const { changes, request, at } = setup();
    const waiting = request(0);
    const slowClient = request(0);
    waiting.feed.push(delta);
    slowClient.feed.push(delta);
    await tick();
    slowClient.asking(false);
    slowClient.feed.push(delta);
    await tick();
    // Another stream of the same engine had an event just now: the engine moves.
    const other = request(0);
    other.feed.push(delta);
    await tick();
    at(STALL_MS - 50);
    expect(changes).toEqual([]);
    // Only the slow client's stream is left: no one waits on the engine.
    waiting.feed.push(finish);
    other.feed.push(finish);
    await Promise.all([waiting.pump, other.pump]);
    at(STALL_MS * 5);
    expect(changes).toEqual([]);
  });

  it("lets a stalled engine whose requests all ended take one request, and stalls it again until that one moves", async () => {
    const { watch, changes, request, at } = setup();
    const stuck = request(0);
    await tick();
    at(STALL_MS + 100);
    expect(changes).toEqual([[0, "stalled"]]);
    // The client leaves: its consumer lets go of the stream, which reaches the engine as an abort.
    await stuck.iterator.return!();
    expect(stuck.feed.returned).toBe(true);
    expect(changes).toEqual([[0, "stalled"], [0, "probing"]]);
    expect(watch.stalled(0)).toBe(false);
    const probe = request(0);
    expect(changes.at(-1)).toEqual([0, "stalled"]);
    probe.feed.push(delta);
    await tick();
    expect(changes.at(-1)).toEqual([0, "recovered"]);
  });

  it("keeps engines apart, and counts an idle engine's silence from its next request only", async () => {
    const { changes, request, at } = setup();
    const a = request(0);
    a.feed.push(delta);
    a.feed.push(finish);
    await a.pump;
    // Engine 0 has been silent since, but it has nothing in flight; engine 1 is stuck.
    request(1);
    await tick();
    at(STALL_MS + 100);
    expect(changes).toEqual([[1, "stalled"]]);
  });

  it("is off at 0", async () => {
    const watch = new StallWatch({ stallMs: 0, onChange: () => expect.unreachable() });
    const feed = new Feed();
    expect(watch.track(0, feed, 0)).toBe(feed);
    expect(() => new StallWatch({ stallMs: -1, onChange: () => undefined })).toThrow(/stallMs must be 0 or more/);
  });
});
