// The prefill gate on its own: what it sends at once, what it holds, the order and batches it releases
// them in, and, against random sequences of calls, that every attempt is sent exactly once or withdrawn.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PrefillGate, type GateEntry } from "../../../src/router/schedule/index.js";

/** Entries that record when they were sent, into one shared log. */
function maker() {
  const sent: string[] = [];
  const entry = (name: string, tokens: number, joins = true): GateEntry => ({ tokens, send: () => sent.push(name), joins: () => joins });
  return { sent, entry };
}

describe("prefill gate", () => {
  it("sends at once on an engine with nothing in flight, or when holding is not advised", () => {
    const gate = new PrefillGate(8192);
    const { sent, entry } = maker();
    expect(gate.busy(0)).toBe(false);
    expect(gate.enter(0, entry("a", 100), true)).toBe(true);
    expect(gate.busy(0)).toBe(true);
    expect(gate.enter(0, entry("b", 100), false)).toBe(true);
    expect(gate.enter(1, entry("c", 100), true)).toBe(true);
    expect(gate.inFlight(0)).toBe(2);
    expect(gate.held).toBe(0);
    // The caller sends what enter admits; the gate calls send only for what it releases later.
    expect(sent).toEqual([]);
  });

  it("holds while prompts are in flight and releases when the last of them settles", () => {
    const gate = new PrefillGate(8192);
    const { sent, entry } = maker();
    const a = entry("a", 100);
    const b = entry("b", 100);
    gate.enter(0, a, true);
    gate.enter(0, b, false);
    expect(gate.enter(0, entry("c", 100), true)).toBe(false);
    expect(gate.held).toBe(1);
    expect(gate.heldOn(0)).toBe(1);
    expect(gate.heldOn(1)).toBe(0);
    gate.settle(0, a);
    expect(sent).toEqual([]);
    gate.settle(0, b);
    expect(sent).toEqual(["c"]);
    expect(gate.held).toBe(0);
    expect(gate.inFlight(0)).toBe(1);
    expect(gate.heldTotal).toBe(1);
  });

  it("holds an attempt that comes while others are held for its engine, even when holding is not advised", () => {
    const gate = new PrefillGate(8192);
    const { sent, entry } = maker();
    const a = entry("a", 100);
    gate.enter(0, a, true);
    expect(gate.enter(0, entry("b", 5000), true)).toBe(false);
    // Not advised to wait, but sent now it would pass b; on another engine it goes at once.
    expect(gate.enter(0, entry("c", 1000), false)).toBe(false);
    expect(gate.enter(1, entry("d", 1000), false)).toBe(true);
    expect(gate.heldOn(0)).toBe(2);
    gate.settle(0, a);
    expect(sent).toEqual(["c", "b"]);
  });

  it("releases shortest first, as many as fit in one step together, and the rest before later ones", () => {
    const gate = new PrefillGate(8192);
    const { sent, entry } = maker();
    const entries = new Map<string, GateEntry>();
    const hold = (name: string, tokens: number) => {
      const e = entry(name, tokens);
      entries.set(name, e);
      return gate.enter(0, e, true);
    };
    expect(hold("first", 20_000)).toBe(true);
    for (const [name, tokens] of [["5000", 5000], ["1000", 1000], ["3000", 3000], ["6000", 6000]] as const) expect(hold(name, tokens)).toBe(false);
    gate.settle(0, entries.get("first")!);
    // 1,000 + 3,000 fit in a step; 5,000 more would not.
    expect(sent).toEqual(["1000", "3000"]);
    // Held later and shorter, but after the 5,000 and the 6,000 left over.
    hold("500", 500);
    gate.settle(0, entries.get("1000")!);
    gate.settle(0, entries.get("3000")!);
    // The first left over goes (alone it always may); the 6,000 would not fit beside it, the 500 does.
    expect(sent).toEqual(["1000", "3000", "5000", "500"]);
    gate.settle(0, entries.get("5000")!);
    gate.settle(0, entries.get("500")!);
    expect(sent.at(-1)).toBe("6000");
    expect(gate.held).toBe(0);
  });

  it("releases the next held prompt beside the first only when it joins them, and keeps the rest for the next release", () => {
    const gate = new PrefillGate(8192);
    const { sent, entry } = maker();
    const first = entry("first", 20_000);
    gate.enter(0, first, true);
    const a = entry("a", 1000, true);
    const tiny = entry("tiny", 30, true);
    const b = entry("b", 2000, false);
    const c = entry("c", 3000, true);
    for (const e of [a, tiny, b, c]) expect(gate.enter(0, e, true)).toBe(false);
    gate.settle(0, first);
    // Shortest first: the tiny one goes, the 1,000 joins it; the 2,000 would not, so it and all after it wait.
    expect(sent).toEqual(["tiny", "a"]);
    expect(gate.held).toBe(2);
    gate.settle(0, tiny);
    gate.settle(0, a);
    // The first of a release always goes; the 3,000 joins it.
    expect(sent).toEqual(["tiny", "a", "b", "c"]);
  });

  it("never leaves a long prompt behind shorter ones held after it", () => {
    const gate = new PrefillGate(8192);
    const sent: GateEntry[] = [];
    const entry = (tokens: number): GateEntry => {
      const e: GateEntry = { tokens, send: () => sent.push(e), joins: () => true };
      return e;
    };
    const first = entry(1);
    gate.enter(0, first, true);
    const long = entry(8000);
    gate.enter(0, long, true);
    gate.enter(0, entry(4000), true);
    gate.enter(0, entry(4000), true);
    let settling = [first];
    // Each round: settle what is in flight, hold two more short prompts. The long one goes within two rounds.
    for (let round = 0; round < 3 && !sent.includes(long); round++) {
      const before = sent.length;
      for (const e of settling) gate.settle(0, e);
      settling = sent.slice(before);
      gate.enter(0, entry(4000), true);
      gate.enter(0, entry(4000), true);
    }
    expect(sent).toContain(long);
  });

  it("drops a held attempt that is withdrawn, and sends nothing for it", () => {
    const gate = new PrefillGate(8192);
    const { sent, entry } = maker();
    const a = entry("a", 100);
    const b = entry("b", 100);
    gate.enter(0, a, true);
    gate.enter(0, b, true);
    expect(gate.withdraw(0, b)).toBe(true);
    expect(gate.withdraw(0, b)).toBe(false);
    expect(gate.withdraw(0, a)).toBe(false);
    gate.settle(0, a);
    expect(sent).toEqual([]);
    expect(gate.held).toBe(0);
    expect(gate.busy(0)).toBe(false);
  });

  it("goes on releasing when a released attempt ends as it is sent (an engine that refuses it)", () => {
    const gate = new PrefillGate(100);
    const sent: string[] = [];
    const a: GateEntry = { tokens: 100, send: () => undefined, joins: () => true };
    gate.enter(0, a, true);
    const refused: GateEntry = {
      tokens: 100,
      send: () => {
        sent.push("refused");
        gate.settle(0, refused);
      },
      joins: () => true,
    };
    const next: GateEntry = { tokens: 100, send: () => sent.push("next"), joins: () => true };
    gate.enter(0, refused, true);
    gate.enter(0, next, true);
    gate.settle(0, a);
    expect(sent).toEqual(["refused", "next"]);
    expect(gate.inFlight(0)).toBe(1);
  });

  it("refuses a budget that is not a whole number above 0", () => {
    expect(() => new PrefillGate(0)).toThrow(/budget/);
    expect(() => new PrefillGate(1.5)).toThrow(/budget/);
  });

  it("sends every attempt exactly once or drops it when withdrawn, whatever the order of calls", () => {
    type Op = { kind: "enter"; engine: number; tokens: number; hold: boolean; joins: boolean } | { kind: "settle"; pick: number } | { kind: "withdraw"; pick: number };
    const op = fc.oneof(
      fc.record({ kind: fc.constant("enter" as const), engine: fc.integer({ min: 0, max: 2 }), tokens: fc.integer({ min: 1, max: 12_000 }), hold: fc.boolean(), joins: fc.boolean() }),
      fc.record({ kind: fc.constant("settle" as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant("withdraw" as const), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops: Op[]) => {
        const gate = new PrefillGate(8192);
        // The reference: each attempt's state, kept by hand.
        type State = "held" | "flight" | "done" | "dropped";
        const attempts: { entry: GateEntry; engine: number; state: State; sends: number }[] = [];
        const make = (engine: number, tokens: number, joins: boolean) => {
          const a = { entry: null as unknown as GateEntry, engine, state: "held" as State, sends: 0 };
          a.entry = {
            tokens,
            send: () => {
              a.sends++;
              expect(a.state).toBe("held");
              a.state = "flight";
            },
            joins: () => joins,
          };
          attempts.push(a);
          return a;
        };
        const check = () => {
          for (let e = 0; e <= 2; e++) {
            const mine = attempts.filter((a) => a.engine === e);
            const flight = mine.filter((a) => a.state === "flight").length;
            const held = mine.filter((a) => a.state === "held").length;
            expect(gate.inFlight(e)).toBe(flight);
            // Nothing waits on an engine with nothing in flight.
            if (flight === 0) expect(held).toBe(0);
          }
          expect(gate.held).toBe(attempts.filter((a) => a.state === "held").length);
        };
        for (const o of ops) {
          if (o.kind === "enter") {
            const a = make(o.engine, o.tokens, o.joins);
            if (gate.enter(o.engine, a.entry, o.hold)) a.state = "flight";
          } else {
            const live = attempts.filter((a) => (o.kind === "settle" ? a.state === "flight" : a.state === "held"));
            if (live.length === 0) continue;
            const a = live[o.pick % live.length]!;
            if (o.kind === "settle") {
              a.state = "done";
              gate.settle(a.engine, a.entry);
            } else {
              a.state = "dropped";
              expect(gate.withdraw(a.engine, a.entry)).toBe(true);
            }
          }
          check();
        }
        // Settle everything: every attempt ends sent once (or sent at once by enter), or dropped.
        for (let guard = 0; guard < 10_000; guard++) {
          const a = attempts.find((x) => x.state === "flight");
          if (!a) break;
          a.state = "done";
          gate.settle(a.engine, a.entry);
          check();
        }
        for (const a of attempts) {
          expect(a.state === "done" || a.state === "dropped").toBe(true);
          expect(a.sends).toBeLessThanOrEqual(1);
        }
      }),
      { numRuns: 300 },
    );
  });
});
