// The time model: it converges on a synthetic engine whose rates it is not told, shrugs off outliers,
// and makes the kv policy prefer a cached engine exactly when the predicted time says so.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_EVICTION_WEIGHT, DEFAULT_PRIOR, GATE_QUEUE_STEPS, EngineTimeModel, RobustFit, Scheduler, type EngineTiming, type TimeFeatures } from "../../../src/router/schedule/index.js";

/** A seeded generator, so the synthetic observations repeat. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

const C = 8192;

/** What an engine with `t` does: the time model's own equations, with noise. */
function truth(t: EngineTiming) {
  const step = (d: number, b: number) => t.stepMs + t.decodeMsPerSeq * d + t.msPerKvBlock * b;
  const ttft = (f: TimeFeatures) => {
    const n = Math.max(1, Math.ceil((f.queuedTokens + f.uncachedTokens) / (C - f.decoding)));
    return t.firstTokenMs + t.prefillMsPerToken * (f.queuedTokens + f.uncachedTokens) + n * step(f.decoding, f.decodeBlocks);
  };
  return { step, ttft };
}

function features(random: () => number): TimeFeatures {
  const decoding = Math.floor(random() * 40);
  return {
    queuedTokens: random() < 0.5 ? 0 : Math.floor(random() * 30_000),
    uncachedTokens: 1 + Math.floor(random() * 40_000),
    decoding,
    decodeBlocks: decoding * Math.floor(200 + random() * 1000),
    requests: decoding,
  };
}

/** Feeds `n` TTFTs and, between them, gaps, as a router sees them; `outlier` may corrupt some. */
function train(model: EngineTimeModel, t: EngineTiming, n: number, seed: number, outlier?: (random: () => number, value: number) => number) {
  const random = lcg(seed);
  const { step, ttft } = truth(t);
  for (let i = 0; i < n; i++) {
    const f = features(random);
    const noise = () => 1 + 0.05 * (random() - 0.5);
    let observed = ttft(f) * noise();
    if (outlier) observed = outlier(random, observed);
    model.observeTtft(f, observed);
    for (let g = 0; g < 20; g++) {
      let gap = step(f.decoding, f.decodeBlocks) * noise();
      if (outlier) gap = outlier(random, gap);
      model.observeGap(f.decoding, f.decodeBlocks, gap);
    }
  }
}

function relativeError(model: EngineTimeModel, t: EngineTiming, seed: number): number {
  const random = lcg(seed);
  const { ttft } = truth(t);
  let worst = 0;
  for (let i = 0; i < 200; i++) {
    const f = features(random);
    worst = Math.max(worst, Math.abs(model.ttft(f) - ttft(f)) / ttft(f));
  }
  return worst;
}

/** Twice as slow as the prior in every part, with a larger fixed cost. */
const SLOW: EngineTiming = { firstTokenMs: 30, prefillMsPerToken: 0.08, stepMs: 12, decodeMsPerSeq: 0.06, msPerKvBlock: 0.0016 };
const FAST: EngineTiming = { firstTokenMs: 2, prefillMsPerToken: 0.02, stepMs: 3, decodeMsPerSeq: 0.015, msPerKvBlock: 0.0004 };

