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
// A parent link names the parent's slot and the parent's meta word at linking time. When the parent entry
// is deleted or evicted its meta changes and the link is dead: the child then counts as a hole for every
// engine holding it, until it is stored again under a live parent (which relinks it) or removed.
//
// Ordering against readers: a hole count is raised before the bit that creates the hole is set, and lowered
// only after the bit that fills it is set, so a reader that saw a count of zero before reading bits cannot
// be misled by a hole made while it reads. Every store to a word readers confirm (meta, key, engine bits)
// is an atomic one; an entry's key is written before its meta says OCCUPIED, and a deleted entry keeps its
// stale key and fingerprint, which readers ignore because meta no longer says OCCUPIED.


import {
  H_EVICTIONS_HI,
  H_EVICTIONS_LO,
  H_SIZE,
  H_TOTAL_HOLES,
  OCCUPIED,
  Placement,
  R_ENGINES,
  R_KEY_HI,
  R_KEY_LO,
  R_META,
  WAYS,
  fingerprint,
  fingerprintMatches,
  nextMeta,
  type Views,
} from "./layout.js";

/** Parent field values that are not slots. */
const ROOT = 0xffffffff; // the block starts a prompt
const MISSING = 0xfffffffe; // the parent is not in the table

/** Writer-private bytes per set: which of its slots are occupied. */
export const WRITER_BYTES_PER_SET = 2;

