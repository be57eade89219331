// One engine rank's blocks: engine block hash → the router's hash of the same block, and how many copies
// the engine holds in each medium. An open-addressing table over u32 halves (linear probing, deletion by
// backward shift), so that applying an event makes no BigInt and no object per block.

const MIN_CAPACITY = 1024;
const EMPTY = 0;
const USED = 1;

export class EngineBlockMap {
  #mask: number;
  #size = 0;
  #state: Uint8Array;
  #keyLo: Uint32Array;
  #keyHi: Uint32Array;
  #routerLo: Uint32Array;
  #routerHi: Uint32Array;
  /** Copies held per medium, one byte per medium code (media.ts), saturating at 255. */
  #copies: Uint32Array;

  constructor(capacity = MIN_CAPACITY) {
    const slots = Math.max(MIN_CAPACITY, 2 ** Math.ceil(Math.log2(capacity)));
    this.#mask = slots - 1;
    this.#state = new Uint8Array(slots);
    this.#keyLo = new Uint32Array(slots);
    this.#keyHi = new Uint32Array(slots);
    this.#routerLo = new Uint32Array(slots);
    this.#routerHi = new Uint32Array(slots);
    this.#copies = new Uint32Array(slots);
  }

  get size(): number {
    return this.#size;
  }

  /** Bytes the map's arrays take. */
  get bytes(): number {
    return (this.#mask + 1) * 21;
  }

  /** The slot of the engine hash (lo, hi), or -1. */
  find(lo: number, hi: number): number {
    const mask = this.#mask;
    for (let i = slotOf(lo, hi) & mask; ; i = (i + 1) & mask) {
      if (this.#state[i] === EMPTY) return -1;
      if (this.#keyLo[i] === lo && this.#keyHi[i] === hi) return i;
    }
  }

  /**
   * The slot of the engine hash (lo, hi), adding it (with no copies, router hash 0) when absent. Growing
   * moves slots, so a slot is valid only until the next `insert`.
   */
  insert(lo: number, hi: number): number {
    if ((this.#size + 1) * 2 > this.#mask + 1) this.#grow();
    const mask = this.#mask;
    let i = slotOf(lo, hi) & mask;
    for (; this.#state[i] !== EMPTY; i = (i + 1) & mask) {
      if (this.#keyLo[i] === lo && this.#keyHi[i] === hi) return i;
    }
    this.#state[i] = USED;
    this.#keyLo[i] = lo;
    this.#keyHi[i] = hi;
    this.#routerLo[i] = 0;
    this.#routerHi[i] = 0;
    this.#copies[i] = 0;
    this.#size++;
    return i;
  }

  /** Deletes a slot's entry, shifting later entries of its probe run back so that lookups need no tombstones. */
  delete(slot: number): void {
    const mask = this.#mask;
    let hole = slot;
    for (let i = (slot + 1) & mask; this.#state[i] !== EMPTY; i = (i + 1) & mask) {
      const home = slotOf(this.#keyLo[i]!, this.#keyHi[i]!) & mask;
      // Move i into the hole unless its home lies cyclically in (hole, i].
      if (((i - home) & mask) >= ((i - hole) & mask)) {
        this.#move(i, hole);
        hole = i;
      }
    }
    this.#state[hole] = EMPTY;
    this.#size--;
  }

  routerLo(slot: number): number {
    return this.#routerLo[slot]!;
  }

  routerHi(slot: number): number {
    return this.#routerHi[slot]!;
  }

  setRouter(slot: number, lo: number, hi: number): void {
    this.#routerLo[slot] = lo;
    this.#routerHi[slot] = hi;
  }

  /** All media's copy counts, one byte each (medium m in bits 8m..8m+7). */
  copies(slot: number): number {
    return this.#copies[slot]!;
  }

  setCopies(slot: number, copies: number): void {
    this.#copies[slot] = copies;
  }

  /** Calls fn(slot) for every entry. fn must not insert or delete. */
  forEach(fn: (slot: number) => void): void {
    for (let i = 0; i <= this.#mask; i++) if (this.#state[i] === USED) fn(i);
  }

  clear(): void {
    const fresh = new EngineBlockMap();
    this.#mask = fresh.#mask;
    this.#size = 0;
    this.#state = fresh.#state;
    this.#keyLo = fresh.#keyLo;
    this.#keyHi = fresh.#keyHi;
    this.#routerLo = fresh.#routerLo;
    this.#routerHi = fresh.#routerHi;
    this.#copies = fresh.#copies;
  }

  #move(from: number, to: number): void {
    this.#state[to] = USED;
    this.#keyLo[to] = this.#keyLo[from]!;
    this.#keyHi[to] = this.#keyHi[from]!;
    this.#routerLo[to] = this.#routerLo[from]!;
    this.#routerHi[to] = this.#routerHi[from]!;
    this.#copies[to] = this.#copies[from]!;
  }

  #grow(): void {
    const old = { state: this.#state, keyLo: this.#keyLo, keyHi: this.#keyHi, routerLo: this.#routerLo, routerHi: this.#routerHi, copies: this.#copies };
    const slots = (this.#mask + 1) * 2;
    this.#mask = slots - 1;
    this.#state = new Uint8Array(slots);
    this.#keyLo = new Uint32Array(slots);
    this.#keyHi = new Uint32Array(slots);
    this.#routerLo = new Uint32Array(slots);
    this.#routerHi = new Uint32Array(slots);
    this.#copies = new Uint32Array(slots);
    for (let j = 0; j < old.state.length; j++) {
      if (old.state[j] !== USED) continue;
      let i = slotOf(old.keyLo[j]!, old.keyHi[j]!) & this.#mask;
      while (this.#state[i] !== EMPTY) i = (i + 1) & this.#mask;
      this.#state[i] = USED;
      this.#keyLo[i] = old.keyLo[j]!;
      this.#keyHi[i] = old.keyHi[j]!;
      this.#routerLo[i] = old.routerLo[j]!;
      this.#routerHi[i] = old.routerHi[j]!;
      this.#copies[i] = old.copies[j]!;
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
