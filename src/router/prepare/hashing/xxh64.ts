// XXH64 in plain TypeScript. Used for root seeds (short strings, synchronous) and as the portable
// baseline the benchmark compares the WASM kernel against. A u64 is carried as two u32 halves (hi, lo):
// a BigInt per arithmetic step would be far slower than this.

const P1H = 0x9e3779b1, P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d, P2L = 0x27d4eb4f;
const P3H = 0x165667b1, P3L = 0x9e3779f9;
const P4H = 0x85ebca77, P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f, P5L = 0x165667c5;
const NEG_P1H = 0x61c8864e, NEG_P1L = 0x7a143579; // 2^64 - P1, so that seed - P1 is an addition
const TWO32 = 4294967296;

// Result registers of the helpers below; avoids allocating a pair per operation.
// Halves are kept as signed int32 (`| 0`): V8 stores those unboxed, while u32 values above 2^31 would
// become heap numbers on every write and make this several times slower.
let H = 0;
let L = 0;

/** (ah:al) * (bh:bl) mod 2^64. The low half is Math.imul; the high half adds the u32 product's upper bits. */
function mul(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff, a1 = al >>> 16, b0 = bl & 0xffff, b1 = bl >>> 16;
  // Each partial sum stays below 2^32, so >>> keeps it exact.
  const t1 = a1 * b0 + ((a0 * b0) >>> 16);
  const t2 = a0 * b1 + (t1 & 0xffff);
  L = Math.imul(al, bl);
  H = (a1 * b1 + (t1 >>> 16) + (t2 >>> 16) + Math.imul(al, bh) + Math.imul(ah, bl)) | 0;
}

function add(ah: number, al: number, bh: number, bl: number): void {
  const low = (al >>> 0) + (bl >>> 0);
  L = low | 0;
  H = (ah + bh + (low >= TWO32 ? 1 : 0)) | 0;
}

/** Rotate left by r, 0 < r < 32 (the only amounts XXH64 uses). */
function rotl(h: number, l: number, r: number): void {
  H = (h << r) | (l >>> (32 - r));
  L = (l << r) | (h >>> (32 - r));
}

/** round(acc, lane) = rotl(acc + lane * P2, 31) * P1 */
function round(accH: number, accL: number, laneH: number, laneL: number): void {
  mul(laneH, laneL, P2H, P2L);
  add(accH, accL, H, L);
  rotl(H, L, 31);
  mul(H, L, P1H, P1L);
}

/** mergeRound(acc, v) = (acc ^ round(0, v)) * P1 + P4 */
function mergeRound(accH: number, accL: number, vH: number, vL: number): void {
  round(0, 0, vH, vL);
  mul(accH ^ H, accL ^ L, P1H, P1L);
  add(H, L, P4H, P4L);
}

function u32At(b: Uint8Array, p: number): number {
  return b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24);
}

/** XXH64 of `length` bytes of `data` from `offset`, seeded with (seedH, seedL) (u32 or int32 halves); result in (out[0]=hi, out[1]=lo). */
export function xxh64Into(
  data: Uint8Array,
  offset: number,
  length: number,
  seedH: number,
  seedL: number,
  out: Uint32Array,
): void {
  let p = offset;
  const end = offset + length;
  let hH: number, hL: number;
  if (length >= 32) {
    add(seedH, seedL, P1H, P1L); add(H, L, P2H, P2L);
    let v1H = H, v1L = L;
    add(seedH, seedL, P2H, P2L);
    let v2H = H, v2L = L;
    let v3H = seedH, v3L = seedL;
    add(seedH, seedL, NEG_P1H, NEG_P1L);
    let v4H = H, v4L = L;
    const limit = end - 32;
    do {
      round(v1H, v1L, u32At(data, p + 4), u32At(data, p)); v1H = H; v1L = L;
      round(v2H, v2L, u32At(data, p + 12), u32At(data, p + 8)); v2H = H; v2L = L;
      round(v3H, v3L, u32At(data, p + 20), u32At(data, p + 16)); v3H = H; v3L = L;
      round(v4H, v4L, u32At(data, p + 28), u32At(data, p + 24)); v4H = H; v4L = L;
      p += 32;
    } while (p <= limit);
    rotl(v1H, v1L, 1); hH = H; hL = L;
    rotl(v2H, v2L, 7); add(hH, hL, H, L); hH = H; hL = L;
    rotl(v3H, v3L, 12); add(hH, hL, H, L); hH = H; hL = L;
    rotl(v4H, v4L, 18); add(hH, hL, H, L); hH = H; hL = L;
    mergeRound(hH, hL, v1H, v1L);
    mergeRound(H, L, v2H, v2L);
    mergeRound(H, L, v3H, v3L);
    mergeRound(H, L, v4H, v4L);
    hH = H; hL = L;
  } else {
    add(seedH, seedL, P5H, P5L); hH = H; hL = L;
  }
  add(hH, hL, Math.floor(length / TWO32), length | 0); hH = H; hL = L;
  while (p + 8 <= end) {
    round(0, 0, u32At(data, p + 4), u32At(data, p));
    rotl(hH ^ H, hL ^ L, 27);
    mul(H, L, P1H, P1L); add(H, L, P4H, P4L); hH = H; hL = L;
    p += 8;
  }
  if (p + 4 <= end) {
    mul(0, u32At(data, p), P1H, P1L);
    rotl(hH ^ H, hL ^ L, 23);
    mul(H, L, P2H, P2L); add(H, L, P3H, P3L); hH = H; hL = L;
    p += 4;
  }
  while (p < end) {
    mul(0, data[p]!, P5H, P5L);
    rotl(hH ^ H, hL ^ L, 11);
    mul(H, L, P1H, P1L); hH = H; hL = L;
    p++;
  }
  hL ^= hH >>> 1;
  mul(hH, hL, P2H, P2L); hH = H; hL = L;
  hL ^= (hL >>> 29) | (hH << 3); hH ^= hH >>> 29;
  mul(hH, hL, P3H, P3L); hH = H; hL = L;
  hL ^= hH;
  out[0] = hH;
  out[1] = hL;
}

const scratch = new Uint32Array(2);

/** XXH64 of a byte string. */
export function xxh64(data: Uint8Array, seed = 0n): bigint {
  xxh64Into(data, 0, data.length, Number(seed >> 32n), Number(seed & 0xffffffffn), scratch);
  return (BigInt(scratch[0]!) << 32n) | BigInt(scratch[1]!);
}

/** Chained block hashes in plain TypeScript: the same contract as the WASM kernel, for comparison. */
export function hashBlocksPlain(tokens: Uint32Array, blockSize: number, seed: bigint, into?: BigUint64Array): BigUint64Array {
  const nBlocks = Math.floor(tokens.length / blockSize);
  const out = into ? into.subarray(0, nBlocks) : new BigUint64Array(nBlocks);
  const halves = new Uint32Array(out.buffer, out.byteOffset, nBlocks * 2);
  const bytes = new Uint8Array(tokens.buffer, tokens.byteOffset, nBlocks * blockSize * 4);
  let sH = Number(seed >> 32n), sL = Number(seed & 0xffffffffn);
  const pair = new Uint32Array(2);
  for (let i = 0; i < nBlocks; i++) {
    xxh64Into(bytes, i * blockSize * 4, blockSize * 4, sH, sL, pair);
    sH = pair[0]!; sL = pair[1]!;
    halves[2 * i] = sL; // little-endian u64: low half first
    halves[2 * i + 1] = sH;
  }
  return out;
}
