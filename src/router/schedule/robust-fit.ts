// A robust running linear fit: recursive least squares with exponential forgetting and Huber weights.
//
// Each observation (x, y) moves the estimate θ towards y ≈ θ·x. Forgetting (λ < 1) lets θ follow an engine
// whose speed changes; Huber weighting caps the pull of a residual beyond c·σ (σ a running scale of the
// residuals), so an outlier (a request stalled behind a preemption, a gap that held a prefill chunk) moves
// θ far less than a squared loss would. θ starts at a prior with a given variance per parameter, which is
// how far the first observations may move it, and each parameter is kept at or above a floor.
//
// Invariant: P stays symmetric positive definite (the update is the standard one, with a weight in (0, 1],
// and the windup cap scales a row and its column by the same factor).

export interface RobustFitOptions {
  /** The starting estimate. */
  prior: readonly number[];
  /** Variance of the prior per parameter: large lets the first observations move it far. */
  priorVariance: readonly number[];
  /** Lowest value per parameter (default 0 for all: times and rates are never negative). */
  floor?: readonly number[];
  /** Forgetting factor in (0, 1] (default 0.999: about the last thousand observations count). */
  lambda?: number;
  /** Huber threshold in residual scales (default 2). */
  huber?: number;
  /** Starting residual scale, in y's unit (default 1). */
  scale?: number;
}

export class RobustFit {
  readonly #n: number;
  readonly #theta: Float64Array;
  readonly #p: Float64Array;
  readonly #floor: Float64Array;
  readonly #maxVariance: Float64Array;
  readonly #lambda: number;
  readonly #huber: number;
  readonly #px: Float64Array;
  #scale: number;
  #count = 0;

  constructor(o: RobustFitOptions) {
    const n = o.prior.length;
    if (n === 0 || o.priorVariance.length !== n || (o.floor && o.floor.length !== n)) {
      throw new RangeError(`a fit needs as many prior variances and floors as parameters (${n})`);
    }
    this.#n = n;
    this.#theta = Float64Array.from(o.prior);
    this.#p = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      const v = o.priorVariance[i]!;
      if (!(v > 0)) throw new RangeError(`prior variance ${i} must be above 0, got ${v}`);
      this.#p[i * n + i] = v;
    }
    this.#floor = Float64Array.from(o.floor ?? new Array<number>(n).fill(0));
    this.#maxVariance = Float64Array.from(o.priorVariance);
    this.#lambda = o.lambda ?? 0.999;
    this.#huber = o.huber ?? 2;
    this.#scale = o.scale ?? 1;
    this.#px = new Float64Array(n);
    if (!(this.#lambda > 0 && this.#lambda <= 1)) throw new RangeError(`lambda must be in (0, 1], got ${this.#lambda}`);
  }

  /** The current estimate (a copy). */
  get theta(): number[] {
    return Array.from(this.#theta);
  }

  /** Parameter i of the estimate. */
  at(i: number): number {
    return this.#theta[i]!;
  }

  /** Observations taken so far. */
  get count(): number {
    return this.#count;
  }

  /** The running scale of the residuals. */
  get scale(): number {
    return this.#scale;
  }

  predict(x: ArrayLike<number>): number {
    let y = 0;
    for (let i = 0; i < this.#n; i++) y += this.#theta[i]! * x[i]!;
    return y;
  }

  /** Takes one observation; non-finite values are ignored. */
  observe(x: ArrayLike<number>, y: number): void {
    if (!Number.isFinite(y)) return;
    for (let i = 0; i < this.#n; i++) if (!Number.isFinite(x[i]!)) return;
    const n = this.#n;
    const p = this.#p;
    const px = this.#px;
    const residual = y - this.predict(x);
    const abs = Math.abs(residual);
    const limit = this.#huber * this.#scale;
    const weight = abs <= limit ? 1 : limit / abs;
    // The scale follows the residuals' typical size; a clipped residual adds at most `limit` to it.
    this.#scale = Math.max(1e-9, 0.98 * this.#scale + 0.02 * Math.min(abs, limit) * 1.25);
    let xpx = 0;
    for (let i = 0; i < n; i++) {
      let sum = 0;
      for (let j = 0; j < n; j++) sum += p[i * n + j]! * x[j]!;
      px[i] = sum;
      xpx += x[i]! * sum;
    }
    const denominator = this.#lambda / weight + xpx;
    for (let i = 0; i < n; i++) {
      const gain = px[i]! / denominator;
      this.#theta[i] = Math.max(this.#floor[i]!, this.#theta[i]! + gain * residual);
    }
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) p[i * n + j] = (p[i * n + j]! - (px[i]! * px[j]!) / denominator) / this.#lambda;
    }
    // Forgetting inflates the variance of parameters the observations do not excite (windup); keep each
    // at most its prior variance, scaling its row and column alike so P stays positive definite.
    for (let i = 0; i < n; i++) {
      const v = p[i * n + i]!;
      if (v <= this.#maxVariance[i]!) continue;
      const f = Math.sqrt(this.#maxVariance[i]! / v);
      for (let j = 0; j < n; j++) {
        p[i * n + j] = p[i * n + j]! * f;
        p[j * n + i] = p[j * n + i]! * f;
      }
    }
    this.#count++;
  }
}
