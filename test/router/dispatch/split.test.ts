// A split (disaggregated) request against scripted engines: what each stage is sent, what the client sees,
// the answer's cached tokens, every failure, and bookings released on every path.
import { describe, expect, it } from "vitest";
import { withRetry } from "../../../src/router/dispatch/retry.js";
import { sendAttempt, type Job } from "../../../src/router/dispatch/send.js";
import { splitRequest, type SplitNotice } from "../../../src/router/dispatch/split.js";
import { RoutingCore, Scheduler, type Attempt, type Decision, type EngineRole, type RoutablePrompt } from "../../../src/router/schedule/index.js";
import type { GenerationEvent } from "../../../src/router/types.js";
import { answers, collect, delta, failure, FakeEngine, finish, untilAborted, type Script } from "./fake-engines.js";

const job: Job = {
  tokens: new Uint32Array(64),
  sampling: { maxTokens: 5, temperature: 0.7, topP: 1, topK: -1, seed: 3, stop: [], stopTokenIds: [], ignoreEos: true, minTokens: 4 },
  maxTokens: 5,
  cacheSalt: undefined,
};
const HELD = { do_remote_prefill: true, do_remote_decode: false, remote_engine_id: "p", remote_request_id: "9", remote_block_ids: [4, 5, 6, 7] };
/** The prefill's answer: its one token (dropped), then its count and where the blocks are held. */
const prefilled = (cached: number | null, params: Record<string, unknown> | null = HELD): Script => answers(delta(1), finish(cached, 1, params ? { kvTransferParams: params } : {}));

function setup(roles: EngineRole[], scripts: Script[], overlaps: number[], fallback: "router" | "none" = "router") {
  const scheduler = new Scheduler({ random: () => 0 });
  roles.forEach((_, e) => scheduler.setAvailable(e, true));
  const core = new RoutingCore({ scheduler, cachedTokensFallback: fallback, blockSize: () => 16, roles });
  const engines = scripts.map((s) => new FakeEngine(s));
  const notices: SplitNotice[] = [];
  const prompt: RoutablePrompt = { promptTokens: 64, blocks: 4, overlaps };
  const run = (controller = new AbortController()): AsyncGenerator<GenerationEvent> => {
    const target = (engine: number) => ({ name: `e${engine}`, engine: engines[engine]! });
    const whole = (d: Decision) => withRetry(core, () => core.begin(d, prompt), prompt, (a: Attempt) => sendAttempt(core, a, target(a.engine), job, controller.signal), controller.signal, () => undefined);
    const plan = core.plan(prompt);
    if (plan?.kind !== "split") throw new Error(`not split: ${JSON.stringify(plan?.kind)}`);
    return splitRequest({ core, prompt, job, target, signal: controller.signal, whole, notice: (n) => notices.push(n) }, plan.prefill);
  };
  const load = () => roles.reduce((sum, _, e) => {
    const l = scheduler.active.load(e);
    return sum + l.requests + l.prefillBlocks + l.decodeBlocks;
  }, 0);
  const kinds = () => notices.filter((n) => n.kind !== "sent").map((n) => ("stage" in n ? `${n.kind}:${n.stage}` : n.kind));
  return { engines, run, load, notices, kinds };
}

describe("a split request", () => {
  it("prefills on the prefill engine with max_tokens 1 and do_remote_decode, then streams the decode engine's tokens with the returned params", async () => {
    // Engine 0 prefills (it holds 2 blocks), engine 1 decodes.
    const t = setup(["prefill", "decode"], [prefilled(32), answers(delta(1), delta(2), delta(2), finish(63, 5))], [2, 0]);
    const events = await collect(t.run());
    expect(t.engines[0]!.sent).toEqual([
      expect.objectContaining({ overlapBlocks: 2, kvTransferParams: { do_remote_decode: true }, sampling: expect.objectContaining({ maxTokens: 1, minTokens: 0, temperature: 0.7, seed: 3, ignoreEos: true }) }),
    ]);
    expect(t.engines[1]!.sent).toEqual([expect.objectContaining({ overlapBlocks: 0, kvTransferParams: HELD, sampling: expect.objectContaining({ maxTokens: 5, minTokens: 4 }) })]);
    // The prefill's token never reaches the client: the five tokens are the decode engine's.
    expect(events).toEqual([
      { type: "start", engine: "e1", prefillEngine: "e0", overlapBlocks: 2, promptTokens: 64, cachedTokensSource: "engine" },
      { type: "delta", text: "x", tokenCount: 1 },
      { type: "delta", text: "xx", tokenCount: 2 },
      { type: "delta", text: "xx", tokenCount: 2 },
      { type: "finish", finishReason: "length", usage: { promptTokens: 64, completionTokens: 5, cachedTokens: 32, cachedTokensSource: "engine" } },
    ]);
    expect(t.kinds()).toEqual([]);
    expect(t.load()).toBe(0);
  });

  it("reports the prefill overlap × block size, capped below the prompt, when the prefill engine gives no count", async () => {
    const t = setup(["prefill", "decode"], [prefilled(null), answers(delta(1), finish(63, 1))], [4, 0]);
    const events = await collect(t.run());
    expect(events[0]).toMatchObject({ type: "start", cachedTokensSource: "router", overlapBlocks: 4 });
    expect(events.at(-1)).toMatchObject({ usage: { cachedTokens: 63, cachedTokensSource: "router" } });
    const none = setup(["prefill", "decode"], [prefilled(null), answers(delta(1), finish(63, 1))], [4, 0], "none");
    expect((await collect(none.run())).at(-1)).toMatchObject({ usage: { cachedTokens: 0, cachedTokensSource: "none" } });
  });

  it("reports the decode engine's own count when it shows the KV transfer failed", async () => {
    const t = setup(["prefill", "decode"], [prefilled(48), answers(delta(1), finish(16, 1))], [3, 1]);
    expect((await collect(t.run())).at(-1)).toMatchObject({ usage: { cachedTokens: 16, cachedTokensSource: "engine" } });
    expect(t.kinds()).toEqual(["kv_transfer_failed"]);
  });
});

