// Checks at the hashing API boundary. Errors name the offending value and where it is.

export const MAX_BLOCK_SIZE = 1 << 20;
const U64_MAX = (1n << 64n) - 1n;

export function checkArguments(tokens: unknown, blockSize: unknown, seed: unknown): void {
  if (typeof tokens !== "object" || tokens === null || typeof (tokens as { length?: unknown }).length !== "number") {
    throw new TypeError(`tokens must be a Uint32Array or an array of numbers, got ${describe(tokens)}`);
  }
  checkBlockSize(blockSize);
  checkSeed(seed);
}

export function checkBlockSize(blockSize: unknown): asserts blockSize is number {
  if (typeof blockSize !== "number" || !Number.isInteger(blockSize) || blockSize < 1 || blockSize > MAX_BLOCK_SIZE) {
    throw new RangeError(
      `block size must be an integer from 1 to ${MAX_BLOCK_SIZE}, got ${describe(blockSize)}`,
    );
  }
}

export function checkSeed(seed: unknown): asserts seed is bigint {
  if (typeof seed !== "bigint" || seed < 0n || seed > U64_MAX) {
    throw new RangeError(`root seed must be a bigint in [0, 2^64 - 1], got ${describe(seed)}`);
  }
}

/** A token id is a u32: an integer from 0 to 4294967295. `(v >>> 0) === v` rejects everything else, NaN included. */
export function badTokenError(value: unknown, index: number): RangeError {
  return new RangeError(`token id at index ${index} is ${describe(value)}: token ids must be integers from 0 to 4294967295`);
}

export function describe(value: unknown): string {
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value == null) return String(value);
  return Object.prototype.toString.call(value);
}
