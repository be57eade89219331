// The prefix index's single writer: stores chains of blocks for an engine, removes them, drops an engine,
// empties the table. It composes three parts, each owning its own words of the shared records and its own
// private state:
//   entries.ts   which ways and records are in use: finding a key, placing a new one, freeing an entry;
//   holes.ts     engine bits, parent links and child counts, and the per-engine hole counts readers need;
//   eviction.ts  the store clock, and which entry to evict when a new key has no room.
//
// Invariants, between operations (each part's header lists its own):
//   - an entry exists exactly while at least one engine holds it: dropping the last holder, by removal or
//     eviction, frees the entry;
//   - an entry's parent link is the one its last store gave it: the block before it in that chain (for the
//     chain's first block the caller's parent, ROOT for a chain start), with the parent's meta word then.
//     A parent that is not in the table gives a new entry MISSING and leaves an existing entry's link as
//     it was. A block that is its own parent (a 64-bit hash collision) is treated as a chain start;
//   - blocks[e] is the number of entries e holds. Like the entry count, each operation publishes its net
//     change once at its end rather than paying an atomic add per block.

import { Entries } from "./entries.js";
import { Eviction } from "./eviction.js";
import { Holes } from "./holes.js";
import { MISSING, Placement, R_ENGINES, R_META, ROOT, type Views } from "./layout.js";

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
  readonly #heap: Uint32Array;
  readonly #stride: number;
  readonly #words: number;
  readonly #entries: Entries;
  readonly #holes: Holes;
  readonly #eviction: Eviction;
  /** Per-engine block count changes not yet published, and the engines that have one. */
  readonly #blockDelta: Int32Array;
  readonly #touched: number[] = [];

  constructor(v: Views) {
    this.#v = v;
    this.#place = new Placement(v);
    this.#heap = v.heap;
    this.#stride = v.stride;
    this.#words = v.words;
    this.#entries = new Entries(v, this.#place);
    this.#holes = new Holes(v);
    this.#eviction = new Eviction(v, this.#entries, this.#holes);
    this.#blockDelta = new Int32Array(v.maxEngines);
  }

  /** Number of (entry, engine) pairs with two or more held children (the child-count map's size). */
  get branchPairs(): number {
    return this.#holes.branchPairs;
  }

  occupiedWays(set: number): number {
    return this.#entries.occupiedWays(set);
  }

  get freeRecords(): number {
    return this.#entries.freeRecords;
  }

  childCount(record: number, engine: number): number {
    return this.#holes.childCount(record, engine);
  }

  find(lo: number, hi: number): number {
    return this.#entries.find(lo, hi);
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
    const entries = this.#entries;
    const holes = this.#holes;
    let link = ROOT;
    let linkMeta = 0;
    if (!rooted) {
      const p = entries.find(parentLo, parentHi);
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
      let record = entries.findFrom(first, keyLo, keyHi);
      let r: number;
      if (record < 0) {
        record = this.#insert(keyLo, keyHi, first, link);
        r = record * stride;
        holes.link(r, link, linkMeta);
      } else {
        r = record * stride;
        if (link !== MISSING && !holes.linkedTo(r, link, linkMeta)) {
          // A block is its own parent only through a 64-bit hash collision; treat it as a chain start.
          holes.relink(record, link === record ? ROOT : link, link === record ? 0 : linkMeta);
        }
      }
      if (!holes.held(engine, r)) this.#addHolder(engine, record);
      this.#eviction.stamp(r);
      link = record;
      linkMeta = heap[r + R_META]!;
    }
    this.#publishCounts();
  }

  /** Records that `engine` no longer holds the n blocks of q. Blocks it does not hold are skipped. */
  remove(engine: number, q: Uint32Array, lo: number, hi: number, n: number): number {
    const entries = this.#entries;
    const holes = this.#holes;
    const stride = this.#stride;
    let removed = 0;
    // Last first: removals usually name a chain in order, and dropping its tail first never leaves a child
    // without its parent on the way.
    for (let i = n - 1; i >= 0; i--) {
      const record = entries.find(q[2 * i + lo]!, q[2 * i + hi]!);
      if (record >= 0 && holes.held(engine, record * stride)) {
        this.#dropHolder(engine, record);
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
        this.#dropHolder(engine, record);
        removed++;
      }
    }
    this.#publishCounts();
    return removed;
  }

  /** Empties the table. Readers see entries disappear one by one, never a half-cleared entry. */
  clear(): void {
    const v = this.#v;
    for (let record = v.records - 1; record >= 0; record--) {
      if (!this.#entries.inUse(record)) continue;
      this.#holes.clearHolders(record);
      this.#deleteEntry(record);
    }
    for (const e of this.#touched) this.#blockDelta[e] = 0;
    this.#touched.length = 0;
    this.#holes.reset();
    for (let e = 0; e < v.maxEngines; e++) Atomics.store(v.blocks, e, 0);
    this.#entries.resetSize();
  }

  /**
   * A record for a new key whose first set is a (entries.ts places it). When the key has no room, an entry
   * of its sets is evicted first (eviction.ts); `protect` (the new key's parent) is never chosen.
   */
  #insert(lo: number, hi: number, a: number, protect: number): number {
    const entries = this.#entries;
    let b = -1;
    // The second set matters only when the first is nearly full or a record must be freed.
    if (entries.crowded(a)) {
      b = this.#place.second(lo, hi);
      if (entries.noRoom(a, b)) this.#evict(this.#eviction.victim(a, b, protect));
    }
    return entries.claim(lo, hi, a, b);
  }

  /** Drops every holder of `record`, the last of which frees it, and counts the eviction. */
  #evict(record: number): void {
    const r = record * this.#stride;
    for (let w = 0; w < this.#words; w++) {
      let x = this.#heap[r + R_ENGINES + w]!;
      while (x !== 0) {
        const bit = x & -x;
        x ^= bit;
        this.#dropHolder(w * 32 + 31 - Math.clz32(bit), record);
      }
    }
    this.#eviction.count();
  }

  #addHolder(engine: number, record: number): void {
    this.#holes.addHolder(engine, record);
    this.#countBlocks(engine, 1);
  }

  /** Takes `engine` off an entry it holds; the entry is freed when no engine holds it any more. */
  #dropHolder(engine: number, record: number): void {
    this.#holes.removeHolder(engine, record);
    this.#countBlocks(engine, -1);
    if (!this.#holes.anyHolder(record * this.#stride)) this.#deleteEntry(record);
  }

  /** Frees an entry no engine holds. Its children's links die with its meta word, which freeing changes. */
  #deleteEntry(record: number): void {
    this.#holes.forget(record);
    this.#entries.release(record);
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
    this.#entries.publishSize();
  }
}
