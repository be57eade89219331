// Per-interval totals over a run of unknown length, in bounded memory: buckets start narrow and double in
// width (merging pairs) whenever there would be more than `maxBuckets`, so a run of any length ends with
// between maxBuckets / 2 and maxBuckets intervals: enough to plot, few enough to read.

export interface Bucket {
  succeeded: number;
  errors: number;
  outputTokens: number;
  /** Prompt tokens of the requests that reported cached_tokens, and their cached tokens. */
  reportedPromptTokens: number;
  cachedTokens: number;
}

export interface TimelinePoint {
  startSec: number;
  widthSec: number;
  requestsPerSec: number;
  outputTokensPerSec: number;
  errors: number;
  /** cached / prompt tokens of the requests that ended in this interval and reported cached_tokens. */
  hitRatio: number | null;
}

const empty = (): Bucket => ({ succeeded: 0, errors: 0, outputTokens: 0, reportedPromptTokens: 0, cachedTokens: 0 });

export class Timeline {
  #widthMs: number;
  #buckets: Bucket[] = [];

  constructor(
    initialWidthMs = 125,
    private readonly maxBuckets = 100,
  ) {
    this.#widthMs = initialWidthMs;
  }

  get widthMs(): number {
    return this.#widthMs;
  }

  /** The bucket holding time `ms` (from the run's start), widening the buckets as needed. */
  at(ms: number): Bucket {
    let i = Math.max(0, Math.floor(ms / this.#widthMs));
    while (i >= this.maxBuckets) {
      this.#widen();
      i = Math.floor(ms / this.#widthMs);
    }
    while (this.#buckets.length <= i) this.#buckets.push(empty());
    return this.#buckets[i]!;
  }

  #widen(): void {
    const merged: Bucket[] = [];
    for (let i = 0; i < this.#buckets.length; i += 2) {
      const a = this.#buckets[i]!;
      const b = this.#buckets[i + 1] ?? empty();
      merged.push({
        succeeded: a.succeeded + b.succeeded,
        errors: a.errors + b.errors,
        outputTokens: a.outputTokens + b.outputTokens,
        reportedPromptTokens: a.reportedPromptTokens + b.reportedPromptTokens,
        cachedTokens: a.cachedTokens + b.cachedTokens,
      });
    }
    this.#buckets = merged;
    this.#widthMs *= 2;
  }

  points(): TimelinePoint[] {
    const widthSec = this.#widthMs / 1000;
    return this.#buckets.map((b, i) => ({
      startSec: i * widthSec,
      widthSec,
      requestsPerSec: b.succeeded / widthSec,
      outputTokensPerSec: b.outputTokens / widthSec,
      errors: b.errors,
      hitRatio: b.reportedPromptTokens > 0 ? b.cachedTokens / b.reportedPromptTokens : null,
    }));
  }
}
