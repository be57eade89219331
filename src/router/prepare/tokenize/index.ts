export { defaultTokenizerDir, readTokenizerFiles, type TokenizerFiles } from "./files.js";
export { loadTokenizer, TextTokenizer, type ChatMessage } from "./tokenizer.js";
