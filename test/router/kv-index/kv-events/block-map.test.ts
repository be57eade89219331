import fc from "fast-check";
import { expect, it } from "vitest";
import { EngineBlockMap } from "../../../../src/router/kv-index/kv-events/block-map.js";

// The engine-hash map against a JS Map, over random inserts and deletes that grow it several times and
// delete from the middle of probe runs (keys drawn from a small pool collide often).
it("EngineBlockMap agrees with a Map through inserts, deletes and growth", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 3 })), { minLength: 500, maxLength: 4000, size: "max" }),
      (ops) => {
        const map = new EngineBlockMap();
        const model = new Map<string, { router: number; copies: number }>();
        const key = (k: number, h: number): [number, number] => [Math.imul(k, 0x9e3779b1) >>> 0, h];
        for (const [insert, k, h] of ops) {
          const [lo, hi] = key(k, h);
          const name = `${lo}:${hi}`;
          if (insert) {
            const slot = map.insert(lo, hi);
            map.setRouter(slot, k, h + 1);
            map.setCopies(slot, map.copies(slot) + 1);
            const had = model.get(name);
            model.set(name, { router: k, copies: (had?.copies ?? 0) + 1 });
          } else {
            const slot = map.find(lo, hi);
            expect(slot >= 0).toBe(model.has(name));
            if (slot >= 0) map.delete(slot);
            model.delete(name);
          }
        }
        expect(map.size).toBe(model.size);
        for (const [name, want] of model) {
          const [lo, hi] = name.split(":").map(Number) as [number, number];
          const slot = map.find(lo, hi);
          expect(slot).toBeGreaterThanOrEqual(0);
          expect([map.routerLo(slot), map.routerHi(slot) - 1, map.copies(slot)]).toEqual([want.router, hi, want.copies]);
        }
        let seen = 0;
        map.forEach(() => seen++);
        expect(seen).toBe(model.size);
      },
    ),
    { numRuns: 60 },
  );
});
