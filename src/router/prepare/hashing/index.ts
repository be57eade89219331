export { createBlockHasher, createReferenceHasher, kernelPath, type BlockHasher, type Tokens } from "./block-hasher.js";
export { rootSeed, type SeedParts } from "./root-seed.js";
export { hashBlocksPlain, xxh64 } from "./xxh64.js";
