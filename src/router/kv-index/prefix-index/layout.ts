// The prefix index's shared memory: one SharedArrayBuffer holding a header, per-engine counters, a hash
// table of sets, and a heap of entry records.
//
// A key lives in one of two sets chosen by two salted hashes of it: the first, unless that set already
// held 10 of its 12 entries and the second was emptier. A set is one 64-byte cache line of 12 ways: 12
// one-byte fingerprints (1..255, from the key's high byte), a count of the keys that chose it first but
// live in their second set, and per way the index of the record holding the entry. A lookup reads the
// second set only when that count is not zero. There are 1.5 ways per record: a full table then has about
// 5% of its keys in their second set and a non-zero count in about a fifth of its sets, and its records
// run out before a key finds both of its sets full (with "always the emptier set", a third of the keys
// would live in their second set; with "the first unless full", tables would start evicting half full).
//
// Records are handed out from a free list, last freed first: the blocks of a chain stored together get
// records side by side, usually ones a removal just freed, so storing a chain and reading a prompt touch
// few pages and lines. (A table of a million entries is far larger than the cache and the TLB's reach:
// with records placed by hash, every block of a chain cost a cache and a TLB miss of its own.)
//
// A record, 7 + 2 × words u32 (words = ceil(maxEngines / 32)):
//   meta        bit 0 OCCUPIED, bits 1.. a counter bumped on every insertion and deletion: readers use it
//               as a sequence lock, the writer as the entry's incarnation (reader.ts, holes.ts)
//   keyLo       the key's low half
//   keyHi       the key's high half
//   engines     words: the set of engines holding the block, one bit per engine
//   stamp       the writer's store clock when the entry was last stored (eviction recency)
//   parent      the parent entry's record, or ROOT / MISSING
//   parentMeta  the parent's meta word when linked (the link is live while they match)
//   slot        the set way pointing at this record
//   children    words: per engine, whether it holds at least one child of this entry
// Readers use only the first 3 + words fields; the rest belong to the writer and sit in the same record
// so that a store touches one record, not one line per field. Of the writer's parts, entries.ts writes
// meta, key and slot, holes.ts engines, parent, parentMeta and children, eviction.ts stamp. Fingerprints and record indices in the sets
// only guide the search: a reader confirms every candidate on the record itself, so a stale way (a deleted
// entry's, or one being rewritten) can only cost a wasted record read.

import { LITTLE_ENDIAN } from "../../../util/u64.js";

export const WAYS = 12;
/** u32 words per set: fingerprints in words 0..2, the overflow count in word 3, record indices in words 4..15. */
export const SET_WORDS = 16;
export const FP_WORDS = 3;
export const SET_OVERFLOW = 3;
export const SET_RECORDS = 4;
export const OCCUPIED = 1;
export const MAX_ENGINES = 4096;
export const DEFAULT_MAX_ENGINES = 256;
export const MAX_CAPACITY = 1 << 28;
/** Ways per record: the headroom that keeps sets from overflowing before records run out. */
const WAYS_PER_RECORD = 1.5;
/** A key goes to its second set only when its first holds at least this many entries (and more than the second). */
export const PREFER_FIRST = 10;

/** Record field offsets (words). */
export const R_META = 0;
export const R_KEY_LO = 1;
export const R_KEY_HI = 2;
export const R_ENGINES = 3;

/** Parent field values that are not records. */
export const ROOT = 0xffffffff; // the block starts a prompt
export const MISSING = 0xfffffffe; // the parent is not in the table

const MAGIC = 0x6b76707b;

// Header words.
export const H_MAGIC = 0;
export const H_SETS = 1;
export const H_MAX_ENGINES = 2;
export const H_SIZE = 3;
export const H_EVICTIONS_LO = 4;
export const H_EVICTIONS_HI = 5;
const H_SALT = 6; // four words
export const H_TOTAL_HOLES = 10;
export const H_RECORDS = 11;
const HEADER_WORDS = 16;

/** What crosses threads: structured-cloneable, and enough to attach a reader. */
export interface PrefixIndexShared {
  readonly buffer: SharedArrayBuffer;
}

