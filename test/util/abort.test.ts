// LeanAbortSignal against Node's AbortController over random sequences of adding, removing and aborting
// (listeners reused, so that duplicates and removals of absent ones happen): the same listeners run, in the
// same order, and `aborted` and `reason` agree after every step.
import fc from "fast-check";
import { afterEach, expect, it, vi } from "vitest";
import { LeanAbortSignal } from "../../src/util/abort.js";

type Op = { kind: "add" | "remove"; listener: number } | { kind: "abort"; reason: string };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constantFrom("add" as const, "remove" as const), listener: fc.integer({ min: 0, max: 4 }) }),
  fc.record({ kind: fc.constant("abort" as const), reason: fc.string({ maxLength: 3 }) }),
);

it("runs the same listeners in the same order as an AbortSignal", () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
      const lean = new LeanAbortSignal();
      const reference = new AbortController();
      const ranLean: number[] = [];
      const ranReference: number[] = [];
      const leanListeners = [0, 1, 2, 3, 4].map((i) => () => ranLean.push(i));
      const referenceListeners = [0, 1, 2, 3, 4].map((i) => () => ranReference.push(i));
      for (const o of ops) {
        if (o.kind === "abort") {
          lean.abort(o.reason);
          reference.abort(o.reason);
        } else if (o.kind === "add") {
          lean.addEventListener("abort", leanListeners[o.listener]!, { once: true });
          reference.signal.addEventListener("abort", referenceListeners[o.listener]!, { once: true });
        } else {
          lean.removeEventListener("abort", leanListeners[o.listener]!);
          reference.signal.removeEventListener("abort", referenceListeners[o.listener]!);
        }
        expect(ranLean).toEqual(ranReference);
        expect(lean.aborted).toBe(reference.signal.aborted);
        if (reference.signal.aborted) expect(lean.reason).toBe(reference.signal.reason);
      }
      // Nothing stays referenced once aborted; before, exactly the listeners not removed.
      if (lean.aborted) expect(lean.listenerCount).toBe(0);
    }),
  );
});

it("skips a listener removed, and ignores one added, by an earlier listener during the abort, as AbortSignal does", () => {
  for (const make of [() => new LeanAbortSignal(), () => new AbortController()]) {
    const made = make();
    const signal = made instanceof AbortController ? made.signal : made;
    const ran: string[] = [];
    const second = () => ran.push("second");
    const late = () => ran.push("late");
    signal.addEventListener("abort", () => {
      ran.push("first");
      signal.removeEventListener("abort", second);
      signal.addEventListener("abort", late);
    });
    signal.addEventListener("abort", second);
    made.abort("gone");
    expect(ran).toEqual(["first"]);
  }
});

it("holds no listener it was asked to remove", () => {
  const signal = new LeanAbortSignal();
  const listeners = Array.from({ length: 5 }, () => () => undefined);
  for (const l of listeners) signal.addEventListener("abort", l);
  for (const l of listeners) signal.removeEventListener("abort", l);
  expect(signal.listenerCount).toBe(0);
});

afterEach(() => {
  vi.restoreAllMocks();
});

it("runs every listener when one throws, and rethrows its error on a later tick", () => {
  const later: (() => void)[] = [];
  vi.spyOn(process, "nextTick").mockImplementation(((fn: () => void) => void later.push(fn)) as typeof process.nextTick);
  const signal = new LeanAbortSignal();
  const ran: string[] = [];
  signal.addEventListener("abort", () => ran.push("first"));
  signal.addEventListener("abort", () => {
    throw new Error("listener failed");
  });
  signal.addEventListener("abort", () => ran.push("third"));
  expect(() => signal.abort(new Error("client disconnected"))).not.toThrow();
  vi.restoreAllMocks();
  expect(ran).toEqual(["first", "third"]);
  expect(later).toHaveLength(1);
  expect(later[0]!).toThrow("listener failed");
});
