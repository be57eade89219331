// Lock-free reads of the prefix index. Any thread may run these at any time while the writer works.
//
// A reader never waits for the writer. The writer changes shared words only with Atomics.store / or /
// and, and a reader validates what it returns with Atomics.load, so those accesses fall into one
// sequentially consistent order. An entry is read as a sequence lock would: meta, then key and engine
// set, then meta again. If meta changed in between, or the record was not occupied, the read counts the
// block as absent rather than retrying: meta changes only when an entry is inserted or deleted, so absent
// is a state the entry really passed through during the read. Engine bits of a stable entry change one
// at a time by atomic OR/AND, so each engine a reader sees really held the block at some moment during
// the read.

import { HI, LO } from "../../../util/u64.js";
import {
  H_TOTAL_HOLES,
  OCCUPIED,
  Placement,
  R_ENGINES,
  R_KEY_HI,
  R_KEY_LO,
  R_META,
  SET_OVERFLOW,
  SET_RECORDS,
  SET_WORDS,
  fingerprint,
  fingerprintMatches,
  type Views,
} from "./layout.js";

const NOT_HERE = 0;
const FOUND = 1;
const CHANGED = 2;

/** Deepest pending-range stack the boundary search needs: one level per halving of a u32-long prompt. */
const STACK = 40;

export class IndexReader {
  readonly #v: Views;
  readonly #place: Placement;
  /** Engine sets read from the table, and the search's working sets, one word per 32 engines. */
  readonly #row: Uint32Array;
  readonly #alive: Uint32Array;
  readonly #fail: Uint32Array;
  readonly #holed: Uint32Array;
  readonly #work: Uint32Array;
  /** Pending boundary searches: [lo, hi] and an engine set per entry. */
  readonly #rangeStack = new Int32Array(STACK * 2);
  readonly #setStack: Uint32Array;
  /**
   * The words of the engine sets that a search works on: those where block 0's set has an engine. No
   * engine joins after block 0, so reads and set operations skip the other words.
   */
  #wf = 0;
  #wt = 0;

  constructor(v: Views) {
    this.#v = v;
    this.#place = new Placement(v);
    this.#row = new Uint32Array(v.words);
    this.#alive = new Uint32Array(v.words);
    this.#fail = new Uint32Array(v.words);
    this.#holed = new Uint32Array(v.words);
    this.#work = new Uint32Array(v.words);
    this.#setStack = new Uint32Array(STACK * v.words);
  }

  /**
   * Copies words [wf, wt) of the engine set of the block keyed (lo, hi) into the same words of dst. Returns
   * false, with those words zeroed, when the block is absent or its entry changed during the read.
   */
  read(lo: number, hi: number, dst: Uint32Array, wf: number, wt: number): boolean {
    const fp = fingerprint(hi);
    const first = this.#place.first(lo, hi);
    const found = this.#readSet(first, fp, lo, hi, dst, wf, wt);
    if (found !== NOT_HERE) return found === FOUND;
    // Like the fingerprints, the overflow count only guides: a stale zero can at most hide a key that is
    // being inserted into its second set.
    if (this.#v.table[first * SET_WORDS + SET_OVERFLOW] === 0) return false;
    return this.#readSet(this.#place.second(lo, hi), fp, lo, hi, dst, wf, wt) === FOUND;
  }

  /**
   * Reads the key in `set`; a key lives in at most one way of its two sets. The set's fingerprints and
   * record indices are read with plain loads: they only choose which records to check, so a stale one can
   * at most make a key being inserted look absent. A candidate record is confirmed with atomic loads
   * between two reads of its meta word.
   */
  #readSet(set: number, fp: number, lo: number, hi: number, dst: Uint32Array, wf: number, wt: number): number {
    const { table, heap, stride, records } = this.#v;
    let candidates = fingerprintMatches(table, set, fp);
    while (candidates !== 0) {
      const way = 31 - Math.clz32(candidates & -candidates);
      candidates &= candidates - 1;
      const record = table[set * SET_WORDS + SET_RECORDS + way]!;
      if (record >= records) continue;
      const r = record * stride;
      const before = Atomics.load(heap, r + R_META);
      if ((before & OCCUPIED) === 0) continue;
      if (Atomics.load(heap, r + R_KEY_LO) !== lo || Atomics.load(heap, r + R_KEY_HI) !== hi) continue;
      for (let w = wf; w < wt; w++) dst[w] = Atomics.load(heap, r + R_ENGINES + w);
      if (Atomics.load(heap, r + R_META) === before) return FOUND;
      for (let w = wf; w < wt; w++) dst[w] = 0;
      return CHANGED;
    }
    for (let w = wf; w < wt; w++) dst[w] = 0;
    return NOT_HERE;
  }

