export { DEFAULT_INLINE_MAX_TOKENS, PreparePool, type PreparePoolOptions } from "./pool.js";
export { Preparer, type OverlapReader } from "./preparer.js";
export { DEFAULT_TOKENIZE_CACHE_MB } from "./tokenize/index.js";
export type { PrepareInput, PrepareResult, PrepareTask, Prepared, PrepareRejected, TokenizerInfo } from "./tasks.js";
