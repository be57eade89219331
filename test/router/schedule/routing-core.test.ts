// The routing core's rules without an engine: budget, retry rule, cached-tokens rule, and bookings.
import { describe, expect, it } from "vitest";
import { cachedTokens, outputBudget, RoutingCore, Scheduler, shouldRetry, type RoutablePrompt } from "../../../src/router/schedule/index.js";
import { RouterError } from "../../../src/router/types.js";

function core(engines: number, fallback: "router" | "none" = "router"): RoutingCore {
  const scheduler = new Scheduler({ random: () => 0 });
  for (let e = 0; e < engines; e++) scheduler.setAvailable(e, true);
  return new RoutingCore({ scheduler, cachedTokensFallback: fallback, blockSize: () => 16 });
}

const prompt = (tokens: number, overlaps: number[]): RoutablePrompt => ({ promptTokens: tokens, blocks: Math.floor(tokens / 16), overlaps });

function totalLoad(c: RoutingCore, engines: number): number {
  let sum = 0;
  for (let e = 0; e < engines; e++) {
    const l = c.scheduler.active.load(e);
    sum += l.prefillBlocks + l.decodeBlocks + l.requests;
  }
  return sum;
}

describe("output budget", () => {
  it("is what was asked for, or the rest of the context when nothing was", () => {
    expect(outputBudget(10, 100, 1000)).toBe(10);
    expect(outputBudget(null, 100, 1000)).toBe(900);
    expect(outputBudget(900, 100, 1000)).toBe(900);
  });

  it("refuses a prompt that fills the context, naming the prompt", () => {
    for (const asked of [null, 1]) {
      const err = (() => {
        try {
          outputBudget(asked, 1000, 1000);
        } catch (e) {
          return e as RouterError;
        }
        throw new Error("not refused");
      })();
      expect(err).toBeInstanceOf(RouterError);
      expect(err).toMatchObject({ kind: "invalid_request", param: "prompt", code: "context_length_exceeded" });
      expect(err.message).toContain("maximum context length is 1000 tokens");
    }
  });

  it("refuses prompt plus asked output over the context, naming max_tokens", () => {
    expect(() => outputBudget(901, 100, 1000)).toThrow(/you requested 1001 tokens \(100 in the prompt, 901 for the completion\)/);
    try {
      outputBudget(901, 100, 1000);
    } catch (e) {
      expect(e).toMatchObject({ param: "max_tokens", code: "context_length_exceeded" });
    }
  });
});

describe("cached-tokens rule", () => {
  it("takes the engine's count first, 0 included", () => {
    expect(cachedTokens(48, 10, 16, 200, "router")).toEqual({ cachedTokens: 48, source: "engine" });
    expect(cachedTokens(0, 10, 16, 200, "router")).toEqual({ cachedTokens: 0, source: "engine" });
    expect(cachedTokens(0, 10, 16, 200, "none")).toEqual({ cachedTokens: 0, source: "engine" });
  });

  it("falls back to overlap_blocks × block_size, capped below the prompt", () => {
    expect(cachedTokens(null, 3, 16, 200, "router")).toEqual({ cachedTokens: 48, source: "router" });
    expect(cachedTokens(null, 0, 16, 200, "router")).toEqual({ cachedTokens: 0, source: "router" });
    // 4 blocks of a 64-token prompt: the engine still computes the last token.
    expect(cachedTokens(null, 4, 16, 64, "router")).toEqual({ cachedTokens: 63, source: "router" });
  });

  it("reports 0 with source none when the fallback is off", () => {
    expect(cachedTokens(null, 3, 16, 200, "none")).toEqual({ cachedTokens: 0, source: "none" });
  });

  it("predicts a stream's source from what the engine did last time", () => {
    const c = core(1);
    expect(c.expectedSource(0)).toBe("engine");
    c.begin(c.decide(prompt(64, [0]))!, prompt(64, [0])).finish(null, 64);
    expect(c.expectedSource(0)).toBe("router");
    c.begin(c.decide(prompt(64, [0]))!, prompt(64, [0])).finish(5, 64);
    expect(c.expectedSource(0)).toBe("engine");
    const off = core(1, "none");
    off.begin(off.decide(prompt(64, [0]))!, prompt(64, [0])).finish(null, 64);
    expect(off.expectedSource(0)).toBe("none");
  });
});

