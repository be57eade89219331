// Which entry to evict when a new key has no room (no record is free, or both of its sets are full), and
// the eviction count. Removing the victim's holders is the writer's ordinary removal (writer.ts).
//
// The rule: among the entries of the new key's two sets, the least recently stored one that no engine holds
// a child of (a leaf: evicting it breaks no chain), or the least recently stored one when every one is a
// parent. The new key's parent is never chosen. When every record is in use but neither set has an entry
// to give, the same rule picks among windows of 32 records from a hand that sweeps the heap.
//
// Recency is a store clock: every block a store names gets the next tick in its record's stamp field, and
// an entry's age is the clock minus its stamp, in u32 arithmetic, so the clock may wrap.

import type { Entries } from "./entries.js";
import type { Holes } from "./holes.js";
import { H_EVICTIONS_HI, H_EVICTIONS_LO, WAYS, type Views } from "./layout.js";

interface Choice {
  record: number;
  age: number;
  leaf: boolean;
}

export class Eviction {
  readonly #header: Int32Array;
  readonly #heap: Uint32Array;
  readonly #stride: number;
  readonly #stampAt: number;
  readonly #records: number;
  readonly #entries: Entries;
  readonly #holes: Holes;
  #clock = 0;
  /** Where the fallback's sweep over the records is. */
  #hand = 0;

  constructor(v: Views, entries: Entries, holes: Holes) {
    this.#header = v.header;
    this.#heap = v.heap;
    this.#stride = v.stride;
    this.#stampAt = v.stampAt;
    this.#records = v.records;
    this.#entries = entries;
    this.#holes = holes;
  }

  /** Marks the entry at word r as stored now. */
  stamp(r: number): void {
    this.#clock = (this.#clock + 1) >>> 0;
    this.#heap[r + this.#stampAt] = this.#clock;
  }

  /** The entry to evict so that a key of sets a and b finds room; never `protect`. */
  victim(a: number, b: number, protect: number): number {
    const entries = this.#entries;
    const choice: Choice = { record: -1, age: -1, leaf: false };
    for (const set of [a, b]) {
      for (let way = 0; way < WAYS; way++) {
        if (((entries.occupiedWays(set) >>> way) & 1) !== 0) this.#consider(entries.recordAt(set, way), protect, choice);
      }
    }
    // Every record is in use but the key's sets hold none to spare: take the best of a window of records
    // from a hand that sweeps the heap.
    for (let i = 0; choice.record < 0 && i < this.#records; i += 32) {
      for (let k = 0; k < 32; k++) {
        this.#hand = (this.#hand + 1) % this.#records;
        if (entries.inUse(this.#hand)) this.#consider(this.#hand, protect, choice);
      }
    }
    return choice.record;
  }

  /** Adds one to the eviction count readers see (`PrefixIndex.evictions`). */
  count(): void {
    const lo = (this.#header[H_EVICTIONS_LO]! + 1) | 0;
    Atomics.store(this.#header, H_EVICTIONS_LO, lo);
    if (lo === 0) Atomics.add(this.#header, H_EVICTIONS_HI, 1);
  }

  /** Keeps `record` as the victim if it beats the current one: a leaf over a parent, then the older. */
  #consider(record: number, protect: number, choice: Choice): void {
    if (record === protect) return;
    const r = record * this.#stride;
    const leaf = !this.#holes.hasChildren(r);
    const age = (this.#clock - this.#heap[r + this.#stampAt]!) >>> 0;
    if ((leaf && !choice.leaf) || (leaf === choice.leaf && age > choice.age)) {
      choice.record = record;
      choice.age = age;
      choice.leaf = leaf;
    }
  }
}
