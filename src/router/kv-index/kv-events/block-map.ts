// One engine rank's blocks: engine block hash → the router's hash of the same block, and how many copies
// the engine holds in each medium. An open-addressing table over u32 halves (linear probing, deletion by
// backward shift) in one typed array, so that applying an event makes no BigInt and no object per block.

const MIN_CAPACITY = 1024;
/** u32 words per slot, side by side so that a lookup touches one cache line: */
const STRIDE = 6;
const STATE = 0; // EMPTY or USED
const KEY_LO = 1;
const KEY_HI = 2;
const ROUTER_LO = 3;
const ROUTER_HI = 4;
/** Copies held per medium, one byte per medium code (media.ts), saturating at 255. */
const COPIES = 5;
const EMPTY = 0;
const USED = 1;

export class EngineBlockMap {
  #mask: number;
  #size = 0;
  #slots: Uint32Array;

  constructor(capacity = MIN_CAPACITY) {
    const slots = Math.max(MIN_CAPACITY, 2 ** Math.ceil(Math.log2(capacity)));
    this.#mask = slots - 1;
    this.#slots = new Uint32Array(slots * STRIDE);
  }

  get size(): number {
    return this.#size;
  }

  /** Bytes the map's array takes. */
  get bytes(): number {
    return this.#slots.byteLength;
  }

  /** The slot of the engine hash (lo, hi), or -1. */
  find(lo: number, hi: number): number {
    const mask = this.#mask;
    const slots = this.#slots;
    for (let i = slotOf(lo, hi) & mask; ; i = (i + 1) & mask) {
      const at = i * STRIDE;
      if (slots[at + STATE] === EMPTY) return -1;
      if (slots[at + KEY_LO] === lo && slots[at + KEY_HI] === hi) return i;
    }
  }

  /**
   * The slot of the engine hash (lo, hi), adding it (with no copies, router hash 0) when absent. Growing
   * moves slots, so a slot is valid only until the next `insert`.
   */
  insert(lo: number, hi: number): number {
    if ((this.#size + 1) * 2 > this.#mask + 1) this.#grow();
    const mask = this.#mask;
    const slots = this.#slots;
    let i = slotOf(lo, hi) & mask;
    for (; slots[i * STRIDE + STATE] !== EMPTY; i = (i + 1) & mask) {
      if (slots[i * STRIDE + KEY_LO] === lo && slots[i * STRIDE + KEY_HI] === hi) return i;
    }
    const at = i * STRIDE;
    slots[at + STATE] = USED;
    slots[at + KEY_LO] = lo;
    slots[at + KEY_HI] = hi;
    slots[at + ROUTER_LO] = 0;
    slots[at + ROUTER_HI] = 0;
    slots[at + COPIES] = 0;
    this.#size++;
    return i;
  }

  /** Deletes a slot's entry, shifting later entries of its probe run back so that lookups need no tombstones. */
  delete(slot: number): void {
    const mask = this.#mask;
    const slots = this.#slots;
    let hole = slot;
    for (let i = (slot + 1) & mask; slots[i * STRIDE + STATE] !== EMPTY; i = (i + 1) & mask) {
      const home = slotOf(slots[i * STRIDE + KEY_LO]!, slots[i * STRIDE + KEY_HI]!) & mask;
      // Move i into the hole unless its home lies cyclically in (hole, i].
      if (((i - home) & mask) >= ((i - hole) & mask)) {
        slots.copyWithin(hole * STRIDE, i * STRIDE, (i + 1) * STRIDE);
        hole = i;
      }
    }
    slots[hole * STRIDE + STATE] = EMPTY;
    this.#size--;
  }

  routerLo(slot: number): number {
    return this.#slots[slot * STRIDE + ROUTER_LO]!;
  }

  routerHi(slot: number): number {
    return this.#slots[slot * STRIDE + ROUTER_HI]!;
  }

  setRouter(slot: number, lo: number, hi: number): void {
    this.#slots[slot * STRIDE + ROUTER_LO] = lo;
    this.#slots[slot * STRIDE + ROUTER_HI] = hi;
  }

  /** All media's copy counts, one byte each (medium m in bits 8m..8m+7). */
  copies(slot: number): number {
    return this.#slots[slot * STRIDE + COPIES]!;
  }

  setCopies(slot: number, copies: number): void {
    this.#slots[slot * STRIDE + COPIES] = copies;
  }

  /** Calls fn(slot) for every entry. fn must not insert or delete. */
  forEach(fn: (slot: number) => void): void {
    for (let i = 0; i <= this.#mask; i++) if (this.#slots[i * STRIDE + STATE] === USED) fn(i);
  }

  clear(): void {
    this.#mask = MIN_CAPACITY - 1;
    this.#size = 0;
    this.#slots = new Uint32Array(MIN_CAPACITY * STRIDE);
  }

  #grow(): void {
    const old = this.#slots;
    this.#mask = (this.#mask + 1) * 2 - 1;
    this.#slots = new Uint32Array((this.#mask + 1) * STRIDE);
    for (let at = 0; at < old.length; at += STRIDE) {
      if (old[at + STATE] !== USED) continue;
      let i = slotOf(old[at + KEY_LO]!, old[at + KEY_HI]!) & this.#mask;
      while (this.#slots[i * STRIDE + STATE] !== EMPTY) i = (i + 1) & this.#mask;
      this.#slots.set(old.subarray(at, at + STRIDE), i * STRIDE);
    }
  }
}

/**
 * Home slot of an engine hash. vLLM's hashes are digests, but older builds hash with Python's hash(), so
 * the halves are mixed rather than trusted to be uniform in their low bits.
 */
function slotOf(lo: number, hi: number): number {
  let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
