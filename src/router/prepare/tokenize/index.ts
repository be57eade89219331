export { defaultTokenizerDir, readTokenizerFiles, type TokenizerFiles } from "./files.js";
export {
  DEFAULT_TOKENIZE_CACHE_MB,
  loadTokenizer,
  TextTokenizer,
  type CacheInfo,
  type ChatMessage,
  type EncoderInfo,
  type LimitedResult,
  type LimitOptions,
  type PiecewiseEncoding,
  type SpecialTokensInContent,
  type TokenizerOptions,
} from "./tokenizer.js";
export { runPiecewise } from "./piecewise.js";
