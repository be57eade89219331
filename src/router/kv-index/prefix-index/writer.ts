// The prefix index's single writer: inserts, removals, eviction, and the bookkeeping that keeps the
// readers' prefix search exact.
//
// Holes. The readers' search (reader.ts) is exact for an engine whose holding is prefix-closed: every block
// it holds either starts a prompt or has its parent held too. The writer records each entry's parent (the
// block before it in the chain it was stored with) and counts, per engine, the blocks that engine holds
// without their parent: its holes. Readers walk block by block only for engines whose count is not zero.
//
// The count is exact, which needs the children of an entry per engine: when an engine drops a block, each
// of its children that the engine holds becomes a hole; when it stores the block again, they stop being
// holes. So every entry keeps one bit per engine "this engine holds at least one child of mine", and the
// entries with two or more held children for one engine (branch points, where prompts sharing a prefix
// part ways) keep the exact count in a map.
//
// A parent link names the parent's record and the parent's meta word at linking time. When the parent entry
// is deleted or evicted its meta changes and the link is dead: the child then counts as a hole for every
// engine holding it, until it is stored again under a live parent (which relinks it) or removed.
//
// Ordering against readers: a hole count is raised before the bit that creates the hole is set, and lowered
// only after the bit that fills it is set, so a reader that saw a count of zero before reading bits cannot
// be misled by a hole made while it reads. Every store to a word readers confirm (meta, key, engine bits)
// is an atomic one; an entry's key is written before its meta says OCCUPIED. A deleted entry's way keeps
// its stale fingerprint and record index, and its record its stale key; readers ignore a record whose meta
// no longer says OCCUPIED or whose key is another.

import {
  H_EVICTIONS_HI,
  H_EVICTIONS_LO,
  H_SIZE,
  H_TOTAL_HOLES,
  MISSING,
  OCCUPIED,
  PREFER_FIRST,
  Placement,
  R_ENGINES,
  R_KEY_HI,
  R_KEY_LO,
  R_META,
  ROOT,
  SET_OVERFLOW,
  SET_RECORDS,
  SET_WORDS,
  WAYS,
  fingerprint,
  fingerprintMatches,
  nextMeta,
  type Views,
} from "./layout.js";

const FULL = (1 << WAYS) - 1;

/** Writer-private bytes: per set, its occupied ways; per record, its place in the free list. */
export const WRITER_BYTES_PER_SET = 2;
export const WRITER_BYTES_PER_RECORD = 4;

/**
 * The writer's bookkeeping that lives outside shared memory, read-only: for consistency checks that recount
 * it from the shared records (the tests' audit). Nothing on the request path uses it.
 */
export interface WriterBookkeeping {
  /** A bit per occupied way of `set`. */
  occupiedWays(set: number): number;
  /** Records on the free list. */
  readonly freeRecords: number;
  /** The held children of `record` counted for `engine`. */
  childCount(record: number, engine: number): number;
  /** The record the writer's own lookup finds key (lo, hi) in, or -1. */
  find(lo: number, hi: number): number;
}

export class IndexWriter implements WriterBookkeeping {
  readonly #v: Views;
  readonly #place: Placement;
  readonly #table: Uint32Array;
  readonly #tableBytes: Uint8Array;
  readonly #heap: Uint32Array;
  readonly #stride: number;
  readonly #words: number;
  readonly #maxEngines: number;
  readonly #stampAt: number;
  readonly #parentAt: number;
  readonly #parentMetaAt: number;
  readonly #slotAt: number;
  readonly #childrenAt: number;
  /** Per set, a bit per occupied way. */
  readonly #occupied: Uint16Array;
  /** Free records, a stack: the last freed is reused first, so that chains stored together sit together. */
  readonly #free: Int32Array;
  #freeCount = 0;
  /** (record * maxEngines + engine) → number of held children, for the pairs where it is 2 or more. */
  readonly #childExtra = new Map<number, number>();
  #clock = 0;
  /** Where the eviction fallback's sweep over the records is. */
  #hand = 0;
  /**
   * Entry and per-engine block count changes not yet published. The shared counters are statistics, so
   * each operation publishes its net change once at its end rather than paying an atomic add per block.
   */
  #sizeDelta = 0;
  readonly #blockDelta: Int32Array;
  readonly #touched: number[] = [];

