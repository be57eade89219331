import { readFile } from "node:fs/promises";
import { join } from "node:path";
import xxhash from "xxhash-wasm";
import { packageRoot } from "../../../util/package-root.js";
import { badTokenError, checkArguments } from "./validate.js";

export type Tokens = Uint32Array | ArrayLike<number>;

export interface BlockHasher {
  /** Which implementation runs: the WASM kernel, or xxhash-wasm per block when the kernel is not built. */
  readonly kind: "kernel" | "xxhash-wasm";
  /**
   * Chained sequence hashes of every full block of `tokens` (a trailing partial block is ignored):
   * block i is XXH64 of its tokens as little-endian u32 bytes, seeded with the hash of block i - 1,
   * block 0 seeded with `rootSeed`. Length is floor(tokens.length / blockSize).
   *
   * With `out`, hashes are written into it and a view of its first blocks is returned: a hot path that
   * reuses one array avoids allocating a fresh typed array per prompt, which costs more than the hashing
   * for short prompts. `out` must hold at least floor(tokens.length / blockSize) hashes.
   */
  hashBlocks(tokens: Tokens, blockSize: number, rootSeed: bigint, out?: BigUint64Array): BigUint64Array;
}

interface KernelExports {
  memory: WebAssembly.Memory;
  hashBlocks(tokensPtr: number, nBlocks: number, blockSize: number, seedLo: number, seedHi: number, outPtr: number): number;
  heapBase(): number;
}

const PAGE = 65536;
/** Tokens per kernel call: 256 KiB of ids, hashed in about a millisecond. */
const CHUNK_TOKENS = 65_536;

export function kernelPath(): string {
  return join(packageRoot(), "wasm", "build", "kernel.wasm");
}

let compiled: Promise<WebAssembly.Module> | undefined;

/** Compiles the kernel once per thread; each hasher gets its own instance (and memory). */
function compileKernel(): Promise<WebAssembly.Module> {
  compiled ??= readFile(kernelPath()).then((bytes) => WebAssembly.compile(bytes));
  return compiled;
}

/**
 * A block hasher backed by the WASM kernel. When the kernel has not been built, falls back to xxhash-wasm
 * called per block (same results, slower) unless `{ kernel: "require" }` is given.
 */
export async function createBlockHasher(options: { kernel?: "prefer" | "require" | "avoid" } = {}): Promise<BlockHasher> {
  const mode = options.kernel ?? "prefer";
  if (mode !== "avoid") {
    try {
      const instance = await WebAssembly.instantiate(await compileKernel(), {});
      return new KernelHasher(instance.exports as unknown as KernelExports);
    } catch (err) {
      if (mode === "require") throw err;
      process.emitWarning(`kvroute: WASM kernel unavailable (${(err as Error).message}); hashing with xxhash-wasm per block`);
    }
  }
  return createReferenceHasher();
}

class KernelHasher implements BlockHasher {
  readonly kind = "kernel" as const;
  readonly #k: KernelExports;
  readonly #base: number;
  #words: Uint32Array;
  #wide: BigUint64Array;

  constructor(exports: KernelExports) {
    this.#k = exports;
    this.#base = exports.heapBase();
    this.#words = new Uint32Array(exports.memory.buffer);
    this.#wide = new BigUint64Array(exports.memory.buffer);
  }

