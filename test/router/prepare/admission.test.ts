// The pool's admission: two lanes, small first, big ones capped, waiters that leave are dropped. Checked
// against a plain reference (two FIFO queues and counters) over random sequences of arrivals, releases
// and clients leaving.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Admission } from "../../../src/router/prepare/admission.js";

type Op = { kind: "enter"; big: boolean } | { kind: "release"; pick: number } | { kind: "leave"; pick: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("enter" as const), big: fc.boolean() }),
  fc.record({ kind: fc.constant("release" as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant("leave" as const), pick: fc.nat() }),
);

/** The rule, written the plain way: admit small first, big while under its cap, FIFO in each lane. */
class Reference {
  small: number[] = [];
  big: number[] = [];
  running = new Map<number, boolean>();
  constructor(
    readonly capacity: number,
    readonly bigCapacity: number,
  ) {}
  bigRunning(): number {
    return [...this.running.values()].filter(Boolean).length;
  }
  pump(): void {
    for (;;) {
      if (this.running.size >= this.capacity) return;
      if (this.small.length > 0) this.running.set(this.small.shift()!, false);
      else if (this.big.length > 0 && this.bigRunning() < this.bigCapacity) this.running.set(this.big.shift()!, true);
      else return;
    }
  }
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("Admission", () => {
  it("admits as the reference does, and never more than its capacities", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }), fc.array(op, { maxLength: 60 }), async (capacity, bigWanted, ops) => {
        const bigCapacity = Math.min(capacity, bigWanted);
        const admission = new Admission(capacity, bigCapacity);
        const reference = new Reference(capacity, bigCapacity);
        const admitted = new Map<number, boolean>();
        const left = new Set<number>();
        const controllers = new Map<number, AbortController>();
        let next = 0;
        for (const o of ops) {
          if (o.kind === "enter") {
            const id = next++;
            const controller = new AbortController();
            controllers.set(id, controller);
            void admission.enter(o.big, controller.signal).then((ok) => (ok ? admitted.set(id, o.big) : left.add(id)));
            (o.big ? reference.big : reference.small).push(id);
            reference.pump();
          } else if (o.kind === "release") {
            const running = [...admitted.keys()];
            if (running.length === 0) continue;
            const id = running[o.pick % running.length]!;
            admission.release(admitted.get(id)!);
            admitted.delete(id);
            reference.running.delete(id);
            reference.pump();
          } else {
            const waiting = [...reference.small, ...reference.big];
            if (waiting.length === 0) continue;
            const id = waiting[o.pick % waiting.length]!;
            controllers.get(id)!.abort();
            reference.small = reference.small.filter((x) => x !== id);
            reference.big = reference.big.filter((x) => x !== id);
          }
          await flush();
          expect(new Map([...admitted].sort((a, b) => a[0] - b[0]))).toEqual(new Map([...reference.running].sort((a, b) => a[0] - b[0])));
          expect(admission.running).toEqual({ all: reference.running.size, big: reference.bigRunning() });
          expect(admission.waiting).toBe(reference.small.length + reference.big.length);
          expect(admission.running.all).toBeLessThanOrEqual(capacity);
          expect(admission.running.big).toBeLessThanOrEqual(bigCapacity);
        }
        // A waiter that left was told so, and never admitted.
        for (const id of left) expect(admitted.has(id)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it("refuses at once a task whose client already left", async () => {
    const admission = new Admission(1, 1);
    const controller = new AbortController();
    controller.abort();
    expect(await admission.enter(false, controller.signal)).toBe(false);
    expect(admission.running).toEqual({ all: 0, big: 0 });
  });

  it("refuses bad capacities with a clear error", () => {
    expect(() => new Admission(0, 1)).toThrow(/capacity must be a positive integer/);
    expect(() => new Admission(2, 3)).toThrow(/bigCapacity must be an integer from 1 to capacity \(2\)/);
  });
});
