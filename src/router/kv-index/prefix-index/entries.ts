// The writer's side of the table (layout.ts): which ways and records are in use, finding a key, placing a
// new key in a way, and freeing an entry. It decides where a key goes, never what to evict (eviction.ts)
// nor who holds an entry (holes.ts).
//
// Invariants, between the writer's operations:
//   - a way is marked occupied exactly when it points at an OCCUPIED record whose slot field names it back,
//     and that way's fingerprint is the record key's;
//   - the free list holds exactly the records that are not OCCUPIED, the last freed on top, so that the
//     blocks of a chain stored together get records side by side;
//   - a set's overflow count is the number of entries that chose it first but live in their second set;
//   - H_SIZE is the number of OCCUPIED records (the writer publishes each operation's net change at its end).
//
// Ordering against readers: an entry's key is written, atomically, before its meta says OCCUPIED, and
// freeing it is one atomic store to its meta. A freed entry's way keeps its stale fingerprint and record
// index, and its record its stale key; readers ignore a record whose meta no longer says OCCUPIED or whose
// key is another.

import {
  H_SIZE,
  OCCUPIED,
  PREFER_FIRST,
  R_KEY_HI,
  R_KEY_LO,
  R_META,
  SET_OVERFLOW,
  SET_RECORDS,
  SET_WORDS,
  WAYS,
  fingerprint,
  fingerprintMatches,
  nextMeta,
  type Placement,
  type Views,
} from "./layout.js";

const FULL = (1 << WAYS) - 1;

/** Writer-private bytes: per set, its occupied ways; per record, its place in the free list. */
export const WRITER_BYTES_PER_SET = 2;
export const WRITER_BYTES_PER_RECORD = 4;

export class Entries {
  readonly #header: Int32Array;
  readonly #place: Placement;
  readonly #table: Uint32Array;
  readonly #tableBytes: Uint8Array;
  readonly #heap: Uint32Array;
  readonly #stride: number;
  readonly #slotAt: number;
  /** Per set, a bit per occupied way. */
  readonly #occupied: Uint16Array;
  /** Free records, a stack: the last freed is reused first, so that chains stored together sit together. */
  readonly #free: Int32Array;
  #freeCount = 0;
  /**
   * Entry count change not yet published. H_SIZE is a statistic, so each operation publishes its net
   * change once at its end rather than paying an atomic add per block.
   */
  #sizeDelta = 0;