export class IndexWriter {
  readonly #v: Views;
  readonly #place: Placement;
  readonly #fps: Uint32Array;
  readonly #fpBytes: Uint8Array;
  readonly #rec: Uint32Array;
  readonly #stride: number;
  readonly #words: number;
  readonly #maxEngines: number;
  readonly #stampAt: number;
  readonly #parentAt: number;
  readonly #parentMetaAt: number;
  readonly #childrenAt: number;
  /** Per set, a bit per occupied slot. */
  readonly #occupied: Uint16Array;
  /** (slot * maxEngines + engine) → number of held children, for the pairs where it is 2 or more. */
  readonly #childExtra = new Map<number, number>();
  #clock = 0;
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
    this.#fps = v.fingerprints;
    this.#fpBytes = v.fingerprintBytes;
    this.#rec = v.records;
    this.#stride = v.stride;
    this.#words = v.words;
    this.#maxEngines = v.maxEngines;
    this.#stampAt = v.stampAt;
    this.#parentAt = v.parentAt;
    this.#parentMetaAt = v.parentMetaAt;
    this.#childrenAt = v.childrenAt;
    this.#occupied = new Uint16Array(v.sets);
    this.#blockDelta = new Int32Array(v.maxEngines);
    // A writer taking over a table (PrefixIndex.recover) rebuilds its occupancy from the meta words.
    for (let s = 0; s < v.slots; s++) {
      if ((this.#rec[s * this.#stride + R_META]! & OCCUPIED) !== 0) this.#occupied[Math.floor(s / WAYS)]! |= 1 << (s % WAYS);
    }
  }

  /** Number of (entry, engine) pairs with two or more held children (the child-count map's size). */
  get branchPairs(): number {
    return this.#childExtra.size;
  }

  find(lo: number, hi: number): number {
    const s = this.#findIn(this.#place.first(lo, hi), lo, hi);
    return s >= 0 ? s : this.#findIn(this.#place.second(lo, hi), lo, hi);
  }

  #findIn(set: number, lo: number, hi: number): number {
    const rec = this.#rec;
    let candidates = fingerprintMatches(this.#fps, set, fingerprint(hi)) & this.#occupied[set]!;
    while (candidates !== 0) {
      const s = set * WAYS + 31 - Math.clz32(candidates & -candidates);
      candidates &= candidates - 1;
      const r = s * this.#stride;
      if (rec[r + R_KEY_LO] === lo && rec[r + R_KEY_HI] === hi) return s;
    }
    return -1;
  }

  /**
   * Records that `engine` holds the n blocks of q (u32 pairs, `lo`/`hi` word offsets), a chain in which
   * block i's parent is block i - 1. Block 0's parent is the block keyed (parentLo, parentHi), or none when
   * `rooted` (block 0 starts a prompt).
   */
  store(engine: number, q: Uint32Array, lo: number, hi: number, n: number, rooted: boolean, parentLo: number, parentHi: number): void {
    const rec = this.#rec;
    const stride = this.#stride;
    const place = this.#place;
    let link = ROOT;
    let linkMeta = 0;
    if (!rooted) {
      const p = this.find(parentLo, parentHi);
      if (p < 0) link = MISSING;
      else {
        link = p;
        linkMeta = rec[p * stride + R_META]!;
      }
    }
    for (let i = 0; i < n; i++) {
      const keyLo = q[2 * i + lo]!;
      const keyHi = q[2 * i + hi]!;
      const a = place.first(keyLo, keyHi);
      const b = place.second(keyLo, keyHi);
      let s = this.#findIn(a, keyLo, keyHi);
      if (s < 0) s = this.#findIn(b, keyLo, keyHi);
      let r: number;
      if (s < 0) {
        s = this.#insert(keyLo, keyHi, a, b, link);
        r = s * stride;
        // No holder yet, so linking needs no bookkeeping.
        rec[r + this.#parentAt] = link;
        rec[r + this.#parentMetaAt] = linkMeta;
      } else {
        r = s * stride;
        if (link !== MISSING && (rec[r + this.#parentAt] !== link || rec[r + this.#parentMetaAt] !== linkMeta)) {
          // A block is its own parent only through a 64-bit hash collision; treat it as a chain start.
          this.#relink(s, link === s ? ROOT : link, link === s ? 0 : linkMeta);
        }
      }
      if (!this.#held(engine, r)) this.#addHolder(engine, s);
      this.#clock = (this.#clock + 1) >>> 0;
      rec[r + this.#stampAt] = this.#clock;
      link = s;
      linkMeta = rec[r + R_META]!;
    }
    this.#publishCounts();
  }

  /** Records that `engine` no longer holds the n blocks of q. Blocks it does not hold are skipped. */
  remove(engine: number, q: Uint32Array, lo: number, hi: number, n: number): number {
    let removed = 0;
    // Last first: removals usually name a chain in order, and dropping its tail first never leaves a child
    // without its parent on the way.
    for (let i = n - 1; i >= 0; i--) {
      const s = this.find(q[2 * i + lo]!, q[2 * i + hi]!);
      if (s >= 0 && this.#held(engine, s * this.#stride)) {
        this.#removeHolder(engine, s);
        removed++;
      }
    }
    this.#publishCounts();
    return removed;
  }

  /** Drops `engine` from every entry: one pass over the table. Returns the number of entries it held. */
  clearEngine(engine: number): number {
    const rec = this.#rec;
    const stride = this.#stride;
    const at = R_ENGINES + (engine >>> 5);
    const bit = 1 << (engine & 31);
    const slots = this.#v.slots;
    let removed = 0;
    for (let s = 0; s < slots; s++) {
      if ((rec[s * stride + at]! & bit) !== 0) {
        this.#removeHolder(engine, s);
        removed++;
      }
    }
    this.#publishCounts();
    return removed;
  }

  /** Empties the table. Readers see entries disappear one by one, never a half-cleared entry. */
  clear(): void {
    const v = this.#v;
    const rec = this.#rec;
    for (let s = 0; s < v.slots; s++) {
      const r = s * this.#stride;
      if ((rec[r + R_META]! & OCCUPIED) === 0) continue;
      for (let w = 0; w < this.#words; w++) Atomics.store(rec, r + R_ENGINES + w, 0);
      this.#deleteEntry(s);
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

  /**
   * Recounts holes, child counts, entry and block counts from scratch and lists every disagreement with the
   * maintained ones. O(slots × engines): for tests.
   */
  audit(): string[] {
    const v = this.#v;
    const rec = this.#rec;
    const problems: string[] = [];
    const holes = new Int32Array(v.maxEngines);
    const blocks = new Int32Array(v.maxEngines);
    const children = new Map<number, number>();
    let size = 0;
    for (let s = 0; s < v.slots; s++) {
      const r = s * this.#stride;
      const occupied = (rec[r + R_META]! & OCCUPIED) !== 0;
      if (occupied !== (((this.#occupied[Math.floor(s / WAYS)]! >>> (s % WAYS)) & 1) === 1)) problems.push(`slot ${s}: occupancy bit disagrees with meta`);
      if (!occupied) {
        if (this.#anyHolder(r)) problems.push(`empty slot ${s} has engine bits`);
        continue;
      }
      size++;
      if (this.#fpBytes[s] !== fingerprint(rec[r + R_KEY_HI]!)) problems.push(`slot ${s}: fingerprint does not match its key`);
      if (this.find(rec[r + R_KEY_LO]!, rec[r + R_KEY_HI]!) !== s) problems.push(`slot ${s}: its key is not found there`);
      if (!this.#anyHolder(r)) problems.push(`slot ${s} is occupied by no engine`);
      const parent = rec[r + this.#parentAt]!;
      const live = this.#live(r);
      for (let e = 0; e < v.maxEngines; e++) {
        if (!this.#held(e, r)) continue;
        blocks[e]!++;
        if (parent !== ROOT && !(live && this.#held(e, parent * this.#stride))) holes[e]!++;
        if (live) children.set(parent * v.maxEngines + e, (children.get(parent * v.maxEngines + e) ?? 0) + 1);
      }
    }
    for (let s = 0; s < v.slots; s++) {
      for (let e = 0; e < v.maxEngines; e++) {
        const want = children.get(s * v.maxEngines + e) ?? 0;
        const got = this.#childCount(s, e);
        if (want !== got) problems.push(`slot ${s} engine ${e}: ${got} children counted, ${want} held`);
      }
    }
    for (let e = 0; e < v.maxEngines; e++) {
      if (holes[e] !== v.holes[e]) problems.push(`engine ${e}: ${v.holes[e]} holes counted, ${holes[e]} found`);
      if (blocks[e] !== v.blocks[e]) problems.push(`engine ${e}: ${v.blocks[e]} blocks counted, ${blocks[e]} found`);
    }
    const totalHoles = holes.reduce((a, b) => a + b, 0);
    if (v.header[H_TOTAL_HOLES] !== totalHoles) problems.push(`total holes ${v.header[H_TOTAL_HOLES]}, found ${totalHoles}`);
    if (v.header[H_SIZE] !== size) problems.push(`size ${v.header[H_SIZE]}, found ${size}`);
    return problems;
  }

  /** The slot a new key with candidate sets a and b takes: the first free one of the emptier set. */
  #freeSlot(a: number, b: number): number {
    const occA = this.#occupied[a]!;
    const occB = this.#occupied[b]!;
    const useA = popcount16(occA) <= popcount16(occB);
    const free = ~(useA ? occA : occB) & 0xffff;
    return (useA ? a : b) * WAYS + 31 - Math.clz32(free & -free);
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

  /** Whether `engine` holds the entry whose record starts at r. */
  #held(engine: number, r: number): boolean {
    return ((this.#rec[r + R_ENGINES + (engine >>> 5)]! >>> (engine & 31)) & 1) !== 0;
  }

  #anyHolder(r: number): boolean {
    for (let w = 0; w < this.#words; w++) if (this.#rec[r + R_ENGINES + w] !== 0) return true;
    return false;
  }

  /** Whether the record at r has a parent link naming an entry that is still the one it was linked to. */
  #live(r: number): boolean {
    const parent = this.#rec[r + this.#parentAt]!;
    return parent < MISSING && this.#rec[parent * this.#stride + R_META] === this.#rec[r + this.#parentMetaAt];
  }

  /** Whether `engine`, holding the entry at r, holds it without its parent. */
  #orphan(engine: number, r: number): boolean {
    const parent = this.#rec[r + this.#parentAt]!;
    return parent !== ROOT && !(this.#live(r) && this.#held(engine, parent * this.#stride));
  }

  #childCount(s: number, engine: number): number {
    if (((this.#rec[s * this.#stride + this.#childrenAt + (engine >>> 5)]! >>> (engine & 31)) & 1) === 0) return 0;
    return this.#childExtra.get(s * this.#maxEngines + engine) ?? 1;
  }

  #childAdd(s: number, engine: number): void {
    const at = s * this.#stride + this.#childrenAt + (engine >>> 5);
    const bit = 1 << (engine & 31);
    if ((this.#rec[at]! & bit) === 0) {
      this.#rec[at]! |= bit;
      return;
    }
    const key = s * this.#maxEngines + engine;
    this.#childExtra.set(key, (this.#childExtra.get(key) ?? 1) + 1);
  }

  #childSub(s: number, engine: number): void {
    const key = s * this.#maxEngines + engine;
    const count = this.#childExtra.get(key);
    if (count === undefined) this.#rec[s * this.#stride + this.#childrenAt + (engine >>> 5)]! &= ~(1 << (engine & 31));
    else if (count === 2) this.#childExtra.delete(key);
    else this.#childExtra.set(key, count - 1);
  }

  #addHoles(engine: number, delta: number): void {
    Atomics.add(this.#v.holes, engine, delta);
    Atomics.add(this.#v.header, H_TOTAL_HOLES, delta);
  }

  #addHolder(engine: number, s: number): void {
    const r = s * this.#stride;
    if (this.#live(r)) this.#childAdd(this.#rec[r + this.#parentAt]!, engine);
    if (this.#orphan(engine, r)) this.#addHoles(engine, 1);
    Atomics.or(this.#rec, r + R_ENGINES + (engine >>> 5), 1 << (engine & 31));
    // Its held children were holes while the engine lacked this block.
    const children = this.#childCount(s, engine);
    if (children !== 0) this.#addHoles(engine, -children);
    this.#countBlocks(engine, 1);
  }

  #removeHolder(engine: number, s: number): void {
    const r = s * this.#stride;
    const children = this.#childCount(s, engine);
    if (children !== 0) this.#addHoles(engine, children);
    Atomics.and(this.#rec, r + R_ENGINES + (engine >>> 5), ~(1 << (engine & 31)));
    if (this.#orphan(engine, r)) this.#addHoles(engine, -1);
    if (this.#live(r)) this.#childSub(this.#rec[r + this.#parentAt]!, engine);
    this.#countBlocks(engine, -1);
    if (!this.#anyHolder(r)) this.#deleteEntry(s);
  }

  /** Moves slot s's parent link, keeping every holder's hole count and the parents' child counts exact. */
  #relink(s: number, parent: number, parentMeta: number): void {
    const rec = this.#rec;
    const r = s * this.#stride;
    const holders: number[] = [];
    for (let w = 0; w < this.#words; w++) {
      let x = rec[r + R_ENGINES + w]!;
      while (x !== 0) {
        const bit = x & -x;
        x ^= bit;
        holders.push(w * 32 + 31 - Math.clz32(bit));
      }
    }
    const oldLive = this.#live(r);
    const oldParent = rec[r + this.#parentAt]!;
    const wasOrphan = holders.map((e) => this.#orphan(e, r));
    rec[r + this.#parentAt] = parent;
    rec[r + this.#parentMetaAt] = parentMeta;
    const newLive = this.#live(r);
    holders.forEach((e, i) => {
      if (oldLive) this.#childSub(oldParent, e);
      if (newLive) this.#childAdd(parent, e);
      const delta = (this.#orphan(e, r) ? 1 : 0) - (wasOrphan[i] ? 1 : 0);
      if (delta !== 0) this.#addHoles(e, delta);
    });
  }

  /**
   * A free slot for a new key: in the emptier of its two sets a and b, or, when both are full, the slot of
   * an evicted entry. The victim is the least recently stored entry of the two sets that no engine holds a
   * child of (a leaf: evicting it breaks no chain), or the least recently stored entry when every one is a
   * parent. `protect` (the new key's parent) is never chosen.
   */
  #insert(lo: number, hi: number, a: number, b: number, protect: number): number {
    let slot: number;
    if (this.#occupied[a] !== 0xffff || this.#occupied[b] !== 0xffff) {
      slot = this.#freeSlot(a, b);
    } else {
      slot = this.#victim(a, b, protect);
      this.#evict(slot);
    }
    const r = slot * this.#stride;
    const rec = this.#rec;
    rec[r + this.#parentAt] = MISSING;
    rec[r + this.#parentMetaAt] = 0;
    this.#fpBytes[slot] = fingerprint(hi);
    // Key first, then meta: a reader sees OCCUPIED only with the new key in place.
    Atomics.store(rec, r + R_KEY_LO, lo);
    Atomics.store(rec, r + R_KEY_HI, hi);
    Atomics.store(rec, r + R_META, nextMeta(rec[r + R_META]!, true));
    this.#occupied[Math.floor(slot / WAYS)]! |= 1 << (slot % WAYS);
    this.#sizeDelta++;
    return slot;
  }

  #victim(a: number, b: number, protect: number): number {
    const rec = this.#rec;
    let victim = -1;
    let victimAge = -1;
    let victimLeaf = false;
    for (let i = 0; i < 2 * WAYS; i++) {
      const s = i < WAYS ? a * WAYS + i : b * WAYS + i - WAYS;
      if (s === protect) continue;
      const r = s * this.#stride;
      let leaf = true;
      for (let w = 0; w < this.#words; w++) if (rec[r + this.#childrenAt + w] !== 0) leaf = false;
      const age = (this.#clock - rec[r + this.#stampAt]!) >>> 0;
      if ((leaf && !victimLeaf) || (leaf === victimLeaf && age > victimAge)) {
        victim = s;
        victimAge = age;
        victimLeaf = leaf;
      }
    }
    return victim;
  }

  #evict(s: number): void {
    const v = this.#v;
    const r = s * this.#stride;
    for (let w = 0; w < this.#words; w++) {
      let x = this.#rec[r + R_ENGINES + w]!;
      while (x !== 0) {
        const bit = x & -x;
        x ^= bit;
        this.#removeHolder(w * 32 + 31 - Math.clz32(bit), s); // the last one deletes the entry
      }
    }
    const lo = (v.header[H_EVICTIONS_LO]! + 1) | 0;
    Atomics.store(v.header, H_EVICTIONS_LO, lo);
    if (lo === 0) Atomics.add(v.header, H_EVICTIONS_HI, 1);
  }

  /** Frees slot s, which no engine holds. Its children's links die with its meta word. */
  #deleteEntry(s: number): void {
    const rec = this.#rec;
    const r = s * this.#stride;
    for (let w = 0; w < this.#words; w++) {
      let x = rec[r + this.#childrenAt + w]!;
      while (x !== 0) {
        const bit = x & -x;
        x ^= bit;
        this.#childExtra.delete(s * this.#maxEngines + w * 32 + 31 - Math.clz32(bit));
      }
      rec[r + this.#childrenAt + w] = 0;
    }
    // One atomic store: the key and fingerprint stay behind, and readers skip a slot not OCCUPIED.
    Atomics.store(rec, r + R_META, nextMeta(rec[r + R_META]!, false));
    rec[r + this.#parentAt] = MISSING;
    this.#occupied[Math.floor(s / WAYS)]! &= ~(1 << (s % WAYS));
    this.#sizeDelta--;
  }
}

function popcount16(x: number): number {
  x -= (x >>> 1) & 0x5555;
  x = (x & 0x3333) + ((x >>> 2) & 0x3333);
  x = (x + (x >>> 4)) & 0x0f0f;
  return (x + (x >>> 8)) & 0x1f;
}
