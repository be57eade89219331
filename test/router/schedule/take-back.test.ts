// Taking an engine back from long prompts: the registry against a simple reference, and the routing core's
// use of it (scoring, pausing and resuming through the attempt's handler, the booking, the cached-tokens rule).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MAX_HOLDERS, RoutingCore, Scheduler, TAKE_BACK_TOKENS, TakeBacks, type RoutablePrompt, type TakeBackEntry } from "../../../src/router/schedule/index.js";

/** A handler that records its calls, `elapsed` ms after its send. */
function recorder(elapsed = 0) {
  const calls: string[] = [];
  return { calls, handler: { elapsedMs: () => elapsed, pause: () => calls.push("pause"), resume: () => calls.push("resume") } };
}

const entry = (engine: number, tokens: number, handler: TakeBackEntry["handler"]): TakeBackEntry => ({ engine, tokens, blocks: Math.floor(tokens / 16), left: tokens, handler, held: 0, holders: null });
const MS_PER_TOKEN = { prefillMsPerToken: 0.04 };

describe("TakeBacks", () => {
  it("pauses the engine's long prompts for a short one and resumes them once its last holder lets go", () => {
    const t = new TakeBacks();
    const a = recorder();
    const b = recorder();
    const other = recorder();
    t.add(entry(0, 10_000, a.handler));
    t.add(entry(0, 6_000, b.handler));
    t.add(entry(1, 9_000, other.handler));
    expect(t.withheld(0, MS_PER_TOKEN)).toEqual({ tokens: 16_000, blocks: 625 + 375, requests: 2 });
    const s1 = {};
    const s2 = {};
    t.takeBack(0, s1, MS_PER_TOKEN);
    expect([a.calls, b.calls, other.calls]).toEqual([["pause"], ["pause"], []]);
    expect(t.pausedOn(0)).toBe(2);
    // A second short prompt while they are paused: they wait for it too, and are not paused again.
    t.takeBack(0, s2, MS_PER_TOKEN);
    t.letGo(s1);
    expect(a.calls).toEqual(["pause"]);
    t.letGo(s2);
    expect([a.calls, b.calls]).toEqual([["pause", "resume"], ["pause", "resume"]]);
    expect(t.pausedOn(0)).toBe(0);
    t.letGo(s2);
    expect(a.calls).toEqual(["pause", "resume"]);
    expect(t.pauses).toBe(2);
  });

  it("leaves alone a prompt that has, by the time model's rate, little left to compute", () => {
    const t = new TakeBacks();
    // 10,000 tokens, sent 300 ms ago at 0.04 ms a token: about 2,500 left.
    const nearlyDone = recorder(300);
    t.add(entry(0, 10_000, nearlyDone.handler));
    expect(t.withheld(0, MS_PER_TOKEN).requests).toBe(0);
    t.takeBack(0, {}, MS_PER_TOKEN);
    expect(nearlyDone.calls).toEqual([]);
    expect(10_000 - 300 / MS_PER_TOKEN.prefillMsPerToken).toBeLessThanOrEqual(TAKE_BACK_TOKENS);
  });

  it("never resumes a prompt that ended while paused", () => {
    const t = new TakeBacks();
    const r = recorder();
    const e = entry(0, 10_000, r.handler);
    t.add(e);
    const holder = {};
    t.takeBack(0, holder, MS_PER_TOKEN);
    t.remove(e);
    expect(t.pausedOn(0)).toBe(0);
    t.letGo(holder);
    expect(r.calls).toEqual(["pause"]);
    expect(t.withheld(0, MS_PER_TOKEN).requests).toBe(0);
  });

  it("lets one prompt wait for at most MAX_HOLDERS short ones", () => {
    const t = new TakeBacks();
    const r = recorder();
    t.add(entry(0, 50_000, r.handler));
    for (let i = 0; i < MAX_HOLDERS + 3; i++) {
      const holder = {};
      t.takeBack(0, holder, MS_PER_TOKEN);
      t.letGo(holder);
    }
    expect(r.calls).toEqual(Array.from({ length: MAX_HOLDERS }, () => ["pause", "resume"]).flat());
    expect(t.withheld(0, MS_PER_TOKEN).requests).toBe(0);
  });

  it("pauses and resumes as a simple reference says, whatever the order of events", () => {
    type Op = { kind: "add"; id: number } | { kind: "remove"; id: number } | { kind: "take"; holder: number } | { kind: "letGo"; holder: number };
    const op = fc.oneof(
      fc.record({ kind: fc.constant("add" as const), id: fc.integer({ min: 0, max: 5 }) }),
      fc.record({ kind: fc.constant("remove" as const), id: fc.integer({ min: 0, max: 5 }) }),
      fc.record({ kind: fc.constant("take" as const), holder: fc.integer({ min: 0, max: 5 }) }),
      fc.record({ kind: fc.constant("letGo" as const), holder: fc.integer({ min: 0, max: 5 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops: Op[]) => {
        const t = new TakeBacks();
        const holders = Array.from({ length: 6 }, () => ({}));
        const entries = new Map<number, { e: TakeBackEntry; calls: string[] }>();
        // The reference: per prompt, whether it may be taken back, its holders, the holders it had.
        const ref = new Map<number, { candidate: boolean; holders: Set<number>; had: number; ended: boolean; calls: string[] }>();
        const holding = new Map<number, number[]>();
        for (const o of ops) {
          if (o.kind === "add") {
            if (entries.has(o.id)) continue;
            const r = recorder();
            const e = entry(0, 10_000, r.handler);
            entries.set(o.id, { e, calls: r.calls });
            ref.set(o.id, { candidate: true, holders: new Set(), had: 0, ended: false, calls: [] });
            t.add(e);
          } else if (o.kind === "remove") {
            const x = entries.get(o.id);
            const m = ref.get(o.id);
            if (!x || !m || m.ended) continue;
            t.remove(x.e);
            m.ended = true;
            m.candidate = false;
          } else if (o.kind === "take") {
            if (holding.has(o.holder)) continue;
            const held: number[] = [];
            for (const [id, m] of ref) {
              if (!m.candidate) continue;
              held.push(id);
              if (++m.had >= MAX_HOLDERS) m.candidate = false;
              if (m.holders.size === 0) m.calls.push("pause");
              m.holders.add(o.holder);
            }
            if (held.length > 0) holding.set(o.holder, held);
            t.takeBack(0, holders[o.holder]!, MS_PER_TOKEN);
          } else {
            for (const id of holding.get(o.holder) ?? []) {
              const m = ref.get(id)!;
              if (m.ended || !m.holders.delete(o.holder) || m.holders.size > 0) continue;
              m.calls.push("resume");
            }
            holding.delete(o.holder);
            t.letGo(holders[o.holder]!);
          }
          for (const [id, m] of ref) expect(entries.get(id)!.calls).toEqual(m.calls);
          const paused = [...ref.values()].filter((m) => !m.ended && m.holders.size > 0).length;
          expect(t.pausedOn(0)).toBe(paused);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("the routing core taking engines back", () => {
  const blockSize = 16;
  function setup(takeBack = true) {
    const scheduler = new Scheduler({ random: () => 0, takeBack });
    scheduler.setAvailable(0, true);
    scheduler.setAvailable(1, true);
    return new RoutingCore({ scheduler, cachedTokensFallback: "router", blockSize: () => blockSize });
  }
  const prompt = (tokens: number, overlaps: number[]): RoutablePrompt => ({ promptTokens: tokens, blocks: Math.floor(tokens / blockSize), overlaps });
  // A 20,000-token prompt neither engine holds, then a 40,000-token one engine 0 holds all but 1,008 tokens of.
  const long = prompt(20_000, [0, 0]);
  const short = prompt(40_000, [2_437, 0]);

  function sendLong(core: RoutingCore) {
    const attempt = core.begin(core.decide(long, new Set([1]))!, long);
    const r = recorder();
    expect(attempt.mayBeTakenBack).toBe(core.scheduler.takeBacks !== null);
    expect(attempt.admit(() => {}, r.handler)).toBe(true);
    return { attempt, calls: r.calls };
  }

  it("scores a short prompt as if the long one were not ahead of it, but for a step", () => {
    const on = setup();
    sendLong(on);
    const off = setup(false);
    sendLong(off);
    const withTakeBack = on.scheduler.scoreEngines(short, blockSize)[0]!;
    const without = off.scheduler.scoreEngines(short, blockSize)[0]!;
    expect(without.features.queuedTokens).toBe(20_000);
    expect(withTakeBack.features.queuedTokens).toBe(on.scheduler.maxBatchedTokens);
    expect(withTakeBack.predictedTtftMs).toBeLessThan(without.predictedTtftMs);
    // A long prompt is not scored that way: it would not take the engine back.
    expect(on.scheduler.scoreEngines(prompt(20_000, [124, 0]), blockSize)[0]!.features.queuedTokens).toBe(20_000);
  });

  it("pauses the long prompt when the short one is sent, and resumes it at the short one's first token", () => {
    const core = setup();
    const { attempt: longAttempt, calls } = sendLong(core);
    const shortAttempt = core.begin(core.decide(short)!, short);
    expect(shortAttempt.engine).toBe(0);
    expect(shortAttempt.mayBeTakenBack).toBe(false);
    // Sent at once, even though the engine has a prompt in flight: it goes before that one.
    expect(shortAttempt.admit(() => {})).toBe(true);
    expect(calls).toEqual(["pause"]);
    expect(longAttempt.takenBack).toBe(true);
    const before = core.scheduler.model(0).observations.ttft;
    shortAttempt.firstToken(50);
    expect(calls).toEqual(["pause", "resume"]);
    expect(core.scheduler.model(0).observations.ttft).toBe(before + 1);
    // The long prompt's TTFT waited for the short one: it does not teach the time model.
    longAttempt.firstToken(900);
    expect(core.scheduler.model(0).observations.ttft).toBe(before + 1);
    // Its engine's count includes what its first send computed: the router's estimate is reported.
    expect(longAttempt.finish(4_000, 20_000)).toEqual({ cachedTokens: 0, source: "router" });
    expect(shortAttempt.finish(38_992, 40_000)).toEqual({ cachedTokens: 38_992, source: "engine" });
    expect(core.scheduler.active.load(0)).toEqual({ prefillBlocks: 0, prefillTokens: 0, decodeBlocks: 0, decodeRequests: 0, requests: 0 });
    expect(core.scheduler.takeBacks!.pausedOn(0)).toBe(0);
  });

  it("does not resume a long prompt whose client left while it was paused", () => {
    const core = setup();
    const { attempt: longAttempt, calls } = sendLong(core);
    const shortAttempt = core.begin(core.decide(short)!, short);
    expect(shortAttempt.engine).toBe(0);
    shortAttempt.admit(() => {});
    longAttempt.release();
    longAttempt.release();
    shortAttempt.release();
    expect(calls).toEqual(["pause"]);
    expect(core.scheduler.active.load(0).requests).toBe(0);
  });

  it("takes nothing back when it is off, or when the long prompt's dispatcher gives no handler", () => {
    const off = setup(false);
    const { calls } = sendLong(off);
    const s = off.begin(off.decide(short, new Set([1]))!, short);
    s.admit(() => {});
    expect(calls).toEqual([]);
    expect(off.scheduler.takeBacks).toBeNull();

    const core = setup();
    const quiet = core.begin(core.decide(long, new Set([1]))!, long);
    expect(quiet.admit(() => {})).toBe(true);
    expect(core.scheduler.takeBacks!.withheld(0, MS_PER_TOKEN).requests).toBe(0);
  });
});
