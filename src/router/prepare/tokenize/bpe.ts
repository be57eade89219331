// Byte-pair merging over token ids, with a rank table instead of strings.
//
// Invariant: the result equals @huggingface/tokenizers' BPE on the same word, which repeatedly merges the
// adjacent pair of lowest merge rank, the leftmost one among equal ranks. Pairs are ranked by their merge's
// index in tokenizer.json; a pair listed twice takes its later index, as that library's rank map does.
import type { IdBuffer } from "./id-buffer.js";

const EMPTY = -1;
/** Words up to this many bytes merge by scanning for the lowest rank (cheap for short words); longer ones use a heap. */
const SCAN_MAX_BYTES = 48;
/** Heap keys are rank × 2^32 + position; ranks must stay below 2^21 for the key to be an exact double. */
export const MAX_MERGES = 1 << 21;
/** Words up to this many bytes reuse the merger's heap arrays (36 bytes per byte of word). */
const KEPT_HEAP_BYTES = 1 << 16;
const POS = 4294967296;

/** Open-addressing map from an id pair to its merge rank and the id of the merged token. */
export class PairTable {
  readonly #mask: number;
  readonly #left: Int32Array;
  readonly #right: Int32Array;
  readonly rank: Int32Array;
  readonly merged: Int32Array;

  constructor(pairs: number) {
    let capacity = 16;
    while (capacity < pairs * 2) capacity *= 2;
    this.#mask = capacity - 1;
    this.#left = new Int32Array(capacity).fill(EMPTY);
    this.#right = new Int32Array(capacity);
    this.rank = new Int32Array(capacity);
    this.merged = new Int32Array(capacity);
  }

