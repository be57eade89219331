// FastHistogram against prom-client's Histogram: the same observations, on random label sets and values
// (bucket bounds exactly, values beyond the last bound, negatives), give the same /metrics text.
import fc from "fast-check";
import { Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { FastHistogram } from "../../../src/router/metrics/fast-histogram.js";

const BUCKETS = [0.001, 0.01, 0.1, 1, 10];
const value = fc.oneof(fc.constantFrom(...BUCKETS, 0, 100), fc.double({ min: -1, max: 50, noNaN: true }));

describe("FastHistogram", () => {
  it("writes what prom-client's Histogram writes, labelled", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ engine: fc.constantFrom("a", "b", "c d", 'q"uote'), value }), { maxLength: 40 }), async (observations) => {
        const reference = new Registry();
        const fast = new Registry();
        const h = new Histogram({ name: "x_seconds", help: "help text", labelNames: ["engine"], buckets: BUCKETS, registers: [reference] });
        const f = new FastHistogram({ name: "x_seconds", help: "help text", labelNames: ["engine"], buckets: BUCKETS, registers: [fast] });
        for (const o of observations) {
          h.observe({ engine: o.engine }, o.value);
          f.series({ engine: o.engine }).observe(o.value);
        }
        expect(await fast.metrics()).toBe(await reference.metrics());
      }),
    );
  });

  it("writes what prom-client's Histogram writes, unlabelled, from zero observations on", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(value, { maxLength: 40 }), async (values) => {
        const reference = new Registry();
        const fast = new Registry();
        const h = new Histogram({ name: "y", help: "h", buckets: BUCKETS, registers: [reference] });
        const f = new FastHistogram({ name: "y", help: "h", buckets: BUCKETS, registers: [fast] });
        for (const v of values) {
          h.observe(v);
          f.observe(v);
        }
        expect(await fast.metrics()).toBe(await reference.metrics());
      }),
    );
  });

  it("refuses what prom-client refuses: values that are not finite, the le label, a missing label", () => {
    const f = new FastHistogram({ name: "z", help: "h", labelNames: ["stage"], buckets: BUCKETS, registers: [] });
    expect(() => f.series({ stage: "hash" }).observe(NaN)).toThrow(TypeError);
    expect(() => f.series({ stage: "hash" }).observe(Infinity)).toThrow(TypeError);
    expect(() => f.series({} as { stage: string })).toThrow("label stage is missing");
    expect(() => f.observe(1)).toThrow("has labels");
    expect(() => new FastHistogram({ name: "w", help: "h", labelNames: ["le"], buckets: BUCKETS, registers: [] })).toThrow("le is a reserved");
    expect(() => new FastHistogram({ name: "v", help: "h", buckets: [1, 1], registers: [] })).toThrow("ascending");
  });

  it("keeps one series per label set and empties on reset", async () => {
    const registry = new Registry();
    const f = new FastHistogram({ name: "r", help: "h", labelNames: ["stage"], buckets: BUCKETS, registers: [registry] });
    expect(f.series({ stage: "hash" })).toBe(f.series({ stage: "hash" }));
    f.series({ stage: "hash" }).observe(0.5);
    expect(await registry.metrics()).toContain('r_count{stage="hash"} 1');
    f.reset();
    expect(await registry.metrics()).not.toContain("r_count");
  });
});
