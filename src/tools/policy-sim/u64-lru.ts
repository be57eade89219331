// A least-recently-used set of at most `capacity` 64-bit block hashes, in typed arrays: an open-addressing
// table (linear probing, backward-shift deletion, so no tombstones) maps a hash to its entry, and the
// entries form a doubly linked list from the least to the most recently used. A fleet's worth of blocks
// (hundreds of thousands) costs a few megabytes, where a Map<bigint> would cost tens.
//
// Invariants: every live entry is reachable from exactly one table slot, found by probing from its home
// slot without crossing an empty slot; the list holds exactly the live entries.
import { HI, LO } from "../../util/u64.js";

const NONE = -1;

export class U64Lru {
  readonly capacity: number;
  /** Slot → entry + 1 (0: empty). */
  readonly #slots: Int32Array;
  readonly #mask: number;
  readonly #lo: Uint32Array;
  readonly #hi: Uint32Array;
  readonly #prev: Int32Array;
  readonly #next: Int32Array;
  #head = NONE; // least recently used
  #tail = NONE; // most recently used
  #size = 0;

  constructor(capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    this.capacity = capacity;
    const slots = 2 ** Math.ceil(Math.log2(capacity * 2));
    this.#slots = new Int32Array(slots);
    this.#mask = slots - 1;
    this.#lo = new Uint32Array(capacity);
    this.#hi = new Uint32Array(capacity);
    this.#prev = new Int32Array(capacity);
    this.#next = new Int32Array(capacity);
  }

  get size(): number {
    return this.#size;
  }

  /** Whether the hash in words[2i..] is held; does not change its recency. */
  has(words: Uint32Array, i: number): boolean {
    return this.#find(words[2 * i + LO]!, words[2 * i + HI]!) >= 0;
  }

  /** Makes the hash the most recently used, adding it (and evicting the least recently used) if absent. */
  touch(words: Uint32Array, i: number): void {
    const lo = words[2 * i + LO]!;
    const hi = words[2 * i + HI]!;
    const slot = this.#find(lo, hi);
    if (slot >= 0) {
      const entry = this.#slots[slot]! - 1;
      this.#unlink(entry);
      this.#append(entry);
      return;
    }
    let entry: number;
    if (this.#size < this.capacity) {
      entry = this.#size++;
    } else {
      entry = this.#head;
      this.#unlink(entry);
      this.#remove(this.#find(this.#lo[entry]!, this.#hi[entry]!));
    }
    this.#lo[entry] = lo;
    this.#hi[entry] = hi;
    this.#append(entry);
    let s = lo & this.#mask;
    while (this.#slots[s] !== 0) s = (s + 1) & this.#mask;
    this.#slots[s] = entry + 1;
  }

  #find(lo: number, hi: number): number {
    for (let s = lo & this.#mask; ; s = (s + 1) & this.#mask) {
      const v = this.#slots[s]!;
      if (v === 0) return NONE;
      const e = v - 1;
      if (this.#lo[e] === lo && this.#hi[e] === hi) return s;
    }
  }

  /** Empties a slot and shifts back later entries of its probe run, so none is cut off from its home. */
  #remove(slot: number): void {
    const mask = this.#mask;
    let hole = slot;
    this.#slots[hole] = 0;
    for (let s = (hole + 1) & mask; this.#slots[s] !== 0; s = (s + 1) & mask) {
      const home = this.#lo[this.#slots[s]! - 1]! & mask;
      // The entry at s may move to the hole if its home is not cyclically in (hole, s].
      const distanceToS = (s - home) & mask;
      const distanceToHole = (hole - home) & mask;
      if (distanceToHole < distanceToS) {
        this.#slots[hole] = this.#slots[s]!;
        this.#slots[s] = 0;
        hole = s;
      }
    }
  }

  #unlink(e: number): void {
    const p = this.#prev[e]!;
    const n = this.#next[e]!;
    if (p === NONE) this.#head = n;
    else this.#next[p] = n;
    if (n === NONE) this.#tail = p;
    else this.#prev[n] = p;
  }

  #append(e: number): void {
    this.#prev[e] = this.#tail;
    this.#next[e] = NONE;
    if (this.#tail === NONE) this.#head = e;
    else this.#next[this.#tail] = e;
    this.#tail = e;
  }
}
