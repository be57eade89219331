import { HI, LO } from "../../../util/u64.js";
import { WRITER_BYTES_PER_RECORD, WRITER_BYTES_PER_SET } from "./entries.js";
import {
  DEFAULT_MAX_ENGINES,
  H_EVICTIONS_HI,
  H_EVICTIONS_LO,
  H_SIZE,
  H_TOTAL_HOLES,
  WordView,
  allocate,
  bytesPerEntry,
  readerBytesPerEntry,
  views,
  type PrefixIndexShared,
  type Views,
} from "./layout.js";
import { IndexReader } from "./reader.js";
import { IndexWriter, type WriterBookkeeping } from "./writer.js";

export type { PrefixIndexShared } from "./layout.js";

export interface PrefixIndexOptions {
  /** Entries the table holds. Memory is fixed from here on. */
  capacity: number;
  /** Engines are 0..maxEngines-1. Default 256, at most 4096; each 32 more cost 8 bytes per entry. */
  maxEngines?: number;
}

export interface PrefixIndexStats {
  entries: number;
  capacity: number;
  evictions: number;
  maxEngines: number;
  /** Shared bytes per entry: its record and its share of the sets. */
  bytesPerEntry: number;
  /** Of those, the bytes a lookup reads. */
  readerBytesPerEntry: number;
  /** Bytes allocated: the shared buffer, plus, in the writer, its occupancy bits and free list. */
  bytesAllocated: number;
  /** (entry, engine) pairs with two or more held children, counted in the writer's map (0 in a reader). */
  branchPairs: number;
  /** Engines whose holding has holes (the prefix search walks block by block for them). */
  enginesWithHoles: number;
}

/**
 * The router's map from block sequence hash to the engines holding that block, in shared memory.
 *
 * One thread writes (the instance from `create`); any number of threads read through `attach(shared)`,
 * without locks and without waiting for the writer. See reader.ts for what a concurrent read may see and
 * holes.ts for how the prefix search stays exact when an engine holds a block without its parent.
 *
 * Memory is fixed at creation: `capacity` entry records and a hash table of sets over them (layout.ts).
 * A new block that finds no free record, or both of its sets full, evicts an entry (the least recently
 * stored leaf of its two sets, see eviction.ts) and counts it in `evictions`; an insert never fails and the
 * table never grows.
 */
export class PrefixIndex {
  /** Structured-cloneable: pass it to another thread and `PrefixIndex.attach` it there. */
  readonly shared: PrefixIndexShared;
  readonly maxEngines: number;
  /** Entries the table holds. */
  readonly capacity: number;
  readonly #v: Views;
  readonly #reader: IndexReader;
  readonly #writer: IndexWriter | undefined;
  readonly #words = new WordView();

  private constructor(shared: PrefixIndexShared, writable: boolean) {
    this.shared = shared;
    this.#v = views(shared);
    this.maxEngines = this.#v.maxEngines;
    this.capacity = this.#v.records;
    this.#reader = new IndexReader(this.#v);
    this.#writer = writable ? new IndexWriter(this.#v) : undefined;
  }

  /** A new, empty index; the returned instance is its writer. */
  static create(options: PrefixIndexOptions): PrefixIndex {
    const { capacity, maxEngines = DEFAULT_MAX_ENGINES } = options ?? ({} as PrefixIndexOptions);
    return new PrefixIndex(allocate(capacity, maxEngines), true);
  }

  /** A read-only view of an index created elsewhere (in this thread or another). */
  static attach(shared: PrefixIndexShared): PrefixIndex {
    return new PrefixIndex(shared, false);
  }

  /**
   * Takes over as writer of an existing index whose writer is gone (its thread died), emptying it first:
   * the writer's bookkeeping died with it, and the engines' events will refill the table.
   */
  static recover(shared: PrefixIndexShared): PrefixIndex {
    const index = new PrefixIndex(shared, true);
    index.#writer!.clear();
    return index;
  }

