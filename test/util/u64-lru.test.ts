// The typed-array LRU against a Map-based reference, over random touches, lookups, removals of the oldest
// and clears of a small key space (so that keys collide in the table, are evicted and come back).
import fc from "fast-check";
import { expect, it } from "vitest";
import { U64Lru } from "../../src/util/u64-lru.js";

class ReferenceLru {
  readonly #map = new Map<bigint, number>();
  constructor(readonly capacity: number) {}
  has(key: bigint): boolean {
    return this.#map.has(key);
  }
  touch(key: bigint, stamp: number): void {
    this.#map.delete(key);
    this.#map.set(key, stamp);
    if (this.#map.size > this.capacity) this.#map.delete(this.#map.keys().next().value!);
  }
  oldestStamp(): number {
    return this.#map.size === 0 ? Infinity : this.#map.values().next().value!;
  }
  popOldest(): bigint | null {
    const first = this.#map.keys().next();
    if (first.done) return null;
    this.#map.delete(first.value);
    return first.value;
  }
  clear(): void {
    this.#map.clear();
  }
  get size(): number {
    return this.#map.size;
  }
}

function keyOf(lo: number, hi: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo % 2 === 0 ? lo * 0x10000 : lo * 7 + 120);
}

it("agrees with a Map-based LRU on every lookup", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40 }),
      // Low words from a small set so probe runs overlap and wrap (half share a home slot, half spread
      // out); high words tell keys with the same low word apart.
      fc.array(
        fc.tuple(fc.constantFrom("touch", "touch", "touch", "has", "has", "pop", "clear"), fc.integer({ min: 0, max: 15 }), fc.integer({ min: 0, max: 3 })),
        { maxLength: 400 },
      ),
      (capacity, ops) => {
        const lru = new U64Lru(capacity);
        const ref = new ReferenceLru(capacity);
        const words = new BigUint64Array(1);
        const view = new Uint32Array(words.buffer);
        const out = new BigUint64Array(1);
        const outView = new Uint32Array(out.buffer);
        let stamp = 0;
        for (const [op, lo, hi] of ops) {
          const key = keyOf(lo, hi);
          words[0] = key;
          if (op === "touch") {
            lru.touch(view, 0, ++stamp);
            ref.touch(key, stamp);
          } else if (op === "has") {
            expect(lru.has(view, 0)).toBe(ref.has(key));
          } else if (op === "pop") {
            const expected = ref.popOldest();
            expect(lru.popOldest(outView, 0)).toBe(expected !== null);
            if (expected !== null) expect(out[0]).toBe(expected);
          } else {
            lru.clear();
            ref.clear();
          }
          expect(lru.size).toBe(ref.size);
          expect(lru.oldestStamp()).toBe(ref.oldestStamp());
        }
        // Every key of the space, at the end.
        for (let lo = 0; lo < 16; lo++) {
          for (let hi = 0; hi < 4; hi++) {
            const key = keyOf(lo, hi);
            words[0] = key;
            expect(lru.has(view, 0)).toBe(ref.has(key));
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});

it("refuses a capacity below 1", () => {
  expect(() => new U64Lru(0)).toThrow(RangeError);
});
