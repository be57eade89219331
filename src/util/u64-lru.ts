// A least-recently-used set of at most `capacity` 64-bit block hashes, in typed arrays: an open-addressing
// table (linear probing, backward-shift deletion, so no tombstones) maps a hash to its entry, and the
// entries form a doubly linked list from the least to the most recently used. Each entry carries a stamp
// (a time, for callers that expire entries by age). A fleet's worth of blocks (hundreds of thousands)
// costs a few megabytes, where a Map<bigint> would cost tens.
//
// Invariants: every live entry is reachable from exactly one table slot, found by probing from its home
// slot without crossing an empty slot; the list holds exactly the live entries; an entry index is either
// live, on the free stack, or at or above `#used` (never handed out yet).
import { HI, LO } from "./u64.js";

const NONE = -1;

export class U64Lru {
  readonly capacity: number;
  /** Slot → entry + 1 (0: empty). */
  readonly #slots: Int32Array;
  readonly #mask: number;
  readonly #lo: Uint32Array;
  readonly #hi: Uint32Array;
  readonly #stamp: Float64Array;
  readonly #prev: Int32Array;
  readonly #next: Int32Array;
  /** Entries freed by popOldest, to hand out before new ones. */
  readonly #free: Int32Array;
  #freeCount = 0;
  /** Entries handed out at least once: 0..#used-1. */
  #used = 0;
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
    this.#stamp = new Float64Array(capacity);
    this.#prev = new Int32Array(capacity);
    this.#next = new Int32Array(capacity);
    this.#free = new Int32Array(capacity);
  }

  get size(): number {
    return this.#size;
  }

  /** Whether the hash in words[2i..] is held; does not change its recency. */
  has(words: Uint32Array, i: number): boolean {
    return this.#find(words[2 * i + LO]!, words[2 * i + HI]!) >= 0;
  }

  /**
   * Makes the hash the most recently used, with `stamp`, adding it (and evicting the least recently used
   * when full) if absent.
   */
  touch(words: Uint32Array, i: number, stamp = 0): void {
    const lo = words[2 * i + LO]!;
    const hi = words[2 * i + HI]!;
    const slot = this.#find(lo, hi);
    if (slot >= 0) {
      const entry = this.#slots[slot]! - 1;
      this.#stamp[entry] = stamp;
      this.#unlink(entry);
      this.#append(entry);
      return;
    }
    if (this.#size === this.capacity) this.#drop(this.#head);
    const entry = this.#freeCount > 0 ? this.#free[--this.#freeCount]! : this.#used++;
    this.#size++;
    this.#lo[entry] = lo;
    this.#hi[entry] = hi;
    this.#stamp[entry] = stamp;
    this.#append(entry);
    let s = lo & this.#mask;
    while (this.#slots[s] !== 0) s = (s + 1) & this.#mask;
    this.#slots[s] = entry + 1;
  }

  /** The least recently used entry's stamp; Infinity when empty. */
  oldestStamp(): number {
    return this.#head === NONE ? Infinity : this.#stamp[this.#head]!;
  }

  /** Removes the least recently used hash and writes it to out[2at..2at+1]; false when empty. */
  popOldest(out: Uint32Array, at: number): boolean {
    const e = this.#head;
    if (e === NONE) return false;
    out[2 * at + LO] = this.#lo[e]!;
    out[2 * at + HI] = this.#hi[e]!;
    this.#drop(e);
    return true;
  }

  /** Forgets every hash. */
  clear(): void {
    this.#slots.fill(0);
    this.#head = this.#tail = NONE;
    this.#size = this.#used = this.#freeCount = 0;
  }

  /** Unlinks a live entry, empties its slot and puts it on the free stack. */
  #drop(entry: number): void {
    this.#unlink(entry);
    this.#remove(this.#find(this.#lo[entry]!, this.#hi[entry]!));
    this.#size--;
    this.#free[this.#freeCount++] = entry;
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