describe("the time model", () => {
  it("converges from the prior on engines slower and faster than it", () => {
    for (const [t, seed] of [[SLOW, 1], [FAST, 2]] as const) {
      const model = new EngineTimeModel({ prior: DEFAULT_PRIOR, maxBatchedTokens: C });
      const before = relativeError(model, t, 99);
      train(model, t, 400, seed);
      const after = relativeError(model, t, 99);
      expect(before).toBeGreaterThan(0.4);
      expect(after).toBeLessThan(0.08);
      expect(model.timing.prefillMsPerToken).toBeCloseTo(t.prefillMsPerToken, 2);
      expect(model.timing.stepMs / t.stepMs).toBeGreaterThan(0.9);
      expect(model.timing.stepMs / t.stepMs).toBeLessThan(1.1);
    }
  });

  it("is robust to outliers: a tenth of the observations ten times too slow barely move it", () => {
    const clean = new EngineTimeModel({ prior: DEFAULT_PRIOR, maxBatchedTokens: C });
    const dirty = new EngineTimeModel({ prior: DEFAULT_PRIOR, maxBatchedTokens: C });
    train(clean, SLOW, 400, 3);
    train(dirty, SLOW, 400, 3, (random, v) => (random() < 0.1 ? v * 10 : v));
    // A least-squares fit would take the mean, which those outliers raise by 90%.
    expect(relativeError(dirty, SLOW, 7)).toBeLessThan(0.15);
    expect(dirty.timing.prefillMsPerToken / SLOW.prefillMsPerToken).toBeLessThan(1.15);
    expect(Math.abs(dirty.timing.prefillMsPerToken - clean.timing.prefillMsPerToken) / clean.timing.prefillMsPerToken).toBeLessThan(0.15);
  });

  it("predicts more time for more queued work, more uncached tokens and more decoding load", () => {
    const m = new EngineTimeModel({ prior: DEFAULT_PRIOR });
    const base: TimeFeatures = { queuedTokens: 0, uncachedTokens: 4000, decoding: 0, decodeBlocks: 0, requests: 0 };
    const t0 = m.ttft(base);
    expect(m.ttft({ ...base, queuedTokens: 10_000 })).toBeGreaterThan(t0);
    expect(m.ttft({ ...base, uncachedTokens: 8000 })).toBeGreaterThan(t0);
    expect(m.ttft({ ...base, decoding: 20, decodeBlocks: 16_000, requests: 20 })).toBeGreaterThan(t0);
    // Past max_num_seqs, a request waits for a slot.
    expect(m.ttft({ ...base, requests: 300 })).toBeGreaterThan(m.ttft({ ...base, requests: 100 }));
  });
});

describe("an engine whose first tokens carry no sign of the prompt's size", () => {
  it("still predicts a cached prefix to save time: the prefill rate keeps a floor however the fit goes", () => {
    // First tokens in a millisecond or two whatever the prompt, a little faster for longer ones: what a
    // simulated engine that computes nothing, measured through a noisy machine, can look like. The fit's
    // slope goes to about zero.
    const model = new EngineTimeModel({ prior: DEFAULT_PRIOR });
    const random = lcg(7);
    for (let i = 0; i < 2000; i++) {
      model.observeGap(0, 0, 0.05 + random() * 0.05);
      const uncached = 16 + Math.floor(random() * 4000);
      if (i % 4 === 0) model.observeTtft({ queuedTokens: 0, uncachedTokens: uncached, decoding: 0, decodeBlocks: 0, requests: 0 }, 2 - uncached / 4000 + random() * 0.1);
    }
    expect(model.timing.prefillMsPerToken).toBeLessThan(DEFAULT_PRIOR.prefillMsPerToken * 1e-3);
    const idle = { queuedTokens: 0, decoding: 0, decodeBlocks: 0, requests: 0 };
    const cached = { ...idle, uncachedTokens: 8 };
    const cold = { ...idle, uncachedTokens: 1000 };
    // The 992 cached tokens save at least the floor's worth (a thousandth of the prior's rate), in the
    // request's own TTFT and in the engine time its prefill takes: enough to outweigh an equal engine.
    const floor = DEFAULT_PRIOR.prefillMsPerToken * 1e-3 * 992;
    expect(model.ttft(cold) - model.ttft(cached)).toBeGreaterThanOrEqual(floor * 0.999);
    expect(model.prefillTime(cold) - model.prefillTime(cached)).toBeGreaterThanOrEqual(floor * 0.999);
  });
});

