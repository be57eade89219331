export { PrefixIndex, type PrefixIndexOptions, type PrefixIndexShared, type PrefixIndexStats } from "./prefix-index.js";
export { checkOptions, DEFAULT_MAX_ENGINES, MAX_ENGINES } from "./layout.js";