describe("retry rule", () => {
  it("retries an engine failure before the first token, once", () => {
    expect(shouldRetry({ code: "engine_disconnected", tokensProduced: 0 }, 0, false)).toBe(true);
    expect(shouldRetry({ code: "engine_unavailable", tokensProduced: 0 }, 0, false)).toBe(true);
    expect(shouldRetry({ code: "engine_disconnected", tokensProduced: 0 }, 1, false)).toBe(false);
  });

  it("never retries after a token, after an abort, or a refusal of the request itself", () => {
    expect(shouldRetry({ code: "engine_disconnected", tokensProduced: 1 }, 0, false)).toBe(false);
    expect(shouldRetry({ code: "engine_disconnected", tokensProduced: 0 }, 0, true)).toBe(false);
    expect(shouldRetry({ code: "invalid_request", tokensProduced: 0 }, 0, false)).toBe(false);
    expect(shouldRetry({ code: "prompt_too_long", tokensProduced: 0 }, 0, false)).toBe(false);
  });

  it("books the retry on another engine and frees the failed attempt's booking", () => {
    const c = core(2);
    const p = prompt(160, [10, 0]);
    const first = c.begin(c.decide(p)!, p);
    expect(first.engine).toBe(0);
    expect(c.scheduler.active.load(0)).toMatchObject({ requests: 1 });
    const outcome = c.retry(first, { code: "engine_disconnected", tokensProduced: 0 }, false);
    expect(outcome.kind).toBe("retry");
    if (outcome.kind !== "retry") return;
    expect(outcome.attempt.engine).toBe(1);
    expect(outcome.attempt.number).toBe(1);
    expect(c.scheduler.active.load(0)).toMatchObject({ requests: 0, prefillBlocks: 0 });
    expect(c.scheduler.active.load(1)).toMatchObject({ requests: 1, prefillBlocks: 10 });
    // A second failure is final, and frees the second booking too.
    expect(c.retry(outcome.attempt, { code: "engine_disconnected", tokensProduced: 0 }, false)).toEqual({ kind: "final" });
    expect(totalLoad(c, 2)).toBe(0);
  });

  it("says so when no other engine is left", () => {
    const c = core(1);
    const p = prompt(32, [0]);
    expect(c.retry(c.begin(c.decide(p)!, p), { code: "engine_error", tokensProduced: 0 }, false)).toEqual({ kind: "no_engine" });
    expect(totalLoad(c, 1)).toBe(0);
  });
});

describe("bookings through an attempt", () => {
  it("move from prefill to decode on the first token, grow with tokens, and are released by finish once", () => {
    const c = core(1);
    const p = prompt(160, [4]);
    const a = c.begin(c.decide(p)!, p);
    expect(c.scheduler.active.load(0)).toMatchObject({ prefillBlocks: 6, prefillTokens: 96, decodeBlocks: 0, requests: 1 });
    a.firstToken(100);
    a.generated(1, null);
    expect(c.scheduler.active.load(0)).toMatchObject({ prefillBlocks: 0, decodeBlocks: 11, requests: 1 });
    a.generated(31, 5);
    expect(c.scheduler.active.load(0)).toMatchObject({ prefillBlocks: 0, decodeBlocks: 12, requests: 1 });
    expect(a.finish(64, 160)).toEqual({ cachedTokens: 64, source: "engine" });
    a.release();
    a.finish(64, 160);
    expect(totalLoad(c, 1)).toBe(0);
  });
});

