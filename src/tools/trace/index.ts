export { parseAzureTimestamp } from "./azure.js";
export { MOONCAKE_BLOCK_SIZE, openTrace, readAll, type OpenTraceOptions } from "./loader.js";
export { summarizeTrace, type TraceSummary } from "./summary.js";
export {
  blockTokens,
  createPromptSynthesizer,
  DEFAULT_BLOCK_SIZE,
  QWEN3_VOCAB_SIZE,
  type PromptSynthesisOptions,
  type PromptSynthesizer,
} from "./synthesis.js";
export {
  TraceError,
  type BadLine,
  type BadLineKind,
  type TraceFormat,
  type TraceRecord,
  type TraceReport,
  type TraceSource,
} from "./types.js";
export { GENERATED_ID_BASE, parseWorkloadSpec, sharedPrefixWorkload, type SharedPrefixOptions } from "./workload.js";
