// The plain way to keep a prefix index: a Map from sequence hash to the set of engines holding the block,
// and a linear walk for overlaps. The benchmark's baseline and the tests' reference model.

export class NaivePrefixIndex {
  readonly entries = new Map<bigint, Set<number>>();

  store(engine: number, hashes: Iterable<bigint>): void {
    for (const h of hashes) {
      let engines = this.entries.get(h);
      if (engines === undefined) this.entries.set(h, (engines = new Set()));
      engines.add(engine);
    }
  }

  remove(engine: number, hashes: Iterable<bigint>): void {
    for (const h of hashes) {
      const engines = this.entries.get(h);
      if (engines === undefined) continue;
      engines.delete(engine);
      if (engines.size === 0) this.entries.delete(h);
    }
  }

  clearEngine(engine: number): void {
    for (const [h, engines] of this.entries) {
      engines.delete(engine);
      if (engines.size === 0) this.entries.delete(h);
    }
  }

  /** Per engine, the number of leading blocks held: walks the prompt until no engine is left. */
  overlaps(hashes: ArrayLike<bigint>, maxEngines: number): Uint32Array {
    const out = new Uint32Array(maxEngines);
    let alive: Set<number> | undefined;
    for (let i = 0; i < hashes.length; i++) {
      const engines = this.entries.get(hashes[i]!);
      if (engines === undefined) break;
      const next = new Set<number>();
      for (const e of alive ?? engines) if (engines.has(e)) next.add(e);
      if (next.size === 0) break;
      for (const e of next) out[e] = i + 1;
      alive = next;
    }
    return out;
  }

  get size(): number {
    return this.entries.size;
  }
}