  constructor(v: Views) {
    this.#v = v;
    this.#place = new Placement(v);
    this.#table = v.table;
    this.#tableBytes = v.tableBytes;
    this.#heap = v.heap;
    this.#stride = v.stride;
    this.#words = v.words;
    this.#maxEngines = v.maxEngines;
    this.#stampAt = v.stampAt;
    this.#parentAt = v.parentAt;
    this.#parentMetaAt = v.parentMetaAt;
    this.#slotAt = v.slotAt;
    this.#childrenAt = v.childrenAt;
    this.#occupied = new Uint16Array(v.sets);
    this.#free = new Int32Array(v.records);
    this.#blockDelta = new Int32Array(v.maxEngines);
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

  /** Number of (entry, engine) pairs with two or more held children (the child-count map's size). */
  get branchPairs(): number {
    return this.#childExtra.size;
  }

  occupiedWays(set: number): number {
    return this.#occupied[set]!;
  }

  get freeRecords(): number {
    return this.#freeCount;
  }

  childCount(record: number, engine: number): number {
    return this.#childCount(record, engine);
  }

  /** The record holding key (lo, hi), or -1. */
  find(lo: number, hi: number): number {
    const a = this.#place.first(lo, hi);
    const record = this.#findIn(a, lo, hi);
    if (record >= 0 || this.#table[a * SET_WORDS + SET_OVERFLOW] === 0) return record;
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

  /**
   * Records that `engine` holds the n blocks of q (u32 pairs, `lo`/`hi` word offsets), a chain in which
   * block i's parent is block i - 1. Block 0's parent is the block keyed (parentLo, parentHi), or none when
   * `rooted` (block 0 starts a prompt).
   */
  store(engine: number, q: Uint32Array, lo: number, hi: number, n: number, rooted: boolean, parentLo: number, parentHi: number): void {
    const heap = this.#heap;
    const stride = this.#stride;
    const place = this.#place;
    let link = ROOT;
    let linkMeta = 0;
    if (!rooted) {
      const p = this.find(parentLo, parentHi);
      if (p < 0) link = MISSING;
      else {
        link = p;
        linkMeta = heap[p * stride + R_META]!;
      }
    }
    for (let i = 0; i < n; i++) {
      const keyLo = q[2 * i + lo]!;
      const keyHi = q[2 * i + hi]!;
      const first = place.first(keyLo, keyHi);
      let record = this.#findIn(first, keyLo, keyHi);
      if (record < 0 && this.#table[first * SET_WORDS + SET_OVERFLOW] !== 0) record = this.#findIn(place.second(keyLo, keyHi), keyLo, keyHi);
      let r: number;
      if (record < 0) {
        record = this.#insert(keyLo, keyHi, first, link);
        r = record * stride;
        // No holder yet, so linking needs no bookkeeping.
        heap[r + this.#parentAt] = link;
        heap[r + this.#parentMetaAt] = linkMeta;
      } else {
        r = record * stride;
        if (link !== MISSING && (heap[r + this.#parentAt] !== link || heap[r + this.#parentMetaAt] !== linkMeta)) {
          // A block is its own parent only through a 64-bit hash collision; treat it as a chain start.
          this.#relink(record, link === record ? ROOT : link, link === record ? 0 : linkMeta);
        }
      }
      if (!this.#held(engine, r)) this.#addHolder(engine, record);
      this.#clock = (this.#clock + 1) >>> 0;
      heap[r + this.#stampAt] = this.#clock;
      link = record;
      linkMeta = heap[r + R_META]!;
    }
    this.#publishCounts();
  }

  /** Records that `engine` no longer holds the n blocks of q. Blocks it does not hold are skipped. */
  remove(engine: number, q: Uint32Array, lo: number, hi: number, n: number): number {
    let removed = 0;
    // Last first: removals usually name a chain in order, and dropping its tail first never leaves a child
    // without its parent on the way.
    for (let i = n - 1; i >= 0; i--) {
      const record = this.find(q[2 * i + lo]!, q[2 * i + hi]!);
      if (record >= 0 && this.#held(engine, record * this.#stride)) {
        this.#removeHolder(engine, record);
        removed++;
      }
    }
    this.#publishCounts();
    return removed;
  }

  /** Drops `engine` from every entry: one pass over the records. Returns the number of entries it held. */
  clearEngine(engine: number): number {
    const heap = this.#heap;
    const stride = this.#stride;
    const at = R_ENGINES + (engine >>> 5);
    const bit = 1 << (engine & 31);
    const records = this.#v.records;
    let removed = 0;
    for (let record = 0; record < records; record++) {
      if ((heap[record * stride + at]! & bit) !== 0) {
        this.#removeHolder(engine, record);
        removed++;
      }
    }
    this.#publishCounts();
    return removed;
  }

  /** Empties the table. Readers see entries disappear one by one, never a half-cleared entry. */
  clear(): void {
    const v = this.#v;
    const heap = this.#heap;
    for (let record = v.records - 1; record >= 0; record--) {
      const r = record * this.#stride;
      if ((heap[r + R_META]! & OCCUPIED) === 0) continue;
      for (let w = 0; w < this.#words; w++) Atomics.store(heap, r + R_ENGINES + w, 0);
      this.#deleteEntry(record);
    }
    this.#sizeDelta = 0;
    for (const e of this.#touched) this.#blockDelta[e] = 0;
    this.#touched.length = 0;
    for (let e = 0; e < v.maxEngines; e++) {
      Atomics.store(v.holes, e, 0);
      Atomics.store(v.blocks, e, 0);
    }
    Atomics.store(v.header, H_TOTAL_HOLES, 0);
    Atomics.store(v.header, H_SIZE, 0);
    this.#childExtra.clear();
  }

  #countBlocks(engine: number, delta: number): void {
    if (this.#blockDelta[engine] === 0) this.#touched.push(engine);
    this.#blockDelta[engine]! += delta;
  }

  #publishCounts(): void {
    const v = this.#v;
    for (const e of this.#touched) {
      const delta = this.#blockDelta[e]!;
      if (delta !== 0) Atomics.add(v.blocks, e, delta);
      this.#blockDelta[e] = 0;
    }
    this.#touched.length = 0;
    if (this.#sizeDelta !== 0) Atomics.add(v.header, H_SIZE, this.#sizeDelta);
    this.#sizeDelta = 0;
  }

  /** Whether `engine` holds the entry whose record starts at word r. */
  #held(engine: number, r: number): boolean {
    return ((this.#heap[r + R_ENGINES + (engine >>> 5)]! >>> (engine & 31)) & 1) !== 0;
  }

  #anyHolder(r: number): boolean {
    for (let w = 0; w < this.#words; w++) if (this.#heap[r + R_ENGINES + w] !== 0) return true;
    return false;
  }

  /** Whether the record at word r has a parent link naming an entry that is still the one it was linked to. */
  #live(r: number): boolean {
    const parent = this.#heap[r + this.#parentAt]!;
    return parent < MISSING && this.#heap[parent * this.#stride + R_META] === this.#heap[r + this.#parentMetaAt];
  }

  /** Whether `engine`, holding the entry at word r, holds it without its parent. */
  #orphan(engine: number, r: number): boolean {
    const parent = this.#heap[r + this.#parentAt]!;
    return parent !== ROOT && !(this.#live(r) && this.#held(engine, parent * this.#stride));
  }

  #childCount(record: number, engine: number): number {
    if (((this.#heap[record * this.#stride + this.#childrenAt + (engine >>> 5)]! >>> (engine & 31)) & 1) === 0) return 0;
    return this.#childExtra.get(record * this.#maxEngines + engine) ?? 1;
  }

  #childAdd(record: number, engine: number): void {
    const at = record * this.#stride + this.#childrenAt + (engine >>> 5);
    const bit = 1 << (engine & 31);
    if ((this.#heap[at]! & bit) === 0) {
      this.#heap[at]! |= bit;
      return;
    }
    const key = record * this.#maxEngines + engine;
    this.#childExtra.set(key, (this.#childExtra.get(key) ?? 1) + 1);
  }

  #childSub(record: number, engine: number): void {
    const key = record * this.#maxEngines + engine;
    const count = this.#childExtra.size === 0 ? undefined : this.#childExtra.get(key);
    if (count === undefined) this.#heap[record * this.#stride + this.#childrenAt + (engine >>> 5)]! &= ~(1 << (engine & 31));
    else if (count === 2) this.#childExtra.delete(key);
    else this.#childExtra.set(key, count - 1);
  }

  #addHoles(engine: number, delta: number): void {
    Atomics.add(this.#v.holes, engine, delta);
    Atomics.add(this.#v.header, H_TOTAL_HOLES, delta);
  }

  #addHolder(engine: number, record: number): void {
    const r = record * this.#stride;
    if (this.#live(r)) this.#childAdd(this.#heap[r + this.#parentAt]!, engine);
    if (this.#orphan(engine, r)) this.#addHoles(engine, 1);
    Atomics.or(this.#heap, r + R_ENGINES + (engine >>> 5), 1 << (engine & 31));
    // Its held children were holes while the engine lacked this block.
    const children = this.#childCount(record, engine);
    if (children !== 0) this.#addHoles(engine, -children);
    this.#countBlocks(engine, 1);
  }

  #removeHolder(engine: number, record: number): void {
    const r = record * this.#stride;
    const children = this.#childCount(record, engine);
    if (children !== 0) this.#addHoles(engine, children);
    Atomics.and(this.#heap, r + R_ENGINES + (engine >>> 5), ~(1 << (engine & 31)));
    if (this.#orphan(engine, r)) this.#addHoles(engine, -1);
    if (this.#live(r)) this.#childSub(this.#heap[r + this.#parentAt]!, engine);
    this.#countBlocks(engine, -1);
    if (!this.#anyHolder(r)) this.#deleteEntry(record);
  }

  /** Moves a record's parent link, keeping every holder's hole count and the parents' child counts exact. */
  #relink(record: number, parent: number, parentMeta: number): void {
    const heap = this.#heap;
    const r = record * this.#stride;
    const holders: number[] = [];
    for (let w = 0; w < this.#words; w++) {
      let x = heap[r + R_ENGINES + w]!;
      while (x !== 0) {
        const bit = x & -x;
        x ^= bit;
        holders.push(w * 32 + 31 - Math.clz32(bit));
      }
    }
    const oldLive = this.#live(r);
    const oldParent = heap[r + this.#parentAt]!;
    const wasOrphan = holders.map((e) => this.#orphan(e, r));
    heap[r + this.#parentAt] = parent;
    heap[r + this.#parentMetaAt] = parentMeta;
    const newLive = this.#live(r);
    holders.forEach((e, i) => {
      if (oldLive) this.#childSub(oldParent, e);
      if (newLive) this.#childAdd(parent, e);
      const delta = (this.#orphan(e, r) ? 1 : 0) - (wasOrphan[i] ? 1 : 0);
      if (delta !== 0) this.#addHoles(e, delta);
    });
  }

  /**
   * A record for a new key, placed in a free way of its first set a, or of its second set b when a holds
   * PREFER_FIRST entries or more and b fewer, or a is full (layout.ts).
   * When both are full, or every record is in use, an entry of the two sets is evicted first: the least
   * recently stored one that no engine holds a child of (a leaf: evicting it breaks no chain), or the least
   * recently stored one when every one is a parent. `protect` (the new key's parent) is never chosen.
   */
  #insert(lo: number, hi: number, a: number, protect: number): number {
    let fillA = popcount(this.#occupied[a]!);
    let set = a;
    // The second set matters only when the first is nearly full or a record must be freed.
    if (fillA >= PREFER_FIRST || this.#freeCount === 0) {
      const b = this.#place.second(lo, hi);
      if ((fillA === WAYS && this.#occupied[b] === FULL) || this.#freeCount === 0) {
        this.#evict(this.#victim(a, b, protect));
        fillA = popcount(this.#occupied[a]!);
      }
      if (fillA === WAYS || (fillA >= PREFER_FIRST && popcount(this.#occupied[b]!) < fillA)) set = b;
    }
    if (set !== a) Atomics.add(this.#table, a * SET_WORDS + SET_OVERFLOW, 1);
    const free = ~this.#occupied[set]! & FULL;
    const way = 31 - Math.clz32(free & -free);
    const record = this.#free[--this.#freeCount]!;
    const heap = this.#heap;
    const r = record * this.#stride;
    heap[r + this.#parentAt] = MISSING;
    heap[r + this.#parentMetaAt] = 0;
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

  #victim(a: number, b: number, protect: number): number {
    const choice = { record: -1, age: -1, leaf: false };
    for (const set of [a, b]) {
      for (let way = 0; way < WAYS; way++) {
        if (((this.#occupied[set]! >>> way) & 1) !== 0) this.#consider(this.#table[set * SET_WORDS + SET_RECORDS + way]!, protect, choice);
      }
    }
    // Every record is in use but the key's sets hold none to spare: take the best of a window of records
    // from a hand that sweeps the heap.
    for (let i = 0; choice.record < 0 && i < this.#v.records; i += 32) {
      for (let k = 0; k < 32; k++) {
        this.#hand = (this.#hand + 1) % this.#v.records;
        if ((this.#heap[this.#hand * this.#stride + R_META]! & OCCUPIED) !== 0) this.#consider(this.#hand, protect, choice);
      }
    }
    return choice.record;
  }

  /** Keeps `record` as the victim if it beats the current one: a leaf over a parent, then the older. */
  #consider(record: number, protect: number, choice: { record: number; age: number; leaf: boolean }): void {
    if (record === protect) return;
    const r = record * this.#stride;
    let leaf = true;
    for (let w = 0; w < this.#words; w++) if (this.#heap[r + this.#childrenAt + w] !== 0) leaf = false;
    const age = (this.#clock - this.#heap[r + this.#stampAt]!) >>> 0;
    if ((leaf && !choice.leaf) || (leaf === choice.leaf && age > choice.age)) {
      choice.record = record;
      choice.age = age;
      choice.leaf = leaf;
    }
  }

  #evict(record: number): void {
    const v = this.#v;
    const r = record * this.#stride;
    for (let w = 0; w < this.#words; w++) {
      let x = this.#heap[r + R_ENGINES + w]!;
      while (x !== 0) {
        const bit = x & -x;
        x ^= bit;
        this.#removeHolder(w * 32 + 31 - Math.clz32(bit), record); // the last one deletes the entry
      }
    }
    const lo = (v.header[H_EVICTIONS_LO]! + 1) | 0;
    Atomics.store(v.header, H_EVICTIONS_LO, lo);
    if (lo === 0) Atomics.add(v.header, H_EVICTIONS_HI, 1);
  }

  /** Frees a record no engine holds, and its way. Its children's links die with its meta word. */
  #deleteEntry(record: number): void {
    const heap = this.#heap;
    const r = record * this.#stride;
    for (let w = 0; w < this.#words; w++) {
      let x = heap[r + this.#childrenAt + w]!;
      while (x !== 0) {
        const bit = x & -x;
        x ^= bit;
        this.#childExtra.delete(record * this.#maxEngines + w * 32 + 31 - Math.clz32(bit));
      }
      heap[r + this.#childrenAt + w] = 0;
    }
    // One atomic store: the key, the way's fingerprint and record index stay behind, and readers skip a
    // record that is not OCCUPIED.
    Atomics.store(heap, r + R_META, nextMeta(heap[r + R_META]!, false));
    heap[r + this.#parentAt] = MISSING;
    const slot = heap[r + this.#slotAt]!;
    const set = Math.floor(slot / WAYS);
    const first = this.#place.first(heap[r + R_KEY_LO]!, heap[r + R_KEY_HI]!);
    if (set !== first) Atomics.sub(this.#table, first * SET_WORDS + SET_OVERFLOW, 1);
    this.#occupied[set]! &= ~(1 << (slot % WAYS));
    this.#free[this.#freeCount++] = record;
    this.#sizeDelta--;
  }
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x5555;
  x = (x & 0x3333) + ((x >>> 2) & 0x3333);
  x = (x + (x >>> 4)) & 0x0f0f;
  return (x + (x >>> 8)) & 0x1f;
}
