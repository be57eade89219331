// The audit the other tests rely on must be able to fail: changing one maintained word of a sound index
// is reported, naming what disagrees, and restoring the word makes the audit clean again.
import { describe, expect, it } from "vitest";
import { PrefixIndex } from "../../../../src/index.js";
import { H_SIZE, H_TOTAL_HOLES, OCCUPIED, R_ENGINES, R_META, SET_OVERFLOW, views } from "../../../../src/router/kv-index/prefix-index/layout.js";
import { audit } from "./audit.js";

/**
 * Engines 1 and 33 (two words of engine bits) share blocks 11, 12, 13. Engine 33 branches at 13 (children
 * 21 and 31); engine 1 drops 13, so its block 14 is a hole.
 */
function sample(): PrefixIndex {
  const index = PrefixIndex.create({ capacity: 64, maxEngines: 40 });
  const chain = BigUint64Array.of(11n, 12n, 13n, 14n, 15n);
  index.store(1, chain);
  index.store(33, chain.subarray(0, 3));
  index.store(33, BigUint64Array.of(21n, 22n), 13n);
  index.store(33, BigUint64Array.of(31n), 13n);
  index.remove(1, chain.subarray(2, 3));
  return index;
}

function recordOf(index: PrefixIndex, hash: bigint): number {
  return index.writerBookkeeping().find(Number(hash & 0xffffffffn), Number(hash >> 32n));
}

describe("the prefix index audit", () => {
  it("is clean on a sound index with a hole and a branch point", () => {
    const index = sample();
    expect(index.stats()).toMatchObject({ entries: 8, enginesWithHoles: 1, branchPairs: 1 });
    expect(audit(index)).toEqual([]);
  });

  it("reports each corrupted count or bit, and is clean again once it is restored", () => {
    const index = sample();
    const v = views(index.shared);
    const block11 = recordOf(index, 11n) * v.stride;
    const block13 = recordOf(index, 13n) * v.stride;
    const free = (v.records - 1) * v.stride; // records are handed out from 0 up
    expect(v.heap[free + R_META]! & OCCUPIED).toBe(0);
    const cases: [string, Int32Array | Uint32Array, number, (x: number) => number, string][] = [
      ["hole count", v.holes, 1, (x) => x + 1, "engine 1: 2 holes counted, 1 found"],
      ["total holes", v.header, H_TOTAL_HOLES, (x) => x + 1, "total holes 2, found 1"],
      ["block count", v.blocks, 33, (x) => x - 1, "engine 33: 5 blocks counted, 6 found"],
      ["entry count", v.header, H_SIZE, (x) => x + 1, "size 9, found 8"],
      ["overflow count", v.table, SET_OVERFLOW, (x) => x + 1, "set 0: 1 overflowed keys counted, 0 found"],
      ["engine bit of an entry", v.heap, block11 + R_ENGINES, (x) => x | (1 << 5), "engine 5: 0 blocks counted, 1 found"],
      ["engine bit of a free record", v.heap, free + R_ENGINES + 1, (x) => x | 1, `free record ${v.records - 1} has engine bits`],
      ["child bit", v.heap, block13 + v.childrenAt, (x) => x & ~(1 << 1), `record ${block13 / v.stride} engine 1: 0 children counted, 1 held`],
    ];
    for (const [what, array, at, corrupt, report] of cases) {
      const before = array[at]!;
      array[at] = corrupt(before);
      expect(audit(index), what).toContain(report);
      array[at] = before;
      expect(audit(index), what).toEqual([]);
    }
  });

  it("needs the writer: a read-only view has no bookkeeping to check", () => {
    expect(() => audit(PrefixIndex.attach(sample().shared))).toThrow(/read-only view/);
  });
});
