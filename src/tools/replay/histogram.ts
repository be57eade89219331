// Latency distributions in HDR histograms: bounded memory whatever the run length, 3 significant digits.
//
// hdr-histogram-js runs here in its pure JavaScript mode. Its WebAssembly mode records about 3x faster
// (npm run bench:trace), but needs an async initialisation first, and each histogram then lives in the
// module's linear memory until destroy() is called. At a load generator's rates (some 10^5 values a second
// at most) the JavaScript mode costs about 1-2% of a core, and is garbage-collected like any object.
import * as hdr from "hdr-histogram-js";

/** Microseconds per recorded unit: values are kept as integer microseconds. */
const US_PER_MS = 1000;

export interface LatencySummary {
  count: number;
  meanMs: number;
  minMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

export class LatencyHistogram {
  readonly #h = hdr.build({ bitBucketSize: 64, numberOfSignificantValueDigits: 3, autoResize: true, useWebAssembly: false });
  // Exact, beside the histogram: its mean and minimum are only to bucket precision.
  #sumMs = 0;
  #minMs = Infinity;

  /** Records a latency in milliseconds; negative or non-finite values are a caller bug and are rejected. */
  record(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`latency must be a finite number of milliseconds >= 0, got ${ms}`);
    this.#h.recordValue(Math.round(ms * US_PER_MS));
    this.#sumMs += ms;
    if (ms < this.#minMs) this.#minMs = ms;
  }

  get count(): number {
    return this.#h.totalCount;
  }

  /**
   * The value at percentile p (0..100): the smallest recorded value that p% of the values are at or below,
   * to the histogram's precision (equivalent values within 0.1% are one bucket, reported by its upper end,
   * but never above the largest value recorded).
   */
  percentile(p: number): number {
    const h = this.#h;
    return h.totalCount === 0 ? 0 : Math.min(h.getValueAtPercentile(p), h.maxValue) / US_PER_MS;
  }

  summary(): LatencySummary {
    const h = this.#h;
    if (h.totalCount === 0) return { count: 0, meanMs: 0, minMs: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, maxMs: 0 };
    return {
      count: h.totalCount,
      meanMs: this.#sumMs / h.totalCount,
      minMs: this.#minMs,
      p50Ms: this.percentile(50),
      p90Ms: this.percentile(90),
      p99Ms: this.percentile(99),
      // Exact to the microsecond: the histogram keeps the largest value recorded as it was.
      maxMs: h.maxValue / US_PER_MS,
    };
  }

  /** The cumulative distribution as [ms, fraction] points, denser in the tail, for plotting. */
  cdf(): [number, number][] {
    if (this.#h.totalCount === 0) return [];
    const points: [number, number][] = [];
    const add = (p: number) => {
      const ms = this.percentile(p);
      const last = points[points.length - 1];
      if (last !== undefined && last[0] === ms) last[1] = p / 100;
      else points.push([ms, p / 100]);
    };
    add(0);
    for (let p = 1; p <= 90; p += 1) add(p);
    for (let p = 90.5; p <= 99; p += 0.5) add(p);
    for (const p of [99.2, 99.4, 99.6, 99.8, 99.9, 99.99, 100]) add(p);
    return points;
  }
}
