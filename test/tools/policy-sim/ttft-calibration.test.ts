// The calibration figures against a direct computation over the same pairs.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { TtftCalibration } from "../../../src/tools/policy-sim/ttft-calibration.js";

describe("TtftCalibration", () => {
  it("has no means before a first token", () => {
    expect(new TtftCalibration().figures()).toEqual({ firstTokens: 0, predictedMeanMs: null, observedMeanMs: null, meanAbsErrorMs: null });
  });

  it("gives the means of the predictions, the observations and the absolute errors", () => {
    const ms = fc.double({ min: 0, max: 1e6, noNaN: true });
    fc.assert(
      fc.property(fc.array(fc.tuple(ms, ms), { minLength: 1, maxLength: 200 }), (pairs) => {
        const c = new TtftCalibration();
        for (const [predicted, observed] of pairs) c.observe(predicted, observed);
        const mean = (f: (p: [number, number]) => number) => pairs.reduce((s, p) => s + f(p), 0) / pairs.length;
        const got = c.figures();
        expect(got.firstTokens).toBe(pairs.length);
        expect(got.predictedMeanMs).toBeCloseTo(mean(([p]) => p), 3);
        expect(got.observedMeanMs).toBeCloseTo(mean(([, o]) => o), 3);
        expect(got.meanAbsErrorMs).toBeCloseTo(mean(([p, o]) => Math.abs(o - p)), 3);
      }),
    );
  });
});