export interface Views {
  readonly sets: number;
  /** Records: the table's capacity in entries. */
  readonly records: number;
  readonly maxEngines: number;
  /** u32 words per engine set: ceil(maxEngines / 32). */
  readonly words: number;
  /** u32 words per record. */
  readonly stride: number;
  /** Writer field offsets within a record. */
  readonly stampAt: number;
  readonly parentAt: number;
  readonly parentMetaAt: number;
  readonly slotAt: number;
  readonly childrenAt: number;
  readonly header: Int32Array;
  /** Per engine: number of held blocks whose parent the engine does not hold (see holes.ts). */
  readonly holes: Int32Array;
  /** Per engine: number of entries naming it. */
  readonly blocks: Int32Array;
  /** SET_WORDS per set. */
  readonly table: Uint32Array;
  /** The same memory by byte: way w of set s has its fingerprint at byte s × 64 + w. */
  readonly tableBytes: Uint8Array;
  readonly heap: Uint32Array;
}

export function wordsFor(maxEngines: number): number {
  return Math.ceil(maxEngines / 32);
}

function strideFor(words: number): number {
  return 7 + 2 * words;
}

function setsFor(records: number): number {
  return Math.ceil((records * WAYS_PER_RECORD) / WAYS);
}

/** Bytes per entry: its record, and its share of the sets. */
export function bytesPerEntry(maxEngines: number): number {
  return 4 * strideFor(wordsFor(maxEngines)) + (4 * SET_WORDS * WAYS_PER_RECORD) / WAYS;
}

/** Of bytesPerEntry, the bytes a lookup reads: its way (fingerprint and record index) and the record's meta, key and engine set. */
export function readerBytesPerEntry(maxEngines: number): number {
  return 5 + 4 * (3 + wordsFor(maxEngines));
}

/** 64-byte aligned word offset, so that each set is exactly one cache line. */
function alignLine(words: number): number {
  return Math.ceil(words / 16) * 16;
}

export function checkOptions(capacity: unknown, maxEngines: unknown): void {
  if (typeof capacity !== "number" || !Number.isInteger(capacity) || capacity < WAYS || capacity > MAX_CAPACITY) {
    throw new RangeError(`capacity must be an integer number of entries from ${WAYS} to ${MAX_CAPACITY}, got ${String(capacity)}`);
  }
  if (typeof maxEngines !== "number" || !Number.isInteger(maxEngines) || maxEngines < 1 || maxEngines > MAX_ENGINES) {
    throw new RangeError(`maxEngines must be an integer from 1 to ${MAX_ENGINES}, got ${String(maxEngines)}`);
  }
}

function offsets(sets: number, records: number, maxEngines: number): { table: number; heap: number; total: number } {
  const table = alignLine(HEADER_WORDS + 2 * maxEngines);
  const heap = table + sets * SET_WORDS;
  return { table, heap, total: heap + records * strideFor(wordsFor(maxEngines)) };
}

export function allocate(capacity: number, maxEngines: number): PrefixIndexShared {
  checkOptions(capacity, maxEngines);
  const sets = setsFor(capacity);
  const buffer = new SharedArrayBuffer(offsets(sets, capacity, maxEngines).total * 4);
  const header = new Int32Array(buffer, 0, HEADER_WORDS);
  header[H_MAGIC] = MAGIC;
  header[H_SETS] = sets;
  header[H_RECORDS] = capacity;
  header[H_MAX_ENGINES] = maxEngines;
  crypto.getRandomValues(header.subarray(H_SALT, H_SALT + 4));
  return { buffer };
}

export function views(shared: PrefixIndexShared): Views {
  const buffer = (shared as { buffer?: unknown } | null)?.buffer;
  if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength < HEADER_WORDS * 4) {
    throw new TypeError("PrefixIndex.attach needs the `shared` object of a PrefixIndex (holding its SharedArrayBuffer)");
  }
  const header = new Int32Array(buffer, 0, HEADER_WORDS);
  if (header[H_MAGIC] !== MAGIC) throw new TypeError("PrefixIndex.attach: the buffer is not a prefix index");
  const sets = header[H_SETS]!;
  const records = header[H_RECORDS]!;
  const maxEngines = header[H_MAX_ENGINES]!;
  const words = wordsFor(maxEngines);
  const at = offsets(sets, records, maxEngines);
  if (at.total * 4 !== buffer.byteLength) throw new TypeError("PrefixIndex.attach: the buffer's size does not match its header");
  return {
    sets,
    records,
    maxEngines,
    words,
    stride: strideFor(words),
    stampAt: R_ENGINES + words,
    parentAt: R_ENGINES + words + 1,
    parentMetaAt: R_ENGINES + words + 2,
    slotAt: R_ENGINES + words + 3,
    childrenAt: R_ENGINES + words + 4,
    header,
    holes: new Int32Array(buffer, HEADER_WORDS * 4, maxEngines),
    blocks: new Int32Array(buffer, (HEADER_WORDS + maxEngines) * 4, maxEngines),
    table: new Uint32Array(buffer, at.table * 4, sets * SET_WORDS),
    tableBytes: new Uint8Array(buffer, at.table * 4, sets * SET_WORDS * 4),
    heap: new Uint32Array(buffer, at.heap * 4, records * strideFor(words)),
  };
}