  constructor(v: Views, place: Placement) {
    this.#header = v.header;
    this.#place = place;
    this.#table = v.table;
    this.#tableBytes = v.tableBytes;
    this.#heap = v.heap;
    this.#stride = v.stride;
    this.#slotAt = v.slotAt;
    this.#occupied = new Uint16Array(v.sets);
    this.#free = new Int32Array(v.records);
    // A writer taking over a table (PrefixIndex.recover) rebuilds its occupancy and free list from the
    // records; the free list is pushed from the top so that fresh records are handed out in order.
    for (let record = v.records - 1; record >= 0; record--) {
      const r = record * this.#stride;
      if ((this.#heap[r + R_META]! & OCCUPIED) === 0) {
        this.#free[this.#freeCount++] = record;
      } else {
        const slot = this.#heap[r + this.#slotAt]!;
        this.#occupied[Math.floor(slot / WAYS)]! |= 1 << (slot % WAYS);
      }
    }
  }

  /** A bit per occupied way of `set`. */
  occupiedWays(set: number): number {
    return this.#occupied[set]!;
  }

  /** The record way `way` of `set` points at. */
  recordAt(set: number, way: number): number {
    return this.#table[set * SET_WORDS + SET_RECORDS + way]!;
  }

  /** Whether `record` holds an entry. */
  inUse(record: number): boolean {
    return (this.#heap[record * this.#stride + R_META]! & OCCUPIED) !== 0;
  }

  get freeRecords(): number {
    return this.#freeCount;
  }

  /** The record holding key (lo, hi), or -1. */
  find(lo: number, hi: number): number {
    return this.findFrom(this.#place.first(lo, hi), lo, hi);
  }

  /** `find` for a key whose first set the caller has computed. */
  findFrom(first: number, lo: number, hi: number): number {
    const record = this.#findIn(first, lo, hi);
    if (record >= 0 || this.#table[first * SET_WORDS + SET_OVERFLOW] === 0) return record;
    return this.#findIn(this.#place.second(lo, hi), lo, hi);
  }

  #findIn(set: number, lo: number, hi: number): number {
    const heap = this.#heap;
    let candidates = fingerprintMatches(this.#table, set, fingerprint(hi)) & this.#occupied[set]!;
    while (candidates !== 0) {
      const way = 31 - Math.clz32(candidates & -candidates);
      candidates &= candidates - 1;
      const record = this.#table[set * SET_WORDS + SET_RECORDS + way]!;
      const r = record * this.#stride;
      if (heap[r + R_KEY_LO] === lo && heap[r + R_KEY_HI] === hi) return record;
    }
    return -1;
  }

  /** Whether placing a key whose first set is `a` involves its second: a is nearly full, or no record is free. */
  crowded(a: number): boolean {
    return popcount(this.#occupied[a]!) >= PREFER_FIRST || this.#freeCount === 0;
  }

  /** Whether a key of sets a and b has no room until an entry goes: both sets are full, or no record is free. */
  noRoom(a: number, b: number): boolean {
    return (this.#occupied[a] === FULL && this.#occupied[b] === FULL) || this.#freeCount === 0;
  }

  /**
   * A record and a way for new key (lo, hi), which must have room: a way of its first set a, or of its
   * second set b when a holds PREFER_FIRST entries or more and b fewer, or a is full (layout.ts). b is -1
   * when `crowded(a)` was false: the key then goes to a without looking at b.
   */
  claim(lo: number, hi: number, a: number, b: number): number {
    let set = a;
    if (b >= 0) {
      const fillA = popcount(this.#occupied[a]!);
      if (fillA === WAYS || (fillA >= PREFER_FIRST && popcount(this.#occupied[b]!) < fillA)) set = b;
    }
    if (set !== a) Atomics.add(this.#table, a * SET_WORDS + SET_OVERFLOW, 1);
    const free = ~this.#occupied[set]! & FULL;
    const way = 31 - Math.clz32(free & -free);
    const record = this.#free[--this.#freeCount]!;
    const heap = this.#heap;
    const r = record * this.#stride;
    heap[r + this.#slotAt] = set * WAYS + way;
    // Key first, then meta: a reader sees OCCUPIED only with the new key in place.
    Atomics.store(heap, r + R_KEY_LO, lo);
    Atomics.store(heap, r + R_KEY_HI, hi);
    Atomics.store(heap, r + R_META, nextMeta(heap[r + R_META]!, true));
    this.#table[set * SET_WORDS + SET_RECORDS + way] = record;
    this.#tableBytes[set * SET_WORDS * 4 + way] = fingerprint(hi);
    this.#occupied[set]! |= 1 << way;
    this.#sizeDelta++;
    return record;
  }

  /**
   * Frees the record of an entry no engine holds, and its way. One atomic store to its meta: the key, the
   * way's fingerprint and record index stay behind, and readers skip a record that is not OCCUPIED.
   */
  release(record: number): void {
    const heap = this.#heap;
    const r = record * this.#stride;
    Atomics.store(heap, r + R_META, nextMeta(heap[r + R_META]!, false));
    const slot = heap[r + this.#slotAt]!;
    const set = Math.floor(slot / WAYS);
    const first = this.#place.first(heap[r + R_KEY_LO]!, heap[r + R_KEY_HI]!);
    if (set !== first) Atomics.sub(this.#table, first * SET_WORDS + SET_OVERFLOW, 1);
    this.#occupied[set]! &= ~(1 << (slot % WAYS));
    this.#free[this.#freeCount++] = record;
    this.#sizeDelta--;
  }

  /** Adds the entry count change since the last call to H_SIZE. */
  publishSize(): void {
    if (this.#sizeDelta !== 0) Atomics.add(this.#header, H_SIZE, this.#sizeDelta);
    this.#sizeDelta = 0;
  }

  /** Sets H_SIZE to 0, dropping the unpublished change: for `clear`, once every entry is released. */
  resetSize(): void {
    this.#sizeDelta = 0;
    Atomics.store(this.#header, H_SIZE, 0);
  }
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x5555;
  x = (x & 0x3333) + ((x >>> 2) & 0x3333);
  x = (x + (x >>> 4)) & 0x0f0f;
  return (x + (x >>> 8)) & 0x1f;
}
