// Cache turnover: the decayed counts against a reference that recomputes every count from the whole
// history, and the relative turnover's invariants.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CacheTurnover } from "../../../src/router/schedule/index.js";

/** Every insertion's blocks, decayed by exp(-blocks inserted after it / horizon). */
function reference(history: Array<[number, number]>, horizon: number, engine: number): number {
  let count = 0;
  for (let i = 0; i < history.length; i++) {
    const [e, blocks] = history[i]!;
    if (e !== engine) continue;
    let after = 0;
    for (let j = i + 1; j < history.length; j++) after += history[j]![1];
    count += blocks * Math.exp(-after / horizon);
  }
  return count;
}

const insertions = fc.array(fc.tuple(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 1, max: 5000 })), { maxLength: 60 });

describe("CacheTurnover", () => {
  it("counts each engine's inserted blocks, decayed by the blocks inserted after them", () => {
    fc.assert(
      fc.property(insertions, fc.integer({ min: 100, max: 200_000 }), (history, horizon) => {
        const t = new CacheTurnover(horizon);
        for (const [engine, blocks] of history) t.insert(engine, blocks);
        for (let engine = 0; engine <= 5; engine++) {
          const want = reference(history, horizon, engine);
          expect(Math.abs(t.count(engine) - want)).toBeLessThanOrEqual(1e-9 * Math.max(1, want));
        }
      }),
      { numRuns: 200 },
    );
  });

  it("restores the counts it saved, whatever was inserted since", () => {
    fc.assert(
      fc.property(insertions, insertions, (before, tentative) => {
        const t = new CacheTurnover(10_000);
        for (const [engine, blocks] of before) t.insert(engine, blocks);
        const saved = t.save();
        for (const [engine, blocks] of tentative) t.insert(engine, blocks);
        t.restore(saved);
        for (let engine = 0; engine <= 5; engine++) {
          const want = reference(before, 10_000, engine);
          expect(Math.abs(t.count(engine) - want)).toBeLessThanOrEqual(1e-9 * Math.max(1, want));
        }
      }),
      { numRuns: 100 },
    );
  });

  it("relative turnovers average 1 over the engines asked about, each its count over their mean", () => {
    fc.assert(
      fc.property(insertions, fc.uniqueArray(fc.integer({ min: 0, max: 7 }), { minLength: 1, maxLength: 8 }), (history, engines) => {
        const t = new CacheTurnover(50_000);
        for (const [engine, blocks] of history) t.insert(engine, blocks);
        const relative = t.relative(engines);
        expect(relative.length).toBe(engines.length);
        const total = engines.reduce((sum, e) => sum + t.count(e), 0);
        const mean = relative.reduce((a, b) => a + b, 0) / engines.length;
        expect(mean).toBeCloseTo(1, 9);
        engines.forEach((e, i) => {
          if (total === 0) expect(relative[i]).toBe(1);
          else expect(relative[i]).toBeCloseTo(t.count(e) / (total / engines.length), 9);
        });
      }),
      { numRuns: 200 },
    );
  });

  it("forgets: an engine that took every block long ago and none since ends near an even share", () => {
    const t = new CacheTurnover(1000);
    t.insert(0, 5000);
    expect(t.relative([0, 1])).toEqual(Float64Array.from([2, 0]));
    for (let i = 0; i < 100; i++) t.insert(i % 2 === 0 ? 0 : 1, 100);
    const [r0, r1] = t.relative([0, 1]);
    expect(Math.abs(r0! - 1)).toBeLessThan(0.1);
    expect(Math.abs(r1! - 1)).toBeLessThan(0.1);
  });

  it("ignores insertions of no blocks or of a number that is not one, and refuses a bad horizon", () => {
    const t = new CacheTurnover(1000);
    t.insert(0, 10);
    for (const bad of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) t.insert(1, bad);
    expect(t.count(0)).toBe(10);
    expect(t.count(1)).toBe(0);
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => new CacheTurnover(bad)).toThrow(/horizonBlocks/);
  });
});
