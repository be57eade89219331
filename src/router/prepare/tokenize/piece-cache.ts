// The exact tokenization cache: token ids of text sections (the text between added tokens), keyed by the
// section's text, within a byte budget.
//
// Eviction is "second chance" (CLOCK), close to least-recently-used: a hit only sets the entry's `used`
// mark, so it costs one map lookup; when room is needed, the oldest entry goes unless it was used since it
// last came round, in which case it loses its mark and moves to the back.
//
// Invariants: the sum of entry costs (UTF-16 key bytes + 4 bytes per id + a fixed overhead) never exceeds
// the budget after a `set` returns. A section costing more than a quarter of the budget is not kept, so
// one huge prompt cannot flush everything else. Keys are copies, never views of a request's prompt (see
// `detach`). Entries are never mutated: callers copy what they get.

/** Bytes counted per entry besides its key and ids: the map entry, the entry object, the array header. */
const ENTRY_OVERHEAD = 128;

export interface PieceCacheStats {
  entries: number;
  bytes: number;
  budgetBytes: number;
  hits: number;
  misses: number;
  evictions: number;
}

interface Entry {
  key: string;
  ids: Uint32Array;
  used: boolean;
}

export class PieceCache {
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;
  #hits = 0;
  #misses = 0;
  #evictions = 0;

  constructor(readonly budgetBytes: number) {
    if (!Number.isFinite(budgetBytes) || budgetBytes <= 0) throw new RangeError(`the piece cache budget must be a positive number of bytes, got ${budgetBytes}`);
  }

  get(text: string): Uint32Array | undefined {
    const entry = this.#entries.get(text);
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
    if (cost > this.budgetBytes / 4 || this.#entries.has(text)) return;
    while (this.#bytes + cost > this.budgetBytes) {
      const oldest = this.#entries.values().next().value!;
      this.#entries.delete(oldest.key);
      if (oldest.used) {
        oldest.used = false;
        this.#entries.set(oldest.key, oldest);
      } else {
        this.#bytes -= costOf(oldest.key, oldest.ids);
        this.#evictions++;
      }
    }
    const key = detach(text);
    this.#entries.set(key, { key, ids, used: false });
    this.#bytes += cost;
  }

  stats(): PieceCacheStats {
    return { entries: this.#entries.size, bytes: this.#bytes, budgetBytes: this.budgetBytes, hits: this.#hits, misses: this.#misses, evictions: this.#evictions };
  }
}

function costOf(text: string, ids: Uint32Array): number {
  return 2 * text.length + 4 * ids.length + ENTRY_OVERHEAD;
}

/**
 * A copy of the text that does not share memory with the string it was cut from: V8 represents a slice as
 * a view of its parent, and a cached view would keep the whole rendered prompt alive.
 */
function detach(text: string): string {
  return text.length < 16 ? text : ` ${text}`.slice(1);
}
