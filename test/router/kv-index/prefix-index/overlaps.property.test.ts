import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { NaivePrefixIndex } from "../../../../bench/lib/naive-index.js";
import { PrefixIndex } from "../../../../src/index.js";
import { audit } from "./audit.js";

/** A forest of prompts sharing prefixes: prompt j copies a prefix of an earlier prompt, then goes its own way. */
function prompts(seed: number, count: number, maxLength: number): BigUint64Array[] {
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s;
  };
  const u64 = (): bigint => (BigInt(next()) << 32n) | BigInt(next());
  const out: BigUint64Array[] = [];
  for (let j = 0; j < count; j++) {
    const length = 1 + (next() % maxLength);
    const p = new BigUint64Array(length);
    const from = j > 0 ? out[next() % j]! : undefined;
    const shared = from ? next() % (Math.min(from.length, length) + 1) : 0;
    for (let i = 0; i < length; i++) p[i] = i < shared ? from![i]! : u64();
    out.push(p);
  }
  return out;
}

type Op =
  | { kind: "store"; engine: number; prompt: number; from: number; to: number }
  | { kind: "storeAll"; engine: number; prompt: number }
  | { kind: "remove"; engine: number; prompt: number; from: number; to: number }
  | { kind: "removeOne"; engine: number; prompt: number; at: number }
  | { kind: "clear"; engine: number };

const ENGINES = [0, 1, 31, 32, 33, 63, 64, 69];
const MAX_ENGINES = 70;

const op = (promptCount: number): fc.Arbitrary<Op> => {
  const engine = fc.constantFrom(...ENGINES);
  const prompt = fc.integer({ min: 0, max: promptCount - 1 });
  const range = fc.tuple(fc.nat(60), fc.nat(60));
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant("store" as const), engine, prompt, r: range }).map(({ r, ...o }) => ({ ...o, from: r[0], to: r[1] })) },
    // Whole prompts make long held prefixes, which single-block removals then punch holes in.
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("storeAll" as const), engine, prompt }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("remove" as const), engine, prompt, r: range }).map(({ r, ...o }) => ({ ...o, from: r[0], to: r[1] })) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("removeOne" as const), engine, prompt, at: fc.nat(60) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("clear" as const), engine }) },
  );
};

/** Applies one op to both the index and the reference; segments are clamped to the prompt. */
function apply(index: PrefixIndex, model: NaivePrefixIndex, all: BigUint64Array[], o: Op): void {
  if (o.kind === "clear") {
    index.clearEngine(o.engine);
    model.clearEngine(o.engine);
    return;
  }
  const p = all[o.prompt]!;
  if (o.kind === "storeAll") {
    index.store(o.engine, p);
    model.store(o.engine, p);
    return;
  }
  if (o.kind === "removeOne") {
    const h = p.subarray(o.at % p.length, (o.at % p.length) + 1);
    index.remove(o.engine, h);
    model.remove(o.engine, h);
    return;
  }
  const a = Math.min(o.from, o.to) % p.length;
  const b = Math.min(p.length, a + 1 + Math.abs(o.to - o.from));
  const segment = p.subarray(a, b);
  if (o.kind === "store") {
    index.store(o.engine, segment, a === 0 ? null : p[a - 1]!);
    model.store(o.engine, segment);
  } else {
    index.remove(o.engine, segment);
    model.remove(o.engine, segment);
  }
}

/** Queries: every prompt, a prefix of each, and each extended with blocks nobody holds. */
function queries(all: BigUint64Array[]): BigUint64Array[] {
  return all.flatMap((p) => {
    const longer = new BigUint64Array(p.length + 3);
    longer.set(p);
    longer.set([1n, 2n, 3n], p.length);
    return [p, p.subarray(0, Math.ceil(p.length / 2)), longer];
  });
}

describe("PrefixIndex.overlaps agrees with a Map of Sets", () => {
  it("over random stores, removes (including single blocks, which make holes) and engine clears", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 0x7fffffff }), fc.array(op(8), { minLength: 1, maxLength: 60 }), (seed, ops) => {
        const all = prompts(seed, 8, 50);
        const index = PrefixIndex.create({ capacity: 4096, maxEngines: MAX_ENGINES });
        const model = new NaivePrefixIndex();
        const out = new Uint32Array(MAX_ENGINES);
        for (const o of ops) {
          apply(index, model, all, o);
          for (const q of queries(all)) {
            expect(index.overlaps(q, out)).toEqual(model.overlaps(q, MAX_ENGINES));
          }
        }
        expect(index.size).toBe(model.size);
        for (const e of ENGINES) expect(index.engineBlocks(e)).toBe([...model.entries.values()].filter((s) => s.has(e)).length);
        expect(audit(index)).toEqual([]);
        expect(index.evictions).toBe(0);

      }),
      { numRuns: 150 },
    );
  });

  it("holes made by removing a middle block are found wherever the search probes", () => {
    const index = PrefixIndex.create({ capacity: 1024, maxEngines: 4 });
    const chain = new BigUint64Array(300);
    for (let i = 0; i < chain.length; i++) chain[i] = BigInt(i + 1) * 0x9e3779b97f4a7c15n & 0xffffffffffffffffn;
    index.store(2, chain);
    expect(index.overlaps(chain)[2]).toBe(300);
    for (const hole of [299, 150, 64, 63, 1]) {
      index.remove(2, chain.subarray(hole, hole + 1));
      expect(index.overlaps(chain)[2]).toBe(hole);
      expect(index.stats().enginesWithHoles).toBe(hole === 299 ? 0 : 1);
    }
    // Refilling the holes in any order gives the full overlap back. The blocks after a refilled hole were
    // linked to entries that were deleted, so they still count as holes (a slower walk, never a wrong
    // answer) until they are stored again, as an engine that recomputes a prefix does.
    for (const hole of [63, 299, 1, 150, 64]) index.store(2, chain.subarray(hole, hole + 1), chain[hole - 1]!);
    expect(index.overlaps(chain)[2]).toBe(300);
    index.store(2, chain);
    expect(index.stats().enginesWithHoles).toBe(0);
    expect(index.overlaps(chain)[2]).toBe(300);
    expect(audit(index)).toEqual([]);
  });
});

