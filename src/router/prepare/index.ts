export { DEFAULT_INLINE_MAX_TOKENS, PreparePool, type PrepareLimits, type PreparePoolOptions } from "./pool.js";
export { PREPARE_SLICE_CHARS, Preparer, tokenizePrompt, type OverlapReader } from "./preparer.js";
export { DEFAULT_TOKENIZE_CACHE_MB, type SpecialTokensInContent } from "./tokenize/index.js";
export type { PrepareInput, PrepareResult, PrepareTask, Prepared, PrepareRejected, TokenizerInfo } from "./tasks.js";