describe("the kv policy", () => {
  it("prefers a cached engine exactly when its predicted time is less", () => {
    // Engine 0 holds `overlap` of a 512-block prompt but has `queued` prompt tokens booked ahead; engine 1
    // is idle and holds nothing. Whatever the pair, the choice is the engine with the lower cost, and
    // the cost is the predicted TTFT plus the engine time of the uncached prefill, what it adds to the
    // prefill queued ahead (with the prefill gate, when it would hold the request, the step it is held for
    // instead), and what its new blocks evict.
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 512 }), fc.integer({ min: 0, max: 60_000 }), fc.integer({ min: 0, max: 30 }), fc.boolean(), (overlap, queued, decoding, prefillGate) => {
        const s = new Scheduler({ random: () => 0, prefillGate });
        s.setAvailable(0, true);
        s.setAvailable(1, true);
        if (queued > 0) s.active.book(0, queued, Math.ceil(queued / 16), 16);
        for (let i = 0; i < decoding; i++) s.active.book(0, 1000, 0, 16).started();
        const prompt = { promptTokens: 512 * 16, blocks: 512, overlaps: [overlap, 0] };
        const d = s.decide(prompt, 16)!;
        const [e0, e1] = d.scored;
        const p = s.predictor(0).prefillMsPerToken;
        const evicted = DEFAULT_EVICTION_WEIGHT * p * e0!.features.uncachedTokens * e0!.turnover;
        const model = s.predictor(0);
        const delay = model.sharedStepDelay(e0!.features, queued > 0 ? 1 : 0);
        const step = model.stepTime(e0!.features.decoding, e0!.features.decodeBlocks);
        const held = prefillGate && e0!.features.queuedTokens <= GATE_QUEUE_STEPS * (8192 - decoding) && delay > step;
        const shared = held ? step : delay;
        expect(e0!.cost).toBeCloseTo(e0!.predictedTtftMs + s.predictor(0).prefillTime(e0!.features) + shared + evicted, 6);
        // No block was inserted through the scheduler yet: every engine's turnover is the even share.
        expect(e0!.turnover).toBe(1);
        expect(d.engine).toBe(e0!.cost <= e1!.cost ? 0 : 1);
        // The cache wins when nothing else is in the way, and loses to a long enough queue.
        if (queued === 0 && decoding === 0 && overlap > 0) expect(d.engine).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it("sends less work to an engine it has learned is slower, without being told", () => {
    const s = new Scheduler({ random: () => 0 });
    s.setAvailable(0, true);
    s.setAvailable(1, true);
    train(s.model(1), SLOW, 200, 5);
    train(s.model(0), DEFAULT_PRIOR, 200, 6);
    const prompt = { promptTokens: 8000, blocks: 500, overlaps: [0, 0] };
    expect(s.decide(prompt, 16)!.engine).toBe(0);
    // Even with the fast engine somewhat busier, the slow one is worse.
    s.active.book(0, 3000, 188, 16);
    expect(s.decide(prompt, 16)!.engine).toBe(0);
  });
});

describe("what a prompt adds to the prefills queued ahead of it", () => {
  const idle = { queuedTokens: 0, uncachedTokens: 2000, decoding: 0, decodeBlocks: 0, requests: 0 };
  const model = new EngineTimeModel({ prior: DEFAULT_PRIOR });
  const p = DEFAULT_PRIOR.prefillMsPerToken;

  it("is nothing on an engine with no prefill queued", () => {
    expect(model.sharedStepDelay(idle, 0)).toBe(0);
  });

  it("is its prompt's time for each queued request when the queue and the prompt share one step", () => {
    // Two requests of 1,500 tokens queued, 4 decoding: 8,188 tokens a step, room for all 2,000.
    const f = { ...idle, queuedTokens: 3000, decoding: 4, requests: 6 };
    expect(model.sharedStepDelay(f, 2)).toBeCloseTo(p * 2000 * 2, 9);
  });

  it("is the time of the part that fits beside the queue's last step, for the last queued request", () => {
    // 20,000 tokens queued: the last step holds 20,000 - 2 × 8,192 = 3,616 of them and 4,576 of this prompt.
    const f = { ...idle, queuedTokens: 20_000, uncachedTokens: 6000, requests: 3 };
    expect(model.sharedStepDelay(f, 3)).toBeCloseTo(p * (8192 - 3616), 9);
    // A queue that ends on a full step leaves no room: this prompt starts in the next step.
    expect(model.sharedStepDelay({ ...f, queuedTokens: 16_384 }, 3)).toBe(0);
  });
});

describe("cache turnover in the kv cost", () => {
  const fresh = { promptTokens: 8000, blocks: 500, overlaps: [0, 0] };

  /** Decides and books `n` fresh prompts one after another, each done before the next: no queue forms. */
  function route(s: Scheduler, n: number): number[] {
    const counts = [0, 0];
    for (let i = 0; i < n; i++) {
      const d = s.decide(fresh, 16)!;
      counts[d.engine]!++;
      s.book(d, fresh, 16).release();
    }
    return counts;
  }

  it("sends a prompt no engine holds to the engine that took fewer new blocks lately", () => {
    const s = new Scheduler({ random: () => 0 });
    s.setAvailable(0, true);
    s.setAvailable(1, true);
    // Engine 0 took three fresh prompts (its turnover 2, engine 1's 0); both are otherwise equal and idle.
    for (let i = 0; i < 3; i++) s.book(s.decide(fresh, 16, new Set([1]))!, fresh, 16).release();
    const d = s.decide(fresh, 16)!;
    expect(d.scored.map((c) => c.turnover)).toEqual([2, 0]);
    expect(d.engine).toBe(1);
    // Without the eviction term the engines tie, and the tie-break (random() = 0) takes the first.
    const timeOnly = new Scheduler({ random: () => 0, evictionWeight: 0 });
    timeOnly.setAvailable(0, true);
    timeOnly.setAvailable(1, true);
    for (let i = 0; i < 3; i++) timeOnly.book(timeOnly.decide(fresh, 16, new Set([1]))!, fresh, 16).release();
    expect(timeOnly.decide(fresh, 16)!.engine).toBe(0);
  });

  it("keeps a slower engine's cache in use: it gets some of the prompts no engine holds, fewer than the fast one", () => {
    const fleet = (evictionWeight?: number) => {
      const s = new Scheduler({ random: () => 0, ...(evictionWeight !== undefined ? { evictionWeight } : {}) });
      s.setAvailable(0, true);
      s.setAvailable(1, true);
      train(s.model(0), DEFAULT_PRIOR, 200, 6);
      train(s.model(1), SLOW, 200, 5);
      return s;
    };
    // Time alone sends every prompt to the fast engine, and the slow engine's cache never turns over.
    expect(route(fleet(0), 200)).toEqual([200, 0]);
    const [fast, slow] = route(fleet(), 200);
    expect(slow).toBeGreaterThan(20);
    expect(fast).toBeGreaterThan(slow!);
  });

  it("counts the blocks a decode engine receives as its new blocks, and adds no eviction cost to a decode stage", () => {
    const s = new Scheduler({ random: () => 0 });
    s.setAvailable(0, true);
    const prompt = { promptTokens: 8000, blocks: 500, overlaps: [100] };
    const d = s.decide(prompt, 16, undefined, "decode")!;
    expect(d.chosen.transferBlocks).toBe(400);
    // Its first token after the transfer, and the one prompt token it computes: nothing for evictions.
    expect(d.chosen.cost).toBeCloseTo(d.chosen.predictedTtftMs + s.predictor(0).prefillTime(d.chosen.features), 9);
    s.book(d, prompt, 16).release();
    expect(s.turnover.count(0)).toBe(400);
  });
});

describe("an engine not yet seen", () => {
  it("is predicted from the fleet's pooled figures, not the prior, so it gets work and learns", () => {
    // Engines far faster than the prior. Engine 0 has answered many requests; engine 1 none.
    const s = new Scheduler({ random: () => 0 });
    s.setAvailable(0, true);
    s.setAvailable(1, true);
    const random = lcg(21);
    const { ttft } = truth(FAST);
    for (let i = 0; i < 100; i++) {
      const f = features(random);
      s.observeTtft(0, f, ttft(f));
    }
    const cold = { promptTokens: 8000, blocks: 500, overlaps: [0, 0] };
    const f = { queuedTokens: 0, uncachedTokens: 8000, decoding: 0, decodeBlocks: 0, requests: 0 };
    // Its own model is still the prior; what it is predicted from is the fleet's, which engine 0 taught.
    expect(s.model(1).ttft(f)).toBeGreaterThan(1.5 * s.predictor(1).ttft(f));
    expect(s.predictor(1).ttft(f)).toBeCloseTo(s.predictor(0).ttft(f), 0);
    // So with engine 0 busy, the cold prompt goes to engine 1.
    s.active.book(0, 4000, 250, 16);
    expect(s.decide(cold, 16)!.engine).toBe(1);
  });
});

describe("the robust fit", () => {
  it("recovers a line from noisy observations, and a floor holds", () => {
    const fit = new RobustFit({ prior: [0, 0], priorVariance: [100, 100] });
    const random = lcg(11);
    for (let i = 0; i < 2000; i++) {
      const x = random() * 10;
      fit.observe([1, x], 3 + 2 * x + (random() - 0.5) * 0.1);
    }
    expect(fit.at(0)).toBeCloseTo(3, 1);
    expect(fit.at(1)).toBeCloseTo(2, 1);
    const floored = new RobustFit({ prior: [1], priorVariance: [10], floor: [0.5] });
    for (let i = 0; i < 100; i++) floored.observe([1], -5);
    expect(floored.at(0)).toBe(0.5);
  });

  it("ignores non-finite observations and refuses a malformed prior", () => {
    const fit = new RobustFit({ prior: [1], priorVariance: [1] });
    fit.observe([1], Number.NaN);
    fit.observe([Number.POSITIVE_INFINITY], 1);
    expect(fit.count).toBe(0);
    expect(() => new RobustFit({ prior: [1, 2], priorVariance: [1] })).toThrow(RangeError);
    expect(() => new RobustFit({ prior: [1], priorVariance: [0] })).toThrow(RangeError);
  });
});

describe("an engine's own prefill figures", () => {
  // Each report: 10 more requests, 100,000 prompt tokens of which 20,000 cached, at 0.08 ms a token and a
  // 10 ms fixed part per request.
  const report = (k: number) => ({
    running: 0,
    waiting: 0,
    kvCacheUsage: null,
    numBlocks: null,
    prefill: { seconds: k * (10 * 0.01 + 80_000 * 0.00008), requests: 10 * k, promptTokens: 100_000 * k, cachedTokens: 20_000 * k },
  });

  it("teach its time model: reports of vLLM's prefill time move the prefill rate to what the engine measured", () => {
    const s = new Scheduler({ random: () => 0 });
    s.setAvailable(0, true);
    const before = s.predictor(0).timing.prefillMsPerToken;
    for (let k = 1; k <= 200; k++) s.setReport(0, report(k));
    expect(s.model(0).observations.ttft).toBe(199);
    expect(before).toBeCloseTo(DEFAULT_PRIOR.prefillMsPerToken, 6);
    expect(s.predictor(0).timing.prefillMsPerToken / 0.08).toBeGreaterThan(0.9);
    expect(s.predictor(0).timing.prefillMsPerToken / 0.08).toBeLessThan(1.1);
    // A counter that goes back (the engine restarted) is not an observation.
    s.setReport(0, report(1));
    expect(s.model(0).observations.ttft).toBe(199);
  });

  it("are not taken from an interval in which a prompt was taken back, nor while one is unsettled", () => {
    const s = new Scheduler({ random: () => 0 });
    s.setAvailable(0, true);
    const takeBacks = s.takeBacks!;
    const entry = { engine: 0, tokens: 10_000, blocks: 625, left: 10_000, handler: { elapsedMs: () => 0, pause: () => {}, resume: () => {} }, held: 0, holders: null };
    s.setReport(0, report(1));
    s.setReport(0, report(2));
    expect(s.model(0).observations.ttft).toBe(1);
    takeBacks.add(entry);
    const holder = {};
    takeBacks.takeBack(0, holder, s.predictor(0));
    s.setReport(0, report(3)); // paused in between
    takeBacks.letGo(holder);
    s.setReport(0, report(4)); // sent again, no first token yet
    takeBacks.remove(entry);
    s.setReport(0, report(5)); // settled at the end of the interval only
    expect(s.model(0).observations.ttft).toBe(1);
    s.setReport(0, report(6));
    expect(s.model(0).observations.ttft).toBe(2);
  });
});
