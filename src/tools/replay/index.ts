export { LatencyHistogram, type LatencySummary } from "./histogram.js";
export { clockText, Progress, progressLine, type ProgressCounts, type ProgressMode } from "./progress.js";
export { renderReport } from "./report.js";
export {
  CACHED_SOURCE_HEADER,
  ENGINE_HEADER,
  streamCompletion,
  type CompletionCall,
  type Measurement,
  type RequestError,
  type RequestErrorKind,
  type ReportedUsage,
} from "./request.js";
export { resultOf, type RequestResult } from "./result.js";
export { defaultResultsDir, ResultsFolder, type ResultFiles } from "./results.js";
export { completionRequestBody, runReplay, type ReplayOptions, type ReplayRun, type StopReason } from "./runner.js";
export { meetsSlo, parseSlo, ReplayStats, type ErrorSample, type ReplaySummary, type RunInfo, type Slo } from "./stats.js";
export { apiBase, discoverModel } from "./target.js";
export { Timeline, type TimelinePoint } from "./timeline.js";
export { int } from "./format.js";
