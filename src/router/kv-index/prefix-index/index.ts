export { PrefixIndex, type PrefixIndexOptions, type PrefixIndexShared, type PrefixIndexStats } from "./prefix-index.js";
