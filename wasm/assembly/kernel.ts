// Chained XXH64 block hashing, compiled to WebAssembly by AssemblyScript.
//
// The host writes a prompt's token ids (u32, little-endian) into linear memory and calls hashBlocks once;
// the kernel hashes every full block and writes one u64 per block. Block i is XXH64 of its tokens'
// bytes seeded with the hash of block i-1, so the whole prompt costs one boundary crossing.
// The seed arrives as two u32 halves so the host never has to build a BigInt on the hot path.

const P1: u64 = 0x9e3779b185ebca87;
const P2: u64 = 0xc2b2ae3d27d4eb4f;
const P3: u64 = 0x165667b19e3779f9;
const P4: u64 = 0x85ebca77c2b2ae63;
const P5: u64 = 0x27d4eb2f165667c5;

// @ts-ignore: decorator
@inline function round(acc: u64, lane: u64): u64 {
  return rotl<u64>(acc + lane * P2, 31) * P1;
}

// @ts-ignore: decorator
@inline function mergeRound(acc: u64, v: u64): u64 {
  return (acc ^ round(0, v)) * P1 + P4;
}

/** XXH64 of `len` bytes at `ptr` with `seed`. */
export function xxh64(ptr: usize, len: usize, seed: u64): u64 {
  return hash(ptr, len, seed);
}

// Inlined into the block loop: a call per block costs measurably at 16-token blocks.
// @ts-ignore: decorator
@inline function hash(ptr: usize, len: usize, seed: u64): u64 {
  const end = ptr + len;
  let h: u64;
  if (len >= 32) {
    let v1 = seed + P1 + P2;
    let v2 = seed + P2;
    let v3 = seed;
    let v4 = seed - P1;
    const limit = end - 32;
    do {
      v1 = round(v1, load<u64>(ptr));
      v2 = round(v2, load<u64>(ptr, 8));
      v3 = round(v3, load<u64>(ptr, 16));
      v4 = round(v4, load<u64>(ptr, 24));
      ptr += 32;
    } while (ptr <= limit);
    h = rotl<u64>(v1, 1) + rotl<u64>(v2, 7) + rotl<u64>(v3, 12) + rotl<u64>(v4, 18);
    h = mergeRound(h, v1);
    h = mergeRound(h, v2);
    h = mergeRound(h, v3);
    h = mergeRound(h, v4);
  } else {
    h = seed + P5;
  }
  h += <u64>len;
  while (ptr + 8 <= end) {
    h ^= round(0, load<u64>(ptr));
    h = rotl<u64>(h, 27) * P1 + P4;
    ptr += 8;
  }
  if (ptr + 4 <= end) {
    h ^= <u64>load<u32>(ptr) * P1;
    h = rotl<u64>(h, 23) * P2 + P3;
    ptr += 4;
  }
  while (ptr < end) {
    h ^= <u64>load<u8>(ptr) * P5;
    h = rotl<u64>(h, 11) * P1;
    ptr++;
  }
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  return h;
}

/**
 * Hashes `nBlocks` consecutive blocks of `blockSize` u32 tokens starting at `tokensPtr`, chained from the
 * seed (seedLo | seedHi << 32), writing one u64 per block at `outPtr`. Returns the number of blocks written.
 */
export function hashBlocks(
  tokensPtr: usize,
  nBlocks: u32,
  blockSize: u32,
  seedLo: u32,
  seedHi: u32,
  outPtr: usize,
): u32 {
  const blockBytes = <usize>blockSize << 2;
  let seed: u64 = (<u64>seedHi << 32) | <u64>seedLo;
  let ptr = tokensPtr;
  let out = outPtr;
  for (let i: u32 = 0; i < nBlocks; i++) {
    seed = hash(ptr, blockBytes, seed);
    store<u64>(out, seed);
    ptr += blockBytes;
    out += 8;
  }
  return nBlocks;
}

/** First byte the host may use: everything the module itself places in memory ends before it. */
export function heapBase(): usize {
  return (__heap_base + 15) & ~15;
}
