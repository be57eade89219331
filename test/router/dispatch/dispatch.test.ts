// Sending and retrying attempts against fake engines: the routing core's retry rule and bookings as the
// live router drives them, without sockets.
import { describe, expect, it } from "vitest";
import { withRetry } from "../../../src/router/dispatch/retry.js";
import { sendAttempt, type Job } from "../../../src/router/dispatch/send.js";
import { RoutingCore, Scheduler, type Attempt, type RoutablePrompt } from "../../../src/router/schedule/index.js";
import type { GenerationEvent } from "../../../src/router/types.js";
import { answers, collect, delta, failure, FakeEngine, finish, untilAborted, type Script } from "./fake-engines.js";

const job: Job = {
  tokens: new Uint32Array(64),
  sampling: { maxTokens: 2, temperature: 0, topP: 1, topK: -1, seed: null, stop: [], stopTokenIds: [], ignoreEos: false, minTokens: 0 },
  maxTokens: 2,
  cacheSalt: undefined,
};
const prompt: RoutablePrompt = { promptTokens: 64, blocks: 4, overlaps: [4, 0, 0] };

function setup(scripts: Script[], fallback: "router" | "none" = "router") {
  const scheduler = new Scheduler({ random: () => 0 });
  scripts.forEach((_, e) => scheduler.setAvailable(e, true));
  const core = new RoutingCore({ scheduler, cachedTokensFallback: fallback, blockSize: () => 16 });
  const engines = scripts.map((s) => new FakeEngine(s));
  const retries: number[] = [];
  const run = (controller = new AbortController()): AsyncGenerator<GenerationEvent> => {
    const send = (a: Attempt) => sendAttempt(core, a, { name: `e${a.engine}`, engine: engines[a.engine]! }, job, controller.signal);
    return withRetry(core, () => core.beginTogether([prompt])[0]!, prompt, send, controller.signal, (failed) => retries.push(failed.engine));
  };
  const load = () => scripts.reduce((sum, _, e) => {
    const l = scheduler.active.load(e);
    return sum + l.requests + l.prefillBlocks + l.decodeBlocks;
  }, 0);
  return { core, engines, retries, run, load };
}

describe("retry", () => {
  it("tries another engine when the first fails before its first token, and the client sees only the second", async () => {
    const t = setup([answers(failure("engine_disconnected")), answers(delta(1), delta(1), finish(0))]);
    const events = await collect(t.run());
    expect(t.retries).toEqual([0]);
    expect(t.engines[0]!.sent).toHaveLength(1);
    expect(t.engines[1]!.sent).toHaveLength(1);
    expect(events.map((e) => e.type)).toEqual(["start", "delta", "delta", "finish"]);
    expect(events[0]).toMatchObject({ engine: "e1", overlapBlocks: 0 });
    // The retry is sent the same job, with the new engine's overlap.
    expect(t.engines[1]!.sent[0]).toMatchObject({ overlapBlocks: 0, sampling: { maxTokens: 2 } });
    expect(t.engines[0]!.sent[0]).toMatchObject({ overlapBlocks: 4 });
    expect(t.load()).toBe(0);
  });

  it("never retries once a token has reached the client", async () => {
    const t = setup([answers(delta(1), failure("engine_disconnected", 1)), answers(finish(0))]);
    const events = await collect(t.run());
    expect(t.retries).toEqual([]);
    expect(t.engines[1]!.sent).toHaveLength(0);
    expect(events.map((e) => e.type)).toEqual(["start", "delta", "error"]);
    expect(events[2]).toMatchObject({ code: "engine_disconnected" });
    expect(t.load()).toBe(0);
  });

  it("retries only once: a second failure is reported", async () => {
    const t = setup([answers(failure("engine_error")), answers(failure("engine_unavailable")), answers(finish(0))]);
    const events = await collect(t.run());
    expect(t.retries).toEqual([0]);
    expect(t.engines[2]!.sent).toHaveLength(0);
    expect(events).toEqual([{ type: "error", code: "engine_unavailable", message: "engine e: engine_unavailable" }]);
    expect(t.load()).toBe(0);
  });

  it("does not retry a request the engine refused as bad", async () => {
    const t = setup([answers(failure("invalid_request")), answers(finish(0))]);
    expect(await collect(t.run())).toEqual([{ type: "error", code: "invalid_request", message: "engine e: invalid_request" }]);
    expect(t.engines[1]!.sent).toHaveLength(0);
    expect(t.load()).toBe(0);
  });

  it("is decided and booked on first read, so concurrent requests see each other's load", async () => {
    // Engines that stay silent until aborted: the two requests are both in prefill, with nothing learned.
    const t = setup([untilAborted(0), untilAborted(0), untilAborted(0)]);
    // Prompts that no engine holds: with every engine idle and alike, the first goes to engine 0; once it
    // is booked there, the second must see that load and go elsewhere.
    const cold: RoutablePrompt = { promptTokens: 64, blocks: 4, overlaps: [0, 0, 0] };
    const controller = new AbortController();
    const run = (): AsyncGenerator<GenerationEvent> => {
      const send = (a: Attempt) => sendAttempt(t.core, a, { name: `e${a.engine}`, engine: t.engines[a.engine]! }, job, controller.signal);
      return withRetry(t.core, () => t.core.beginTogether([cold])[0]!, cold, send, controller.signal, () => undefined);
    };
    const first = run();
    const second = run();
    const pending = [first.next(), second.next()];
    expect(t.engines.map((e) => e.sent.length)).toEqual([1, 1, 0]);
    expect([0, 1, 2].map((e) => t.core.scheduler.active.load(e).requests)).toEqual([1, 1, 0]);
    controller.abort();
    await Promise.all(pending);
    expect(t.load()).toBe(0);
  });

  it("answers no_engine_available when no engine is up when it is first read", async () => {
    const t = setup([answers(finish(0))]);
    t.core.scheduler.setAvailable(0, false);
    expect(await collect(t.run())).toEqual([{ type: "error", code: "no_engine_available", message: "no engine is available: none is connected and healthy" }]);
  });

  it("awaits a first attempt decided later, and says nothing to a client that left before it was decided", async () => {
    const t = setup([answers(delta(1), finish(0))]);
    const send = (a: Attempt) => sendAttempt(t.core, a, { name: `e${a.engine}`, engine: t.engines[a.engine]! }, job, new AbortController().signal);
    const later = () => new Promise<Attempt | null>((resolve) => setImmediate(() => resolve(t.core.beginTogether([prompt])[0]!)));
    const events = await collect(withRetry(t.core, later, prompt, send, new AbortController().signal, () => undefined));
    expect(events.map((e) => e.type)).toEqual(["start", "delta", "finish"]);
    const gone = new AbortController();
    gone.abort();
    expect(await collect(withRetry(t.core, () => Promise.resolve(null), prompt, send, gone.signal, () => undefined))).toEqual([]);
    expect(await collect(withRetry(t.core, () => Promise.resolve(null), prompt, send, new AbortController().signal, () => undefined))).toMatchObject([{ code: "no_engine_available" }]);
    expect(t.load()).toBe(0);
  });

  it("answers engine_unavailable when no other engine is left to retry on", async () => {
    const t = setup([answers(failure("engine_disconnected"))]);
    expect(await collect(t.run())).toEqual([{ type: "error", code: "engine_unavailable", message: "the engine failed before answering and no other engine is available" }]);
    expect(t.load()).toBe(0);
  });
});