  /** Number of entries (distinct blocks held by at least one engine). */
  get size(): number {
    return Atomics.load(this.#v.header, H_SIZE);
  }

  get evictions(): number {
    // Two halves: read high, low, high again so that a carry between them is not mistaken.
    for (;;) {
      const hi = Atomics.load(this.#v.header, H_EVICTIONS_HI);
      const lo = Atomics.load(this.#v.header, H_EVICTIONS_LO) >>> 0;
      if (Atomics.load(this.#v.header, H_EVICTIONS_HI) === hi) return hi * 2 ** 32 + lo;
    }
  }

  get writable(): boolean {
    return this.#writer !== undefined;
  }

  /**
   * For every engine, the number of leading blocks of `hashes` it holds: a Uint32Array indexed by engine,
   * maxEngines long. Pass `out` (at least maxEngines long) to reuse one array and allocate nothing.
   */
  overlaps(hashes: BigUint64Array, out?: Uint32Array): Uint32Array {
    const result = out ?? new Uint32Array(this.maxEngines);
    if (!(result instanceof Uint32Array) || result.length < this.maxEngines) {
      throw new RangeError(`out must be a Uint32Array of at least maxEngines (${this.maxEngines}) entries`);
    }
    this.#reader.overlaps(this.#words.of(hashes), hashes.length, result);
    return result;
  }

  /** The engines holding the block, ascending. */
  holders(hash: bigint): number[] {
    const one = BigUint64Array.of(hash);
    const w = new Uint32Array(one.buffer);
    const row = new Uint32Array(this.#v.words);
    const engines: number[] = [];
    if (!this.#reader.engines(w[LO]!, w[HI]!, row)) return engines;
    for (let e = 0; e < this.maxEngines; e++) if ((row[e >>> 5]! >>> (e & 31)) & 1) engines.push(e);
    return engines;
  }

  /** Number of entries naming `engine`. */
  engineBlocks(engine: number): number {
    this.#checkEngine(engine);
    return Atomics.load(this.#v.blocks, engine);
  }

  /**
   * Records that `engine` holds `hashes`, a chain: hashes[i]'s parent is hashes[i - 1], and hashes[0]'s is
   * `parent`, or hashes[0] starts a prompt when `parent` is omitted or null.
   */
  store(engine: number, hashes: BigUint64Array, parent?: bigint | null): void {
    const writer = this.#writable();
    this.#checkEngine(engine);
    const words = this.#words.of(hashes);
    if (parent === undefined || parent === null) {
      writer.store(engine, words, LO, HI, hashes.length, true, 0, 0);
    } else {
      const p = BigUint64Array.of(parent);
      const pw = new Uint32Array(p.buffer);
      writer.store(engine, words, LO, HI, hashes.length, false, pw[LO]!, pw[HI]!);
    }
  }

  /** The same as `store` with the chain given as u32 halves (a Uint32Array view of a BigUint64Array), for callers that never make a BigInt. */
  storeWords(engine: number, words: Uint32Array, n: number, parentWords: Uint32Array | null, parentAt = 0): void {
    const writer = this.#writable();
    this.#checkEngine(engine);
    checkWords(words, n);
    if (parentWords !== null) checkWords(parentWords.subarray(parentAt), 1);
    if (parentWords === null) writer.store(engine, words, LO, HI, n, true, 0, 0);
    else writer.store(engine, words, LO, HI, n, false, parentWords[parentAt + LO]!, parentWords[parentAt + HI]!);
  }

  /** Records that `engine` no longer holds `hashes` (any order; blocks it does not hold are ignored). Returns how many it held. */
  remove(engine: number, hashes: BigUint64Array): number {
    const writer = this.#writable();
    this.#checkEngine(engine);
    return writer.remove(engine, this.#words.of(hashes), LO, HI, hashes.length);
  }

  /** `remove` with the hashes as u32 halves. */
  removeWords(engine: number, words: Uint32Array, n: number): number {
    const writer = this.#writable();
    this.#checkEngine(engine);
    checkWords(words, n);
    return writer.remove(engine, words, LO, HI, n);
  }

  /** Drops every entry of `engine` (one pass over the table). Returns how many it held. */
  clearEngine(engine: number): number {
    const writer = this.#writable();
    this.#checkEngine(engine);
    return writer.clearEngine(engine);
  }

  /** Drops every entry. */
  clear(): void {
    this.#writable().clear();
  }

  stats(): PrefixIndexStats {
    const v = this.#v;
    let enginesWithHoles = 0;
    if (Atomics.load(v.header, H_TOTAL_HOLES) !== 0) {
      for (let e = 0; e < v.maxEngines; e++) if (Atomics.load(v.holes, e) !== 0) enginesWithHoles++;
    }
    return {
      entries: this.size,
      capacity: this.capacity,
      evictions: this.evictions,
      maxEngines: this.maxEngines,
      bytesPerEntry: bytesPerEntry(v.maxEngines),
      readerBytesPerEntry: readerBytesPerEntry(v.maxEngines),
      bytesAllocated: this.shared.buffer.byteLength + (this.#writer ? WRITER_BYTES_PER_SET * v.sets + WRITER_BYTES_PER_RECORD * v.records : 0),
      branchPairs: this.#writer?.branchPairs ?? 0,
      enginesWithHoles,
    };
  }

  /**
   * The writer's private bookkeeping, read-only, for checks that recount it from the shared records (the
   * tests' audit). A read-only view has none, and throws.
   */
  writerBookkeeping(): WriterBookkeeping {
    return this.#writable();
  }

  #writable(): IndexWriter {
    if (this.#writer === undefined) {
      throw new TypeError("this PrefixIndex is a read-only view (from PrefixIndex.attach): only the writer that created it may change it");
    }
    return this.#writer;
  }

  #checkEngine(engine: number): void {
    if (!Number.isInteger(engine) || engine < 0 || engine >= this.maxEngines) {
      throw new RangeError(`engine must be an integer from 0 to ${this.maxEngines - 1}, got ${String(engine)}`);
    }
  }
}

function checkWords(words: Uint32Array, n: number): void {
  if (!(words instanceof Uint32Array)) throw new TypeError(`hash words must be a Uint32Array, got ${Object.prototype.toString.call(words)}`);
  if (!Number.isInteger(n) || n < 0 || words.length < 2 * n) {
    throw new RangeError(`${String(n)} hashes need ${2 * n} words, got a Uint32Array of ${words.length}`);
  }
}