  /** The engine set of the block keyed (lo, hi) into dst (all words); false when absent. */
  engines(lo: number, hi: number, dst: Uint32Array): boolean {
    return this.read(lo, hi, dst, 0, this.#v.words);
  }

  /**
   * For every engine, the number of leading blocks it holds of the n hashes in `q` (a Uint32Array view of
   * a BigUint64Array), into `out` (zeroed first, maxEngines long).
   *
   * The search assumes a prefix-closed holding: an engine that holds block k holds blocks 0..k-1. Chained
   * hashes make that the normal case, since a block's hash names its whole prefix and vLLM evicts chains
   * from the tail. Under it, one probe per doubling position (1, 3, 7, 15, ...) finds, for each engine, a
   * held probe and a later unheld one, and a binary search between them finds its boundary: about 2 log2 n
   * table reads for a prompt of n blocks, whatever the prefix length. Engines sharing a boundary share the
   * reads, because one table read returns every engine's bit.
   *
   * The writer counts, per engine, the blocks it holds without their parent (holes; holes.ts keeps the count
   * exact). For an engine with holes the search's answer is only an upper bound, so it is checked block by
   * block from the start, and lowered to the first block the engine does not hold. Only those engines pay
   * the linear walk, and only up to their search answer.
   */
  overlaps(q: Uint32Array, n: number, out: Uint32Array): void {
    const v = this.#v;
    out.fill(0, 0, v.maxEngines);
    if (n === 0) return;
    const alive = this.#alive;
    if (!this.read(q[LO]!, q[HI]!, alive, 0, v.words)) return;
    let wf = 0;
    let wt = v.words;
    while (wf < wt && alive[wf] === 0) wf++;
    while (wt > wf && alive[wt - 1] === 0) wt--;
    if (wf === wt) return;
    this.#wf = wf;
    this.#wt = wt;

    // Holes are read before any block past the first: the writer raises an engine's count before it sets
    // the bit of a block that makes a hole, and lowers it only after the hole is filled, so a count read
    // here covers every bit read below.
    const holed = this.#holed;
    let anyHoled = false;
    if (Atomics.load(v.header, H_TOTAL_HOLES) !== 0) {
      for (let w = wf; w < wt; w++) {
        let x = alive[w]!;
        let h = 0;
        while (x !== 0) {
          const bit = x & -x;
          x ^= bit;
          if (Atomics.load(v.holes, w * 32 + 31 - Math.clz32(bit)) !== 0) h |= bit;
        }
        holed[w] = h;
        if (h !== 0) anyHoled = true;
      }
    }

    // Galloping: every engine in `alive` holds block `held`.
    const row = this.#row;
    const fail = this.#fail;
    let held = 0;
    let step = 1;
    while (held < n - 1) {
      const probe = Math.min(held + step, n - 1);
      this.read(q[2 * probe + LO]!, q[2 * probe + HI]!, row, wf, wt);
      let anyFail = false;
      let anyPass = false;
      for (let w = wf; w < wt; w++) {
        const a = alive[w]!;
        const r = row[w]!;
        alive[w] = a & r;
        fail[w] = a & ~r; // engines whose boundary lies in (held, probe]
        if ((a & ~r) !== 0) anyFail = true;
        if ((a & r) !== 0) anyPass = true;
      }
      if (anyFail) this.#bisect(q, held, probe, fail, out);
      if (!anyPass) return this.#checkHoles(q, anyHoled, out);
      held = probe;
      step *= 2;
    }
    // Every engine still alive holds the last block.
    setEach(alive, wf, wt, out, n);
    this.#checkHoles(q, anyHoled, out);
  }

  /**
   * For the engines in `set`, which hold block `lo` and not block `hi`, sets out[engine] to its boundary
   * (the number of leading blocks held). A range whose engines split at its midpoint continues with the
   * holders and leaves the others on a stack; a pushed range is at most half as long as the one it was
   * split from, so the stack never holds more than log2(n) + 1 ranges.
   */
  #bisect(q: Uint32Array, lo: number, hi: number, set: Uint32Array, out: Uint32Array): void {
    const words = this.#v.words;
    const wf = this.#wf;
    const wt = this.#wt;
    const ranges = this.#rangeStack;
    const stack = this.#setStack;
    const row = this.#row;
    const work = this.#work;
    for (let w = wf; w < wt; w++) work[w] = set[w]!;
    let a = lo;
    let b = hi;
    let top = 0;
    for (;;) {
      while (b - a > 1) {
        const mid = a + ((b - a) >>> 1);
        this.read(q[2 * mid + LO]!, q[2 * mid + HI]!, row, wf, wt);
        let anyHold = false;
        let anyMiss = false;
        const push = top * words;
        for (let w = wf; w < wt; w++) {
          const s = work[w]!;
          const r = row[w]!;
          work[w] = s & r;
          stack[push + w] = s & ~r;
          if ((s & r) !== 0) anyHold = true;
          if ((s & ~r) !== 0) anyMiss = true;
        }
        if (anyHold && anyMiss) {
          ranges[2 * top] = a;
          ranges[2 * top + 1] = mid;
          top++;
          a = mid;
        } else if (anyHold) {
          a = mid;
        } else {
          for (let w = wf; w < wt; w++) work[w] = stack[push + w]!;
          b = mid;
        }
      }
      setEach(work, wf, wt, out, b);
      if (top === 0) return;
      top--;
      a = ranges[2 * top]!;
      b = ranges[2 * top + 1]!;
      for (let w = wf; w < wt; w++) work[w] = stack[top * words + w]!;
    }
  }