  set(left: number, right: number, rank: number, merged: number): void {
    let slot = hash(left, right) & this.#mask;
    while (this.#left[slot] !== EMPTY && (this.#left[slot] !== left || this.#right[slot] !== right)) slot = (slot + 1) & this.#mask;
    this.#left[slot] = left;
    this.#right[slot] = right;
    this.rank[slot] = rank;
    this.merged[slot] = merged;
  }

  /** The slot of the pair, or -1 when the pair never merges. */
  find(left: number, right: number): number {
    let slot = hash(left, right) & this.#mask;
    for (;;) {
      const l = this.#left[slot]!;
      if (l === EMPTY) return -1;
      if (l === left && this.#right[slot] === right) return slot;
      slot = (slot + 1) & this.#mask;
    }
  }
}

function hash(a: number, b: number): number {
  let h = Math.imul(a ^ Math.imul(b, 0x9e3779b1), 0x85ebca6b);
  return h ^ (h >>> 15);
}

/** Merges the bytes of one pre-tokenized word into token ids. Holds scratch arrays: one per thread. */
export class BpeMerger {
  #tok = new Int32Array(64);
  #rank = new Int32Array(64);
  #slot = new Int32Array(64);

  constructor(
    /** The id of each single byte's token. */
    private readonly byteIds: Int32Array,
    private readonly pairs: PairTable,
  ) {}

  merge(bytes: Uint8Array, n: number, out: IdBuffer): void {
    if (n <= SCAN_MAX_BYTES) this.#mergeByScan(bytes, n, out);
    else this.#mergeByHeap(bytes, n, out);
  }

  /** Short words: find the lowest-ranked pair by a linear scan, merge it, repeat. */
  #mergeByScan(bytes: Uint8Array, length: number, out: IdBuffer): void {
    const tok = this.#tok, rank = this.#rank, slot = this.#slot, pairs = this.pairs;
    let n = length;
    for (let i = 0; i < n; i++) tok[i] = this.byteIds[bytes[i]!]!;
    for (let i = 0; i + 1 < n; i++) this.#rate(i, tok[i]!, tok[i + 1]!);
    while (n > 1) {
      let best = -1, bestRank = 0x7fffffff;
      for (let i = 0; i + 1 < n; i++) {
        const r = rank[i]!;
        if (r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      tok[best] = pairs.merged[slot[best]!]!;
      // Drop the right half of the pair.
      tok.copyWithin(best + 1, best + 2, n);
      rank.copyWithin(best + 1, best + 2, n - 1);
      slot.copyWithin(best + 1, best + 2, n - 1);
      n--;
      if (best > 0) this.#rate(best - 1, tok[best - 1]!, tok[best]!);
      if (best + 1 < n) this.#rate(best, tok[best]!, tok[best + 1]!);
      else rank[best] = 0x7fffffff;
    }
    for (let i = 0; i < n; i++) out.push(tok[i]!);
  }

  #rate(i: number, left: number, right: number): void {
    const s = this.pairs.find(left, right);
    this.#slot[i] = s;
    this.#rank[i] = s < 0 ? 0x7fffffff : this.pairs.rank[s]!;
  }

  /** Long words: see HeapMerge. */
  #mergeByHeap(bytes: Uint8Array, n: number, out: IdBuffer): void {
    // Arrays for ordinary long words are kept for the next one; a huge word's are left to the collector.
    const merge = n > KEPT_HEAP_BYTES ? new HeapMerge(this.byteIds, this.pairs) : (this.#heapMerge ??= new HeapMerge(this.byteIds, this.pairs));
    merge.start(bytes, n);
    merge.run(Infinity);
    merge.emit(out);
  }

  #heapMerge: HeapMerge | null = null;

  /** A merge of one word that can be run a bounded number of steps at a time. */
  stepwise(bytes: Uint8Array, n: number): HeapMerge {
    return new HeapMerge(this.byteIds, this.pairs).start(bytes, n);
  }
}

/**
 * A long word's merge: a linked list over byte positions and a min-heap of (rank, position) keys. A popped
 * key is stale when its left token is gone or its pair no longer has that rank; ranks are unique per pair,
 * so a pair with the popped rank is exactly the pair that was pushed. Each merge pushes at most two keys,
 * so the heap never holds more than 3n.
 */
export class HeapMerge {
  #tok = new Int32Array(0);
  #next = new Int32Array(0);
  #prev = new Int32Array(0);
  #heap = new Float64Array(0);
  #size = 0;

  constructor(
    private readonly byteIds: Int32Array,
    private readonly pairs: PairTable,
  ) {}

  start(bytes: Uint8Array, n: number): this {
    if (this.#tok.length < n) {
      this.#tok = new Int32Array(n);
      this.#next = new Int32Array(n);
      this.#prev = new Int32Array(n);
      this.#heap = new Float64Array(3 * n);
    }
    const tok = this.#tok, next = this.#next, prev = this.#prev;
    for (let i = 0; i < n; i++) {
      tok[i] = this.byteIds[bytes[i]!]!;
      next[i] = i + 1 < n ? i + 1 : EMPTY;
      prev[i] = i - 1;
    }
    this.#size = 0;
    for (let i = 0; i + 1 < n; i++) this.#pushPair(i);
    return this;
  }

  /** Pops up to `maxPops` heap keys; true when the word is fully merged. */
  run(maxPops: number): boolean {
    const tok = this.#tok, next = this.#next, prev = this.#prev, heap = this.#heap, pairs = this.pairs;
    for (let pops = 0; this.#size > 0; pops++) {
      if (pops >= maxPops) return false;
      const key = heap[0]!;
      const size = --this.#size;
      const last = heap[size]!;
      // Sift the last key down from the root.
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= size) break;
        if (child + 1 < size && heap[child + 1]! < heap[child]!) child++;
        if (heap[child]! >= last) break;
        heap[i] = heap[child]!;
        i = child;
      }
      heap[i] = last;
      const rank = Math.floor(key / POS);
      const pos = key - rank * POS;
      const right = next[pos]!;
      if (tok[pos]! < 0 || right === EMPTY) continue;
      const s = pairs.find(tok[pos]!, tok[right]!);
      if (s < 0 || pairs.rank[s] !== rank) continue;
      tok[pos] = pairs.merged[s]!;
      tok[right] = EMPTY;
      const after = next[right]!;
      next[pos] = after;
      if (after !== EMPTY) prev[after] = pos;
      if (prev[pos]! >= 0) this.#pushPair(prev[pos]!);
      if (after !== EMPTY) this.#pushPair(pos);
    }
    return true;
  }

  emit(out: IdBuffer): void {
    for (let i = 0; i !== EMPTY; i = this.#next[i]!) out.push(this.#tok[i]!);
  }

  #pushPair(pos: number): void {
    const s = this.pairs.find(this.#tok[pos]!, this.#tok[this.#next[pos]!]!);
    if (s < 0) return;
    const key = this.pairs.rank[s]! * POS + pos;
    const heap = this.#heap;
    let i = this.#size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]! <= key) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = key;
  }
}
