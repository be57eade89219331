export { defaultTokenizerDir, readTokenizerFiles, type TokenizerFiles } from "./files.js";
export { loadTokenizer, TextTokenizer, type ChatMessage, type EncoderInfo } from "./tokenizer.js";