  /** Lowers the search's answer for engines with holes to their first unheld block, walking from block 1. */
  #checkHoles(q: Uint32Array, anyHoled: boolean, out: Uint32Array): void {
    if (!anyHoled) return;
    const wf = this.#wf;
    const wt = this.#wt;
    const holed = this.#holed;
    const row = this.#row;
    let end = 0;
    for (let w = wf; w < wt; w++) {
      let x = holed[w]!;
      while (x !== 0) {
        const bit = x & -x;
        x ^= bit;
        end = Math.max(end, out[w * 32 + 31 - Math.clz32(bit)]!);
      }
    }
    for (let i = 1; i < end; i++) {
      this.read(q[2 * i + LO]!, q[2 * i + HI]!, row, wf, wt);
      let left = false;
      for (let w = wf; w < wt; w++) {
        let x = holed[w]!;
        while (x !== 0) {
          const bit = x & -x;
          x ^= bit;
          const engine = w * 32 + 31 - Math.clz32(bit);
          if (out[engine]! <= i) {
            holed[w] = holed[w]! & ~bit;
          } else if ((row[w]! & bit) === 0) {
            out[engine] = i;
            holed[w] = holed[w]! & ~bit;
          }
        }
        if (holed[w] !== 0) left = true;
      }
      if (!left) return;
    }
  }
}

/** out[engine] = value for every engine in words [wf, wt) of `set`. */
function setEach(set: Uint32Array, wf: number, wt: number, out: Uint32Array, value: number): void {
  for (let w = wf; w < wt; w++) {
    let x = set[w]!;
    while (x !== 0) {
      const bit = x & -x;
      x ^= bit;
      out[w * 32 + 31 - Math.clz32(bit)] = value;
    }
  }
}