describe("a full table evicts, and stays sound", () => {
  it("never names an engine for a block it was not given; overlaps match the index's own contents", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 0x7fffffff }), fc.array(op(12), { minLength: 20, maxLength: 80 }), (seed, ops) => {
        const all = prompts(seed, 12, 60);
        const index = PrefixIndex.create({ capacity: 64, maxEngines: MAX_ENGINES });
        const model = new NaivePrefixIndex();
        for (const o of ops) apply(index, model, all, o);
        expect(index.size).toBeLessThanOrEqual(index.capacity);
        expect(audit(index)).toEqual([]);
        // What the index says is a subset of the truth, and overlaps are exact against what it says.
        for (const q of queries(all)) {
          const got = index.overlaps(q);
          const want = new Uint32Array(MAX_ENGINES);
          const alive = new Set(ENGINES);
          for (let i = 0; i < q.length && alive.size > 0; i++) {
            const holders = index.holders(q[i]!);
            for (const e of holders) expect(model.entries.get(q[i]!)?.has(e)).toBe(true);
            for (const e of [...alive]) {
              if (holders.includes(e)) want[e] = i + 1;
              else alive.delete(e);
            }
          }
          expect(got).toEqual(want);
        }
      }),
      { numRuns: 100 },
    );
  });

  it("counts evictions and holds at most its capacity", () => {
    const index = PrefixIndex.create({ capacity: 100, maxEngines: 8 });
    expect(index.capacity).toBe(100);
    const hashes = new BigUint64Array(1000);
    for (let i = 0; i < hashes.length; i++) hashes[i] = (BigInt(i) + 1n) * 0xbf58476d1ce4e5b9n & 0xffffffffffffffffn;
    index.store(3, hashes);
    expect(index.size).toBe(100);
    expect(index.evictions).toBe(1000 - index.size);
    expect(audit(index)).toEqual([]);
  });
});

describe("API boundaries", () => {
  it("rejects bad options, engines and hash arrays with a message naming the problem", () => {
    expect(() => PrefixIndex.create({ capacity: 0 })).toThrow(/capacity must be an integer/);
    expect(() => PrefixIndex.create({ capacity: 1.5 })).toThrow(RangeError);
    expect(() => PrefixIndex.create({ capacity: 64, maxEngines: 0 })).toThrow(/maxEngines must be/);
    expect(() => PrefixIndex.create({ capacity: 64, maxEngines: 5000 })).toThrow(/maxEngines must be/);
    const index = PrefixIndex.create({ capacity: 64, maxEngines: 4 });
    expect(() => index.store(4, new BigUint64Array(1))).toThrow(/engine must be an integer from 0 to 3, got 4/);
    expect(() => index.store(-1, new BigUint64Array(1))).toThrow(RangeError);
    expect(() => index.store(0, [1n] as unknown as BigUint64Array)).toThrow(/hashes must be a BigUint64Array/);
    expect(() => index.overlaps(new BigUint64Array(1), new Uint32Array(2))).toThrow(/out must be a Uint32Array/);
    expect(() => index.storeWords(0, new Uint32Array(3), 2, null)).toThrow(/2 hashes need 4 words, got a Uint32Array of 3/);
    expect(() => index.removeWords(0, [1, 2] as unknown as Uint32Array, 1)).toThrow(/hash words must be a Uint32Array/);
    expect(() => PrefixIndex.attach({ buffer: new SharedArrayBuffer(8) })).toThrow(TypeError);
  });

  it("a reader view cannot write", () => {
    const index = PrefixIndex.create({ capacity: 64, maxEngines: 4 });
    const view = PrefixIndex.attach(index.shared);
    expect(() => view.store(0, new BigUint64Array(1))).toThrow(/read-only view/);
    expect(() => view.clearEngine(0)).toThrow(/read-only view/);
    index.store(1, BigUint64Array.of(5n, 6n));
    expect(view.overlaps(BigUint64Array.of(5n, 6n))[1]).toBe(2);
    expect(view.size).toBe(2);
  });

  it("recover empties the table and takes over writing", () => {
    const index = PrefixIndex.create({ capacity: 64, maxEngines: 4 });
    index.store(1, BigUint64Array.of(5n, 6n));
    const taken = PrefixIndex.recover(index.shared);
    expect(taken.size).toBe(0);
    expect(taken.overlaps(BigUint64Array.of(5n, 6n))[1]).toBe(0);
    taken.store(2, BigUint64Array.of(5n));
    expect(PrefixIndex.attach(index.shared).holders(5n)).toEqual([2]);
    expect(audit(taken)).toEqual([]);
  });

  it("an empty prompt overlaps nothing; a hash of 0 is a key like any other", () => {
    const index = PrefixIndex.create({ capacity: 64, maxEngines: 4 });
    expect(index.overlaps(new BigUint64Array(0))).toEqual(new Uint32Array(4));
    index.store(0, BigUint64Array.of(0n, 0xffffffffffffffffn));
    expect(index.overlaps(BigUint64Array.of(0n, 0xffffffffffffffffn))[0]).toBe(2);
    expect(index.overlaps(BigUint64Array.of(1n))[0]).toBe(0);
  });
});