describe("bookings are released on every path", () => {
  it("on finish, with the booking holding decode blocks while tokens stream", async () => {
    const t = setup([answers(delta(1), delta(1), finish(16))]);
    const it = t.run();
    expect((await it.next()).value).toMatchObject({ type: "start" });
    expect(t.load()).toBeGreaterThan(0);
    const rest = await collect({ [Symbol.asyncIterator]: () => it });
    expect(rest.at(-1)).toMatchObject({ type: "finish", usage: { cachedTokens: 16, cachedTokensSource: "engine" } });
    expect(t.load()).toBe(0);
  });

  it("on an abort mid-stream", async () => {
    const t = setup([untilAborted(2)]);
    const controller = new AbortController();
    const it = t.run(controller);
    await it.next();
    await it.next();
    expect(t.load()).toBeGreaterThan(0);
    controller.abort();
    expect(await collect({ [Symbol.asyncIterator]: () => it })).toEqual([{ type: "delta", text: "x", tokenCount: 1 }]);
    expect(t.load()).toBe(0);
  });

  it("when the consumer stops reading", async () => {
    const t = setup([untilAborted(5)]);
    const it = t.run();
    await it.next();
    await it.next();
    await it.return(undefined);
    expect(t.load()).toBe(0);
  });

  it("and nothing is booked for a stream never read", async () => {
    const t = setup([answers(finish(0))]);
    const it = t.run();
    expect(t.load()).toBe(0);
    await it.return(undefined);
    expect(t.load()).toBe(0);
    expect(t.engines[0]!.sent).toHaveLength(0);
  });
});

describe("cached tokens in the answer", () => {
  it("takes the engine's count, 0 included", async () => {
    const t = setup([answers(delta(1), finish(0))]);
    expect((await collect(t.run())).at(-1)).toMatchObject({ usage: { cachedTokens: 0, cachedTokensSource: "engine" } });
  });

  it("falls back to the router's estimate, capped below the prompt, when the engine gives none", async () => {
    const t = setup([answers(delta(1), finish(null))]);
    // Engine 0 holds all 4 blocks of the 64-token prompt: 64, capped to 63.
    expect((await collect(t.run())).at(-1)).toMatchObject({ usage: { cachedTokens: 63, cachedTokensSource: "router" } });
  });

  it("reports 0 from source none with the fallback off", async () => {
    const t = setup([answers(delta(1), finish(null))], "none");
    expect((await collect(t.run())).at(-1)).toMatchObject({ usage: { cachedTokens: 0, cachedTokensSource: "none" } });
  });
});