  hashBlocks(tokens: Tokens, blockSize: number, rootSeed: bigint, out?: BigUint64Array): BigUint64Array {
    checkArguments(tokens, blockSize, rootSeed);
    const nBlocks = Math.floor(tokens.length / blockSize);
    const result = resultArray(nBlocks, out);
    if (!(tokens instanceof Uint32Array)) {
      // Validate every id, those past the last full block too: a bad id is bad input wherever it sits.
      for (let i = 0; i < tokens.length; i++) {
        const v = tokens[i]!;
        if (v >>> 0 !== v) throw badTokenError(v, i);
      }
    }
    // A long prompt goes through the kernel a chunk at a time, each chunk seeded with the hash before it,
    // so that the kernel's memory never grows past one chunk (growing it costs tens of milliseconds).
    const chunkBlocks = Math.max(1, Math.floor(CHUNK_TOKENS / blockSize));
    let seed = rootSeed;
    for (let first = 0; first < nBlocks; first += chunkBlocks) {
      const count = Math.min(chunkBlocks, nBlocks - first);
      // A prompt of one chunk (nearly all of them) writes straight into the result, with no view to make.
      const into = count === result.length ? result : result.subarray(first, first + count);
      this.#hashChunk(tokens, first * blockSize, count, blockSize, seed, into);
      seed = result[first + count - 1]!;
    }
    return result;
  }

  /** Hashes `count` blocks of `tokens` from `start` into `into`; the ids are known to be valid u32. */
  #hashChunk(tokens: Tokens, start: number, count: number, blockSize: number, seed: bigint, into: BigUint64Array): void {
    const nTokens = count * blockSize;
    // Layout: tokens at base, then the output (8-byte aligned).
    const tokensPtr = this.#base;
    const outPtr = tokensPtr + Math.ceil((nTokens * 4) / 8) * 8;
    this.#reserve(outPtr + count * 8);
    const words = this.#words;
    const at = tokensPtr >>> 2;
    if (tokens instanceof Uint32Array) {
      words.set(tokens.subarray(start, start + nTokens), at);
    } else {
      for (let i = 0; i < nTokens; i++) words[at + i] = tokens[start + i]!;
    }
    this.#k.hashBlocks(tokensPtr, count, blockSize, Number(seed & 0xffffffffn), Number(seed >> 32n), outPtr);
    into.set(this.#wide.subarray(outPtr >>> 3, (outPtr >>> 3) + count));
  }

  #reserve(bytes: number): void {
    const memory = this.#k.memory;
    if (bytes <= memory.buffer.byteLength) return;
    memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / PAGE));
    this.#words = new Uint32Array(memory.buffer);
    this.#wide = new BigUint64Array(memory.buffer);
  }
}

function resultArray(nBlocks: number, out: BigUint64Array | undefined): BigUint64Array {
  if (out === undefined) return new BigUint64Array(nBlocks);
  if (!(out instanceof BigUint64Array) || out.length < nBlocks) {
    throw new RangeError(`out must be a BigUint64Array of at least ${nBlocks} hashes, got ${out instanceof BigUint64Array ? `length ${out.length}` : typeof out}`);
  }
  return out.length === nBlocks ? out : out.subarray(0, nBlocks);
}

/** xxhash-wasm's h64Raw applied block by block: the reference the kernel must match, and its fallback. */
export async function createReferenceHasher(): Promise<BlockHasher> {
  const { h64Raw } = await xxhash();
  return {
    kind: "xxhash-wasm",
    hashBlocks(tokens: Tokens, blockSize: number, rootSeed: bigint, out?: BigUint64Array): BigUint64Array {
      checkArguments(tokens, blockSize, rootSeed);
      let words: Uint32Array;
      if (tokens instanceof Uint32Array) {
        words = tokens;
      } else {
        words = new Uint32Array(tokens.length);
        for (let i = 0; i < tokens.length; i++) {
          const v = tokens[i]!;
          if (v >>> 0 !== v) throw badTokenError(v, i);
          words[i] = v;
        }
      }
      const nBlocks = Math.floor(words.length / blockSize);
      const result = resultArray(nBlocks, out);
      const bytes = new Uint8Array(words.buffer, words.byteOffset, nBlocks * blockSize * 4);
      let seed = rootSeed;
      for (let i = 0; i < nBlocks; i++) {
        seed = h64Raw(bytes.subarray(i * blockSize * 4, (i + 1) * blockSize * 4), seed);
        result[i] = seed;
      }
      return result;
    },
  };
}
