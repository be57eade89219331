// IdMap against a Map as the reference: random sets, deletes, gets and clears over ids from the whole range,
// and the churn of requests in flight (ids rising, the oldest leaving), which grows and compacts the table.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IdMap } from "../../src/util/id-map.js";

type Op = { kind: "set"; id: number; value: number } | { kind: "delete"; id: number } | { kind: "get"; id: number } | { kind: "clear" };

// Few distinct ids, so that operations meet the same ids often, and the extremes of the range.
const id = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constantFrom(0, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1), fc.integer({ min: 0, max: 2 ** 32 - 1 }));
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("set" as const), id, value: fc.integer() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("delete" as const), id }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("get" as const), id }) },
  { weight: 1, arbitrary: fc.constant({ kind: "clear" as const }) },
);

const byId = (a: [number, unknown], b: [number, unknown]) => a[0] - b[0];

function expectSame(map: IdMap<number>, reference: Map<number, number>): void {
  expect(map.size).toBe(reference.size);
  const entries = [...reference].sort(byId);
  expect(map.entries().sort(byId)).toEqual(entries);
  expect(map.values().sort((a, b) => a - b)).toEqual(entries.map(([, v]) => v).sort((a, b) => a - b));
}

describe("IdMap", () => {
  it("behaves as a Map of the same operations", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
        const map = new IdMap<number>();
        const reference = new Map<number, number>();
        for (const o of ops) {
          if (o.kind === "set") {
            expect(map.set(o.id, o.value)).toBe(map);
            reference.set(o.id, o.value);
          } else if (o.kind === "delete") expect(map.delete(o.id)).toBe(reference.delete(o.id));
          else if (o.kind === "get") {
            expect(map.get(o.id)).toBe(reference.get(o.id));
            expect(map.has(o.id)).toBe(reference.has(o.id));
          } else {
            map.clear();
            reference.clear();
          }
          expect(map.size).toBe(reference.size);
        }
        expectSame(map, reference);
      }),
    );
  });

  it("keeps up with requests in flight: ids rising from anywhere, a varying number of them open", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 20 }), (start, inFlight) => {
        const map = new IdMap<number>();
        const reference = new Map<number, number>();
        let next = start;
        const open: number[] = [];
        for (const target of inFlight) {
          // Open requests until `target` are in flight, or close the oldest down to it.
          while (open.length < target) {
            const id = next;
            next = (next + 1) >>> 0;
            map.set(id, id ^ 1);
            reference.set(id, id ^ 1);
            open.push(id);
          }
          while (open.length > target) {
            const id = open.shift()!;
            expect(map.delete(id)).toBe(true);
            reference.delete(id);
          }
          for (const id of open) expect(map.get(id)).toBe(id ^ 1);
          expect(map.get(next)).toBeUndefined();
          expectSame(map, reference);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("refuses ids it cannot hold, and finds nothing for them", () => {
    const map = new IdMap<string>();
    for (const bad of [-1, 2 ** 32, 1.5, Number.NaN]) {
      expect(() => map.set(bad, "x")).toThrow(RangeError);
      expect(map.get(bad)).toBeUndefined();
      expect(map.has(bad)).toBe(false);
      expect(map.delete(bad)).toBe(false);
    }
    expect(map.size).toBe(0);
  });

  it("gives copies to iterate, so entries may be deleted meanwhile", () => {
    const map = new IdMap<string>();
    for (const i of [3, 1, 2]) map.set(i, `v${i}`);
    for (const [i] of map.entries()) map.delete(i);
    expect(map.size).toBe(0);
    expect(map.values()).toEqual([]);
  });
});
