import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LatencyHistogram } from "../../../src/index.js";

/** Nearest-rank percentile of a sorted array: the smallest value that p% of the values are at or below. */
function reference(sorted: number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

// Values are recorded as whole microseconds, and HDR's 3 significant digits bound the relative error by 0.1%.
function withinPrecision(got: number, want: number): void {
  expect(got).toBeGreaterThanOrEqual(want - 0.0005);
  expect(got).toBeLessThanOrEqual(want * 1.001 + 0.0005);
}

const latencies = fc.oneof(
  fc.array(fc.double({ min: 0, max: 10, noNaN: true }), { minLength: 1, maxLength: 300 }),
  fc.array(fc.double({ min: 0, max: 600_000, noNaN: true }), { minLength: 1, maxLength: 300 }),
  // Heavy tail: mostly small, some huge.
  fc.array(fc.oneof(fc.double({ min: 1, max: 50, noNaN: true }), fc.double({ min: 1_000, max: 120_000, noNaN: true })), { minLength: 1, maxLength: 300 }),
  // Many repeats of a few values.
  fc.array(fc.constantFrom(0, 0.001, 1, 1.5, 250, 250.25, 9999.999), { minLength: 1, maxLength: 300 }),
);

describe("LatencyHistogram against a sorted-array reference", () => {
  it("percentiles, max, mean, min and count agree within the histogram's precision", () => {
    fc.assert(
      fc.property(latencies, (values) => {
        const h = new LatencyHistogram();
        for (const v of values) h.record(v);
        // The reference sees what the histogram stores: whole microseconds.
        const sorted = values.map((v) => Math.round(v * 1000) / 1000).sort((a, b) => a - b);
        for (const p of [1, 10, 25, 50, 75, 90, 95, 99, 99.9, 100]) withinPrecision(h.percentile(p), reference(sorted, p));
        const s = h.summary();
        expect(s.count).toBe(values.length);
        withinPrecision(s.p50Ms, reference(sorted, 50));
        withinPrecision(s.p90Ms, reference(sorted, 90));
        withinPrecision(s.p99Ms, reference(sorted, 99));
        expect(s.maxMs).toBeCloseTo(sorted[sorted.length - 1]!, 6);
        expect(s.minMs).toBe(Math.min(...values));
        expect(s.meanMs).toBeCloseTo(values.reduce((a, b) => a + b, 0) / values.length, 6);
      }),
      { numRuns: 200 },
    );
  });

  it("gives the order statistics of a known set", () => {
    const h = new LatencyHistogram();
    for (let i = 1; i <= 100; i++) h.record(i);
    const s = h.summary();
    expect(s).toMatchObject({ count: 100, meanMs: 50.5, minMs: 1, maxMs: 100 });
    withinPrecision(s.p50Ms, 50);
    withinPrecision(s.p90Ms, 90);
    withinPrecision(s.p99Ms, 99);
  });

  it("its CDF rises from the minimum to the maximum and ends at 1", () => {
    const h = new LatencyHistogram();
    for (let i = 0; i < 1000; i++) h.record((i * 37) % 500);
    const cdf = h.cdf();
    expect(cdf[cdf.length - 1]).toEqual([h.summary().maxMs, 1]);
    for (let i = 1; i < cdf.length; i++) {
      expect(cdf[i]![0]).toBeGreaterThan(cdf[i - 1]![0]);
      expect(cdf[i]![1]).toBeGreaterThan(cdf[i - 1]![1]);
    }
  });

  it("is empty-safe and refuses impossible latencies", () => {
    const h = new LatencyHistogram();
    expect(h.summary()).toEqual({ count: 0, meanMs: 0, minMs: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, maxMs: 0 });
    expect(h.cdf()).toEqual([]);
    expect(() => h.record(-1)).toThrow(RangeError);
    expect(() => h.record(Number.NaN)).toThrow(RangeError);
  });
});
