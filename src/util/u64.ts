// A u64 as two u32 words. Block hashes travel as BigUint64Arrays, and the hot paths read them through a
// Uint32Array view of the same memory so that no BigInt is made per block; which word of the pair holds
// which half depends on the platform's byte order.

export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Indices of the low and high u32 halves of a u64 in a Uint32Array view of a BigUint64Array. */
export const LO = LITTLE_ENDIAN ? 0 : 1;
export const HI = 1 - LO;
