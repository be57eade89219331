// How long one engine step takes in the model: a fixed overhead, prefill work proportional to the tokens
// computed, and decode work proportional to the sequences decoded and the KV blocks their attention reads.

export interface TimingModel {
  /** Fixed cost of any step that does work (ms). */
  stepOverheadMs: number;
  /** Per prompt token computed in the step (ms). */
  prefillMsPerToken: number;
  /** Per sequence decoding one token in the step (ms). */
  decodeMsPerSeq: number;
  /** Per KV block held by the sequences in the step (ms): attention reads them all. */
  msPerKvBlock: number;
}

export const DEFAULT_TIMING: TimingModel = {
  stepOverheadMs: 2,
  prefillMsPerToken: 0.08,
  decodeMsPerSeq: 0.05,
  msPerKvBlock: 0.002,
};

export interface StepWork {
  prefillTokens: number;
  decodeSeqs: number;
  kvBlocks: number;
}

export function stepDurationMs(model: TimingModel, work: StepWork): number {
  if (work.prefillTokens === 0 && work.decodeSeqs === 0) return 0;
  return (
    model.stepOverheadMs +
    model.prefillMsPerToken * work.prefillTokens +
    model.decodeMsPerSeq * work.decodeSeqs +
    model.msPerKvBlock * work.kvBlocks
  );
}

/** The timing of an engine `speed` times as fast: every part of every step takes 1/speed as long. */
export function atSpeed(model: TimingModel, speed: number): TimingModel {
  if (!(speed > 0 && Number.isFinite(speed))) throw new RangeError(`an engine's speed must be a number above 0, got ${speed}`);
  return {
    stepOverheadMs: model.stepOverheadMs / speed,
    prefillMsPerToken: model.prefillMsPerToken / speed,
    decodeMsPerSeq: model.decodeMsPerSeq / speed,
    msPerKvBlock: model.msPerKvBlock / speed,
  };
}
