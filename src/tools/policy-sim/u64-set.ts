// A set of 64-bit block hashes in one typed array (open addressing, linear probing), for the millions of
// distinct blocks of a long trace: 8 bytes a slot, where a Set<bigint> takes over 50 bytes an entry. The
// hashes are XXH64 values, so their low word is already a good slot index.
import { HI, LO } from "../../util/u64.js";

const MAX_LOAD = 0.7;

export class U64Set {
  #slots: Uint32Array;
  #mask: number;
  #size = 0;
  /** The all-zero hash, which marks empty slots, is kept aside. */
  #hasZero = false;

  constructor(capacity = 1024) {
    const slots = 2 ** Math.ceil(Math.log2(Math.max(16, capacity / MAX_LOAD)));
    this.#slots = new Uint32Array(2 * slots);
    this.#mask = slots - 1;
  }

  get size(): number {
    return this.#size;
  }

  /** Whether the hash in words (words[2i + LO], words[2i + HI]) is present. */
  has(words: Uint32Array, i: number): boolean {
    const lo = words[2 * i + LO]!;
    const hi = words[2 * i + HI]!;
    if (lo === 0 && hi === 0) return this.#hasZero;
    const slots = this.#slots;
    for (let s = lo & this.#mask; ; s = (s + 1) & this.#mask) {
      const slo = slots[2 * s]!;
      const shi = slots[2 * s + 1]!;
      if (slo === lo && shi === hi) return true;
      if (slo === 0 && shi === 0) return false;
    }
  }

  /** Adds the hash at words[2i..]; returns whether it was new. */
  add(words: Uint32Array, i: number): boolean {
    const lo = words[2 * i + LO]!;
    const hi = words[2 * i + HI]!;
    if (lo === 0 && hi === 0) {
      if (this.#hasZero) return false;
      this.#hasZero = true;
      this.#size++;
      return true;
    }
    if (this.#size + 1 > MAX_LOAD * (this.#mask + 1)) this.#grow();
    if (!this.#insert(lo, hi)) return false;
    this.#size++;
    return true;
  }

  #insert(lo: number, hi: number): boolean {
    const slots = this.#slots;
    for (let s = lo & this.#mask; ; s = (s + 1) & this.#mask) {
      const slo = slots[2 * s]!;
      const shi = slots[2 * s + 1]!;
      if (slo === lo && shi === hi) return false;
      if (slo === 0 && shi === 0) {
        slots[2 * s] = lo;
        slots[2 * s + 1] = hi;
        return true;
      }
    }
  }

  #grow(): void {
    const old = this.#slots;
    this.#slots = new Uint32Array(old.length * 2);
    this.#mask = this.#slots.length / 2 - 1;
    for (let s = 0; s < old.length; s += 2) {
      if (old[s] !== 0 || old[s + 1] !== 0) this.#insert(old[s]!, old[s + 1]!);
    }
  }
}
