// Who holds an entry, and the per-engine hole counts that keep the readers' prefix search exact. Every
// change to an entry's engine bits or parent link goes through here, so that the counts move with them.
//
// Holes. The readers' search (reader.ts) is exact for an engine whose holding is prefix-closed: every block
// it holds either starts a prompt or has its parent held too. Each entry records its parent (the block
// before it in the chain it was stored with), and per engine this counts the blocks that engine holds
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
// Invariants, between the writer's operations:
//   - holes[e] is the number of entries e holds whose parent is not ROOT and not held by e through a live
//     link; H_TOTAL_HOLES is the sum over engines;
//   - the child count of (entry, e), the child bit if 1 and the map if 2 or more, is the number of entries
//     e holds whose live link names the entry; the map has no pair below 2;
//   - a free record has no engine bits and no child bits.
//
// Ordering against readers: a hole count is raised before the bit that creates the hole is set, and lowered
// only after the bit that fills it is set, so a reader that saw a count of zero before reading bits cannot
// be misled by a hole made while it reads. Engine bits change only by atomic OR/AND (or, in `clearHolders`,
// atomic stores).

import { H_TOTAL_HOLES, MISSING, R_ENGINES, R_META, ROOT, type Views } from "./layout.js";

export class Holes {
  readonly #header: Int32Array;
  readonly #holes: Int32Array;
  readonly #heap: Uint32Array;
  readonly #stride: number;
  readonly #words: number;
  readonly #maxEngines: number;
  readonly #parentAt: number;
  readonly #parentMetaAt: number;
  readonly #childrenAt: number;
  /** (record * maxEngines + engine) → number of held children, for the pairs where it is 2 or more. */
  readonly #childExtra = new Map<number, number>();

  constructor(v: Views) {
    this.#header = v.header;
    this.#holes = v.holes;
    this.#heap = v.heap;
    this.#stride = v.stride;
    this.#words = v.words;
    this.#maxEngines = v.maxEngines;
    this.#parentAt = v.parentAt;
    this.#parentMetaAt = v.parentMetaAt;
    this.#childrenAt = v.childrenAt;
  }

  /** Number of (entry, engine) pairs with two or more held children (the child-count map's size). */
  get branchPairs(): number {
    return this.#childExtra.size;
  }

  /** Whether `engine` holds the entry whose record starts at word r. */
  held(engine: number, r: number): boolean {
    return ((this.#heap[r + R_ENGINES + (engine >>> 5)]! >>> (engine & 31)) & 1) !== 0;
  }

  /** Whether any engine holds the entry whose record starts at word r. */
  anyHolder(r: number): boolean {
    for (let w = 0; w < this.#words; w++) if (this.#heap[r + R_ENGINES + w] !== 0) return true;
    return false;
  }

  /** Whether some engine holds a child of the entry at word r (a parent: evicting it would break a chain). */
  hasChildren(r: number): boolean {
    for (let w = 0; w < this.#words; w++) if (this.#heap[r + this.#childrenAt + w] !== 0) return true;
    return false;
  }

  childCount(record: number, engine: number): number {
    if (((this.#heap[record * this.#stride + this.#childrenAt + (engine >>> 5)]! >>> (engine & 31)) & 1) === 0) return 0;
    return this.#childExtra.get(record * this.#maxEngines + engine) ?? 1;
  }

  /** Whether the entry at word r is linked to `parent` as it was when `parentMeta` was its meta word. */
  linkedTo(r: number, parent: number, parentMeta: number): boolean {
    return this.#heap[r + this.#parentAt] === parent && this.#heap[r + this.#parentMetaAt] === parentMeta;
  }

  /** Sets the parent link of a new entry. No engine holds it yet, so no count moves. */
  link(r: number, parent: number, parentMeta: number): void {
    this.#heap[r + this.#parentAt] = parent;
    this.#heap[r + this.#parentMetaAt] = parentMeta;
  }

  /** Moves a record's parent link, keeping every holder's hole count and the parents' child counts exact. */
  relink(record: number, parent: number, parentMeta: number): void {
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

  /** Sets `engine`'s bit on an entry it does not hold, with the counts that move with it. */
  addHolder(engine: number, record: number): void {
    const r = record * this.#stride;
    if (this.#live(r)) this.#childAdd(this.#heap[r + this.#parentAt]!, engine);
    if (this.#orphan(engine, r)) this.#addHoles(engine, 1);
    Atomics.or(this.#heap, r + R_ENGINES + (engine >>> 5), 1 << (engine & 31));
    // Its held children were holes while the engine lacked this block.
    const children = this.childCount(record, engine);
    if (children !== 0) this.#addHoles(engine, -children);
  }

  /** Clears `engine`'s bit on an entry it holds, with the counts that move with it. */
  removeHolder(engine: number, record: number): void {
    const r = record * this.#stride;
    const children = this.childCount(record, engine);
    if (children !== 0) this.#addHoles(engine, children);
    Atomics.and(this.#heap, r + R_ENGINES + (engine >>> 5), ~(1 << (engine & 31)));
    if (this.#orphan(engine, r)) this.#addHoles(engine, -1);
    if (this.#live(r)) this.#childSub(this.#heap[r + this.#parentAt]!, engine);
  }

  /**
   * Forgets the children and the parent of an entry no engine holds, before its record is freed. Its
   * children's links die with its meta word, which freeing changes.
   */
  forget(record: number): void {
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
    heap[r + this.#parentAt] = MISSING;
  }

  /** Clears every engine bit of an entry without moving any count: for `clear`, which then calls `reset`. */
  clearHolders(record: number): void {
    const r = record * this.#stride;
    for (let w = 0; w < this.#words; w++) Atomics.store(this.#heap, r + R_ENGINES + w, 0);
  }

  /** Zeroes every hole count and forgets every branch point: for `clear`, once every entry is gone. */
  reset(): void {
    for (let e = 0; e < this.#maxEngines; e++) Atomics.store(this.#holes, e, 0);
    Atomics.store(this.#header, H_TOTAL_HOLES, 0);
    this.#childExtra.clear();
  }

  /** Whether the record at word r has a parent link naming an entry that is still the one it was linked to. */
  #live(r: number): boolean {
    const parent = this.#heap[r + this.#parentAt]!;
    return parent < MISSING && this.#heap[parent * this.#stride + R_META] === this.#heap[r + this.#parentMetaAt];
  }

  /** Whether `engine`, holding the entry at word r, holds it without its parent. */
  #orphan(engine: number, r: number): boolean {
    const parent = this.#heap[r + this.#parentAt]!;
    return parent !== ROOT && !(this.#live(r) && this.held(engine, parent * this.#stride));
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
    Atomics.add(this.#holes, engine, delta);
    Atomics.add(this.#header, H_TOTAL_HOLES, delta);
  }
}