describe("failures of a split request", () => {
  it("retries a prefill engine that fails before answering on another prefill engine", async () => {
    const t = setup(["prefill", "prefill", "decode"], [answers(failure("engine_disconnected")), prefilled(0), answers(delta(1), finish(63, 1))], [2, 0, 0]);
    const events = await collect(t.run());
    expect(events[0]).toMatchObject({ engine: "e2", prefillEngine: "e1", overlapBlocks: 0 });
    expect(t.engines[2]!.sent).toHaveLength(1);
    expect(t.kinds()).toEqual(["retried:prefill"]);
    expect(t.load()).toBe(0);
  });

  it("prefills on a decode engine when no prefill engine can do it (degraded)", async () => {
    const t = setup(["prefill", "prefill", "decode"], [answers(failure("engine_error")), answers(failure("engine_disconnected")), answers(delta(1), finish(0, 1))], [0, 0, 0]);
    const events = await collect(t.run());
    expect(t.engines[2]!.sent).toEqual([expect.objectContaining({ sampling: expect.objectContaining({ maxTokens: 5 }) })]);
    expect(t.engines[2]!.sent[0]!.kvTransferParams).toBeUndefined();
    expect(events[0]).toMatchObject({ engine: "e2", prefillEngine: "e2" });
    expect(events.at(-1)).toMatchObject({ usage: { cachedTokens: 0, cachedTokensSource: "engine" } });
    expect(t.kinds()).toEqual(["retried:prefill", "prefill_unavailable"]);
    expect(t.load()).toBe(0);
  });

  it("passes a prefill engine's refusal of the request to the client without decoding it", async () => {
    const t = setup(["prefill", "decode"], [answers(failure("invalid_request")), answers(finish(0))], [0, 0]);
    expect(await collect(t.run())).toEqual([{ type: "error", code: "invalid_request", message: "engine e: invalid_request" }]);
    expect(t.engines[1]!.sent).toHaveLength(0);
    expect(t.load()).toBe(0);
  });

  it("lets the decode engine prefill when the prefill engine returned no kv_transfer_params", async () => {
    const t = setup(["prefill", "decode"], [prefilled(0, null), answers(delta(1), finish(0, 1))], [0, 0]);
    await collect(t.run());
    expect(t.engines[1]!.sent[0]!.kvTransferParams).toBeUndefined();
    expect(t.kinds()).toEqual(["no_transfer_params"]);
  });

  it("retries a decode that fails before its first token on another decode engine, with the same params", async () => {
    const t = setup(["prefill", "decode", "decode"], [prefilled(0), answers(failure("engine_disconnected")), answers(delta(1), finish(63, 1))], [0, 0, 0]);
    const events = await collect(t.run());
    expect(events[0]).toMatchObject({ engine: "e2", prefillEngine: "e0" });
    expect(t.engines[1]!.sent[0]!.kvTransferParams).toEqual(HELD);
    expect(t.engines[2]!.sent[0]!.kvTransferParams).toEqual(HELD);
    expect(t.kinds()).toEqual(["retried:decode"]);
  });

  it("ends with an error when the decode engine dies mid-stream", async () => {
    const t = setup(["prefill", "decode", "decode"], [prefilled(0), answers(delta(1), failure("engine_disconnected", 1)), answers(finish(0))], [0, 0, 0]);
    const events = await collect(t.run());
    expect(events.map((e) => e.type)).toEqual(["start", "delta", "error"]);
    expect(t.engines[2]!.sent).toHaveLength(0);
    expect(t.kinds()).toEqual(["decode_failed"]);
    expect(t.load()).toBe(0);
  });

  it("aborts the prefill when the client leaves during it, and never decodes", async () => {
    const t = setup(["prefill", "decode"], [untilAborted(0), answers(finish(0))], [0, 0]);
    const controller = new AbortController();
    const it = t.run(controller);
    const next = it.next();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(t.load()).toBeGreaterThan(0);
    controller.abort();
    expect(await next).toEqual({ done: true, value: undefined });
    expect(t.engines[1]!.sent).toHaveLength(0);
    expect(t.kinds()).toEqual(["aborted:prefill"]);
    expect(t.load()).toBe(0);
  });

  it("aborts the decode when the client leaves during it; both stages' bookings are free", async () => {
    const t = setup(["prefill", "decode"], [prefilled(0), untilAborted(2)], [0, 0]);
    const controller = new AbortController();
    const it = t.run(controller);
    expect((await it.next()).value).toMatchObject({ type: "start" });
    expect(t.load()).toBeGreaterThan(0);
    controller.abort();
    await collect({ [Symbol.asyncIterator]: () => it });
    expect(t.kinds()).toEqual(["aborted:decode"]);
    expect(t.load()).toBe(0);
  });

  it("counts the decode as aborted also when the consumer closes the stream at a token (the frontend does when a client leaves)", async () => {
    const t = setup(["prefill", "decode"], [prefilled(0), untilAborted(3)], [0, 0]);
    const controller = new AbortController();
    const it = t.run(controller);
    await it.next();
    await it.next();
    controller.abort();
    await it.return(undefined);
    expect(t.kinds()).toEqual(["aborted:decode"]);
    expect(t.load()).toBe(0);
  });
});