describe("prefill gate through an attempt", () => {
  const gated = (o: { policy?: "kv" | "round-robin"; prefillGate?: boolean } = {}) => {
    const scheduler = new Scheduler({ random: () => 0, ...(o.policy ? { policy: o.policy } : {}), ...(o.prefillGate !== undefined ? { prefillGate: o.prefillGate } : {}) });
    scheduler.setAvailable(0, true);
    return new RoutingCore({ scheduler, cachedTokensFallback: "router", blockSize: () => 16 });
  };
  const start = (c: RoutingCore, tokens: number) => {
    const p = prompt(tokens, [0]);
    return c.begin(c.decide(p)!, p);
  };

  it("holds a prompt that would share the step of one in flight, and sends it at that one's first token", () => {
    const c = gated();
    const first = start(c, 1000);
    expect(first.admit(() => expect.unreachable())).toBe(true);
    let sent = 0;
    const second = start(c, 1000);
    expect(second.admit(() => sent++)).toBe(false);
    expect(c.gate!.held).toBe(1);
    first.generated(1, null);
    first.firstToken(45);
    expect(sent).toBe(1);
    expect(c.gate!.inFlight(0)).toBe(1);
    second.firstToken(50);
    expect(c.gate!.busy(0)).toBe(false);
  });

  it("sends a prompt whose share of the step costs less than a step at once", () => {
    const c = gated();
    expect(start(c, 1000).admit(() => undefined)).toBe(true);
    // 16 tokens add 0.64 ms to the step at the prior's 0.04 ms a token; holding costs a 6 ms step.
    expect(start(c, 16).admit(() => expect.unreachable())).toBe(true);
  });

  it("holds a prompt behind a queue of a few steps, and leaves it to the engine behind a longer one", () => {
    const c = gated();
    // 20,000 tokens in flight end in the third step: the prompt would delay their last chunk, and is held.
    const ahead = start(c, 20_000);
    expect(ahead.admit(() => undefined)).toBe(true);
    expect(start(c, 1000).admit(() => undefined)).toBe(false);
    ahead.release();
    // 30,000 end in the fourth: an engine that busy is left to fill its steps itself.
    const c2 = gated();
    expect(start(c2, 30_000).admit(() => undefined)).toBe(true);
    expect(start(c2, 1000).admit(() => expect.unreachable())).toBe(true);
  });

  it("releases held prompts one after another, unless one is short enough to join the one before", () => {
    const c = gated();
    const sent: string[] = [];
    const first = start(c, 4000);
    first.admit(() => undefined);
    // 16 tokens delay the 4,000 by less than a step (0.64 ms): sent at once, a second prompt in flight.
    const tiny = start(c, 16);
    expect(tiny.admit(() => expect.unreachable())).toBe(true);
    // Each of these would delay both in flight: 100 tokens by 4 ms each, 8 in all, more than the 6 ms step.
    const held = [start(c, 1000), start(c, 100), start(c, 120)];
    for (const [i, name] of ["1000", "100", "120"].entries()) expect(held[i]!.admit(() => sent.push(name))).toBe(false);
    first.firstToken(100);
    tiny.firstToken(100);
    // Shortest first. The 120 delays the 100 released before it by 4.8 ms, less than a step: it joins. The
    // 1,000 would delay those two by 80 ms, and waits for their first tokens instead.
    expect(sent).toEqual(["100", "120"]);
    held[1]!.firstToken(10);
    held[2]!.firstToken(10);
    expect(sent).toEqual(["100", "120", "1000"]);
  });

  it("holds a prompt that comes while others are held for its engine, which a long queue alone would not hold", () => {
    const c = gated();
    const sent: string[] = [];
    const first = start(c, 1000);
    expect(first.admit(() => undefined)).toBe(true);
    const held = start(c, 20_000);
    expect(held.admit(() => sent.push("20000"))).toBe(false);
    // Its decision sees 21,000 tokens queued, which end in the fourth step: alone that would send it at once,
    // before the 20,000 held ahead of it.
    const later = start(c, 1000);
    expect(later.decision.chosen.features.queuedTokens).toBe(21_000);
    expect(later.admit(() => sent.push("1000"))).toBe(false);
    first.firstToken(50);
    // Released shortest first: the later, shorter one goes first, as it would have in a burst.
    expect(sent).toEqual(["1000"]);
    later.firstToken(50);
    expect(sent).toEqual(["1000", "20000"]);
  });

  it("drops a held attempt released before its turn, and never sends it", () => {
    const c = gated();
    const first = start(c, 1000);
    first.admit(() => undefined);
    const second = start(c, 1000);
    expect(second.admit(() => expect.unreachable())).toBe(false);
    second.release();
    expect(c.gate!.held).toBe(0);
    first.finish(0, 1000);
    expect(c.gate!.busy(0)).toBe(false);
    expect(totalLoad(c, 1)).toBe(0);
  });

  it("is off for the other policies, and when turned off", () => {
    for (const c of [gated({ policy: "round-robin" }), gated({ prefillGate: false })]) {
      expect(c.gate).toBeNull();
      start(c, 1000).admit(() => undefined);
      expect(start(c, 1000).admit(() => expect.unreachable())).toBe(true);
    }
  });
});