/** The meta word an entry gets on its next insertion or deletion. */
export function nextMeta(meta: number, occupied: boolean): number {
  return ((((meta >>> 1) + 1) << 1) | (occupied ? OCCUPIED : 0)) >>> 0;
}

/**
 * The two sets a key may live in. Keys are XXH64 outputs, but a prompt author could search for blocks
 * whose hashes crowd one set; mixing in per-index random salts makes placement unpredictable.
 */
export class Placement {
  readonly #sets: number;
  readonly #a: number;
  readonly #b: number;
  readonly #c: number;
  readonly #d: number;

  constructor(v: Views) {
    this.#sets = v.sets;
    this.#a = v.header[H_SALT]!;
    this.#b = v.header[H_SALT + 1]!;
    this.#c = v.header[H_SALT + 2]!;
    this.#d = v.header[H_SALT + 3]!;
  }

  first(lo: number, hi: number): number {
    let h = Math.imul(lo ^ this.#a, 0x85ebca6b) ^ Math.imul(hi ^ this.#b, 0xc2b2ae35);
    h ^= h >>> 16;
    h = Math.imul(h, 0x7feb352d);
    h ^= h >>> 15;
    return this.#reduce(h);
  }

  second(lo: number, hi: number): number {
    let h = Math.imul(lo ^ this.#c, 0xcc9e2d51) ^ Math.imul(hi ^ this.#d, 0x1b873593);
    h ^= h >>> 16;
    h = Math.imul(h, 0x846ca68b);
    h ^= h >>> 15;
    return this.#reduce(h);
  }

  /** Multiply-shift range reduction of a u32 to [0, sets): exact for any set count a table can have. */
  #reduce(h: number): number {
    return Math.floor((h >>> 0) * this.#sets * 2.3283064365386963e-10);
  }
}

const ONES = 0x01010101;

/** A key's fingerprint, 1..255: its high byte (keys are hash outputs), with 0 kept for never-used ways. */
export function fingerprint(hi: number): number {
  return hi >>> 24 || 1;
}

/**
 * Ways of a set whose fingerprint matches `fp`, as a 12-bit mask. Four ways per word: XOR leaves a zero
 * byte where they match, and the borrow trick finds zero bytes. It can also flag a byte next to a real
 * match; callers confirm every candidate on its record.
 */
export function fingerprintMatches(table: Uint32Array, set: number, fp: number): number {
  const pattern = Math.imul(fp, ONES);
  const at = set * SET_WORDS;
  let mask = 0;
  for (let k = 0; k < FP_WORDS; k++) {
    const x = table[at + k]! ^ pattern;
    const zero = (x - ONES) & ~x & 0x80808080;
    if (zero !== 0) mask |= byteBits(zero) << (4 * k);
  }
  return mask;
}

/** The byte flags of a zero-byte mask (bit 7 of each byte) as four bits in way order. */
function byteBits(zero: number): number {
  const b = ((zero >>> 7) & 1) | ((zero >>> 14) & 2) | ((zero >>> 21) & 4) | ((zero >>> 28) & 8);
  return LITTLE_ENDIAN ? b : ((b & 1) << 3) | ((b & 2) << 1) | ((b & 4) >>> 1) | ((b & 8) >>> 3);
}

/** Word views of BigUint64Arrays, cached for the last array seen: the hot path reuses one array per thread. */
export class WordView {
  #source: BigUint64Array | undefined;
  #words: Uint32Array = new Uint32Array(0);

  of(hashes: BigUint64Array): Uint32Array {
    if (hashes !== this.#source) {
      if (!(hashes instanceof BigUint64Array)) {
        throw new TypeError(`hashes must be a BigUint64Array of sequence hashes, got ${Object.prototype.toString.call(hashes)}`);
      }
      this.#source = hashes;
      this.#words = new Uint32Array(hashes.buffer, hashes.byteOffset, hashes.length * 2);
    }
    return this.#words;
  }
}
