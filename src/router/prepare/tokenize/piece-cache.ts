// The exact tokenization cache: token ids of text sections (the text between added tokens), keyed by the
// section's text, within a byte budget.
//
// Lookup: V8 hashes a long string one character at a time, which for a system prompt of some kilobytes
// costs more than everything else a hit does. So long texts are filed under a short fingerprint (length,
// both ends, characters sampled across the text), and a hit is confirmed by comparing the whole text,
// which V8 does with a block compare. A fingerprint files at most BUCKET_MAX texts.
//
// Eviction is "second chance" (CLOCK), close to least-recently-used: a hit only sets the entry's `used`
// mark; when room is needed, the oldest entry goes unless it was used since it last came round, in which
// case it loses its mark and moves to the back.
//
// Invariants: the sum of entry costs (UTF-16 key bytes + 4 bytes per id + a fixed overhead) never exceeds
// the budget after a `set` returns. A section costing more than a quarter of the budget is not kept, so
// one huge prompt cannot flush everything else. Keys are copies, never views of a request's prompt (see
// `detach`). Entries are never mutated: callers copy what they get.

/** Bytes counted per entry besides its key and ids: the map entries, the entry object, the array header. */
const ENTRY_OVERHEAD = 160;
/** Texts shorter than this are their own fingerprint. */
const FINGERPRINT_FROM = 128;
const BUCKET_MAX = 8;

export interface PieceCacheStats {
  entries: number;
  bytes: number;
  budgetBytes: number;
  hits: number;
  misses: number;
  evictions: number;
}

interface Entry {
  fingerprint: string;
  key: string;
  ids: Uint32Array;
  used: boolean;
}

export class PieceCache {
  readonly #buckets = new Map<string, Entry[]>();
  /** Every entry, oldest first: the clock's order. */
  readonly #clock = new Set<Entry>();
  #bytes = 0;
  #hits = 0;
  #misses = 0;
  #evictions = 0;

  constructor(readonly budgetBytes: number) {
    if (!Number.isFinite(budgetBytes) || budgetBytes <= 0) throw new RangeError(`the piece cache budget must be a positive number of bytes, got ${budgetBytes}`);
  }

  get(text: string): Uint32Array | undefined {
    const entry = this.#find(fingerprint(text), text);
    if (entry === undefined) {
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    entry.used = true;
    return entry.ids;
  }

  set(text: string, ids: Uint32Array): void {
    const cost = costOf(text, ids);
    const print = fingerprint(text);
    if (cost > this.budgetBytes / 4 || this.#find(print, text) !== undefined || (this.#buckets.get(print)?.length ?? 0) >= BUCKET_MAX) return;
    while (this.#bytes + cost > this.budgetBytes) {
      const oldest = this.#clock.values().next().value!;
      this.#clock.delete(oldest);
      if (oldest.used) {
        oldest.used = false;
        this.#clock.add(oldest);
      } else {
        this.#drop(oldest);
      }
    }
    const key = detach(text);
    const entry: Entry = { fingerprint: print === text ? key : detach(print), key, ids, used: false };
    const bucket = this.#buckets.get(entry.fingerprint);
    if (bucket === undefined) this.#buckets.set(entry.fingerprint, [entry]);
    else bucket.push(entry);
    this.#clock.add(entry);
    this.#bytes += cost;
  }

  stats(): PieceCacheStats {
    return { entries: this.#clock.size, bytes: this.#bytes, budgetBytes: this.budgetBytes, hits: this.#hits, misses: this.#misses, evictions: this.#evictions };
  }

  #find(print: string, text: string): Entry | undefined {
    const bucket = this.#buckets.get(print);
    if (bucket === undefined) return undefined;
    for (const entry of bucket) if (entry.key === text) return entry;
    return undefined;
  }

  #drop(entry: Entry): void {
    const bucket = this.#buckets.get(entry.fingerprint)!;
    if (bucket.length === 1) this.#buckets.delete(entry.fingerprint);
    else bucket.splice(bucket.indexOf(entry), 1);
    this.#bytes -= costOf(entry.key, entry.ids);
    this.#evictions++;
  }
}

function costOf(text: string, ids: Uint32Array): number {
  return 2 * text.length + 4 * ids.length + ENTRY_OVERHEAD;
}

/** A short string that equal texts share: the text itself when short, else its length, ends and samples. */
function fingerprint(text: string): string {
  const n = text.length;
  if (n < FINGERPRINT_FROM) return text;
  let samples = "";
  const step = Math.floor(n / 32);
  for (let i = step; i < n; i += step) samples += text[i];
  return `${n}\u0000${text.slice(0, 32)}\u0000${text.slice(n - 32)}\u0000${samples}`;
}

/**
 * A copy of the text that does not share memory with the string it was cut from: V8 represents a slice as
 * a view of its parent, and a cached view would keep the whole rendered prompt alive.
 */
function detach(text: string): string {
  return text.length < 16 ? text : ` ${text}`.slice(1);
}
