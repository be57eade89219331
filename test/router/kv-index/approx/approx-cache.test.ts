// Approximate-mode bookkeeping against a simple reference (a Map per engine in recency order), over random
// predictions that share prefixes, random clock steps and expiries; the real prefix index must hold what
// the reference holds, engine by engine and block by block.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ApproxCache } from "../../../../src/router/kv-index/approx/approx-cache.js";
import { PrefixIndex } from "../../../../src/router/kv-index/prefix-index/index.js";

class ReferenceCache {
  readonly #engines = new Map<number, { capacity: number; held: Map<bigint, number> }>();
  constructor(readonly ttlMs: number) {}
  addEngine(engine: number, capacity: number): void {
    this.#engines.set(engine, { capacity, held: new Map() });
  }
  record(engine: number, hashes: bigint[], now: number): void {
    const e = this.#engines.get(engine)!;
    this.#expire(e.held, now);
    const m = Math.min(hashes.length, e.capacity);
    for (let i = m - 1; i >= 0; i--) {
      e.held.delete(hashes[i]!);
      e.held.set(hashes[i]!, now);
      if (e.held.size > e.capacity) e.held.delete(e.held.keys().next().value!);
    }
  }
  expire(now: number): void {
    for (const e of this.#engines.values()) this.#expire(e.held, now);
  }
  held(engine: number): Set<bigint> {
    return new Set(this.#engines.get(engine)!.held.keys());
  }
  #expire(held: Map<bigint, number>, now: number): void {
    for (const [hash, stamp] of held) if (stamp <= now - this.ttlMs) held.delete(hash);
  }
}

/** Chained hashes of a path in a small tree: equal prefixes give equal hashes. */
function hasher(): (path: number[]) => bigint[] {
  const ids = new Map<string, bigint>();
  return (path) =>
    path.map((_, i) => {
      const key = path.slice(0, i + 1).join(".");
      let id = ids.get(key);
      if (id === undefined) ids.set(key, (id = 0x9e3779b97f4a7c15n * BigInt(ids.size + 1) & 0xffff_ffff_ffff_ffffn));
      return id;
    });
}

const words = (hashes: bigint[]) => new Uint32Array(BigUint64Array.from(hashes).buffer);

describe("ApproxCache", () => {
  it("holds what the reference holds, in its own LRU and in the prefix index", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 50 }),
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant("record" as const), engine: fc.integer({ min: 0, max: 1 }), path: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 8 }) }),
            fc.record({ op: fc.constant("tick" as const), ms: fc.integer({ min: 0, max: 30 }) }),
            fc.record({ op: fc.constant("expire" as const) }),
          ),
          { maxLength: 120 },
        ),
        (cap0, cap1, ttlMs, ops) => {
          const index = PrefixIndex.create({ capacity: 4096, maxEngines: 32 });
          const cache = new ApproxCache(index, { ttlMs });
          const ref = new ReferenceCache(ttlMs);
          const hash = hasher();
          const universe = new Set<bigint>();
          cache.addEngine(0, cap0);
          cache.addEngine(1, cap1);
          ref.addEngine(0, cap0);
          ref.addEngine(1, cap1);
          let now = 1000;
          for (const o of ops) {
            if (o.op === "record") {
              const hashes = hash(o.path);
              for (const h of hashes) universe.add(h);
              cache.record(o.engine, words(hashes), hashes.length, now);
              ref.record(o.engine, hashes, now);
            } else if (o.op === "tick") {
              now += o.ms;
            } else {
              cache.expire(now);
              ref.expire(now);
            }
            for (const engine of [0, 1]) {
              const held = ref.held(engine);
              expect(cache.stats().find((s) => s.engine === engine)!.blocks).toBe(held.size);
              expect(index.engineBlocks(engine)).toBe(held.size);
              for (const h of universe) expect(index.holders(h).includes(engine)).toBe(held.has(h));
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("forgets a prompt tail first when full, so its prefix is still found", () => {
    const index = PrefixIndex.create({ capacity: 1024, maxEngines: 32 });
    const cache = new ApproxCache(index, { ttlMs: 1000 });
    cache.addEngine(3, 4);
    const hash = hasher();
    const a = hash([1, 1, 1, 1]);
    cache.record(3, words(a), 4, 0);
    const b = hash([2, 2]);
    cache.record(3, words(b), 2, 1);
    // a's last two blocks made room for b; a's first two are still a prefix an engine holds.
    expect(index.overlaps(BigUint64Array.from(a))[3]).toBe(2);
    expect(index.overlaps(BigUint64Array.from(b))[3]).toBe(2);
    expect(cache.counters).toMatchObject({ predictions: 2, evicted: 2, expired: 0 });
  });

  it("forgets predictions at the TTL, and a repeated prediction renews them", () => {
    const index = PrefixIndex.create({ capacity: 1024, maxEngines: 32 });
    const cache = new ApproxCache(index, { ttlMs: 100 });
    cache.addEngine(0, 100);
    const hash = hasher();
    const a = hash([1, 2, 3]);
    const b = hash([4, 5]);
    cache.record(0, words(a), 3, 0);
    cache.record(0, words(b), 2, 50);
    cache.expire(99);
    expect(index.overlaps(BigUint64Array.from(a))[0]).toBe(3);
    cache.record(0, words(a.slice(0, 1)), 1, 99);
    cache.expire(100);
    // a's first block was predicted again at 99; its other blocks ran out at 100.
    expect(index.overlaps(BigUint64Array.from(a))[0]).toBe(1);
    expect(index.overlaps(BigUint64Array.from(b))[0]).toBe(2);
    cache.expire(150);
    expect(index.overlaps(BigUint64Array.from(b))[0]).toBe(0);
    expect(cache.counters.expired).toBe(4);
  });

  it("ignores predictions for an engine it does not follow, and drops an engine's entries on removal", () => {
    const index = PrefixIndex.create({ capacity: 1024, maxEngines: 32 });
    const cache = new ApproxCache(index, { ttlMs: 100 });
    const a = hasher()([1, 2]);
    cache.record(5, words(a), 2, 0);
    expect(index.size).toBe(0);
    cache.addEngine(5, 10);
    cache.record(5, words(a), 2, 0);
    expect(index.engineBlocks(5)).toBe(2);
    cache.removeEngine(5);
    expect(index.engineBlocks(5)).toBe(0);
    expect(cache.hasEngine(5)).toBe(false);
  });

  it("refuses a TTL or capacity that makes no sense, naming it", () => {
    const index = PrefixIndex.create({ capacity: 1024, maxEngines: 32 });
    expect(() => new ApproxCache(index, { ttlMs: 0 })).toThrow(/TTL must be a number of ms above 0, got 0/);
    const cache = new ApproxCache(index, { ttlMs: 1 });
    expect(() => cache.addEngine(0, 0)).toThrow(/capacity must be a positive integer of blocks, got 0/);
    cache.addEngine(0, 1);
    expect(() => cache.addEngine(0, 1)).toThrow(/already in approximate mode/);
  });
});
