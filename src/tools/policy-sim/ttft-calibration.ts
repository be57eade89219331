// How well the routing core's time model predicted the TTFTs of a simulated run: every first token is set
// beside the TTFT the model predicted, when it chose that engine, for the same attempt (a disaggregated
// request has two: its prefill's and its decode's). The simulation's counterpart of serve's
// kvroute_ttft_observed_over_predicted metric, so that a policy's table row can be read with the accuracy
// of the predictions it was decided by.

/** The run's figures, in ms; null means when no first token was predicted. */
export interface TtftCalibrationFigures {
  firstTokens: number;
  predictedMeanMs: number | null;
  observedMeanMs: number | null;
  /** Mean of |observed − predicted|. */
  meanAbsErrorMs: number | null;
}

export class TtftCalibration {
  #count = 0;
  #predicted = 0;
  #observed = 0;
  #absError = 0;

  observe(predictedMs: number, observedMs: number): void {
    this.#count++;
    this.#predicted += predictedMs;
    this.#observed += observedMs;
    this.#absError += Math.abs(observedMs - predictedMs);
  }

  figures(): TtftCalibrationFigures {
    const n = this.#count;
    const mean = (sum: number) => (n > 0 ? sum / n : null);
    return { firstTokens: n, predictedMeanMs: mean(this.#predicted), observedMeanMs: mean(this.#observed), meanAbsErrorMs: mean(this.#absError) };
  }
}
