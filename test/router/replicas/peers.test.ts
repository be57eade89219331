// Sharing bookings between replicas, without NATS: one replica's BookingDeltas against another's Peers,
// over random bookings, lost messages and silences, compared with the sender's real bookings (ActiveLoad).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BookingDeltas } from "../../../src/router/replicas/booking-deltas.js";
import type { LoadEntry } from "../../../src/router/replicas/messages.js";
import { Peers } from "../../../src/router/replicas/peers.js";
import { ActiveLoad, type Booking, type EngineLoad } from "../../../src/router/schedule/index.js";

const ENGINES = ["e0", "e1", "e2"];
const bookingsOf = (active: ActiveLoad): LoadEntry[] => ENGINES.map((engine, id) => ({ engine, ...active.snapshot(id) }));
const nothing = (l: EngineLoad | undefined) => l === undefined || Object.values(l).every((v) => v === 0);

function receiver(expiryMs = 1000) {
  const totals = new Map<string, EngineLoad>();
  const peers = new Peers({ expiryMs, onTotal: (engine, load) => (load === null ? totals.delete(engine) : totals.set(engine, load)) });
  return { peers, totals };
}

describe("Peers and BookingDeltas", () => {
  it("property: the receiver holds the sender's real bookings after every message it gets, and again after each state when some are lost", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant("book" as const), engine: fc.integer({ min: 0, max: 2 }), tokens: fc.integer({ min: 1, max: 500 }), newBlocks: fc.integer({ min: 0, max: 31 }) }),
            fc.record({ op: fc.constant("start" as const), pick: fc.nat() }),
            fc.record({ op: fc.constant("generate" as const), pick: fc.nat(), count: fc.integer({ min: 1, max: 40 }) }),
            fc.record({ op: fc.constant("release" as const), pick: fc.nat() }),
            fc.record({ op: fc.constant("flush" as const), lost: fc.boolean() }),
            fc.record({ op: fc.constant("state" as const) }),
          ),
          { maxLength: 150 },
        ),
        (ops) => {
          const active = new ActiveLoad();
          const live: Booking[] = [];
          const deltas = new BookingDeltas();
          const { peers, totals } = receiver();
          let seq = 0;
          // The receiver trusts deltas once it has had a state, until one is lost.
          let synced = false;
          const check = () => {
            for (const [id, engine] of ENGINES.entries()) {
              const real = active.snapshot(id);
              const held = totals.get(engine);
              if (nothing(real)) expect(nothing(held)).toBe(true);
              else expect(held).toEqual(real);
            }
          };
          for (const o of ops) {
            const pick = (n: number) => live[n % live.length]!;
            if (o.op === "book") live.push(active.book(o.engine, o.tokens, Math.min(o.newBlocks, Math.floor(o.tokens / 16)), 16));
            else if (o.op === "start" && live.length) pick(o.pick).started();
            else if (o.op === "generate" && live.length) pick(o.pick).generated(o.count);
            else if (o.op === "release" && live.length) live.splice(o.pick % live.length, 1)[0]!.release();
            else if (o.op === "flush") {
              const d = deltas.deltas(bookingsOf(active));
              if (d.length === 0) continue;
              const s = seq++;
              if (o.lost) {
                synced = false;
                continue;
              }
              const applied = peers.load("a", s, d, 0);
              expect(applied).toBe(synced ? "applied" : "needs_state");
              if (synced) check();
            } else if (o.op === "state") {
              deltas.deltas(bookingsOf(active)); // the state carries everything, so nothing is left to send as deltas
              expect(peers.state("a", seq++, deltas.state(), [], 0)).toBe("applied");
              synced = true;
              check();
            }
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("waits for a state before applying deltas from a replica it has not synced with, or after a gap", () => {
    const { peers, totals } = receiver();
    const d = (requests: number): LoadEntry[] => [{ engine: "e0", prefillBlocks: 2 * requests, prefillTokens: 32 * requests, decodeBlocks: 0, decodeRequests: 0, requests }];
    expect(peers.load("a", 5, d(1), 0)).toBe("needs_state");
    expect(totals.size).toBe(0);
    expect(peers.state("a", 6, d(3), [], 0)).toBe("applied");
    expect(totals.get("e0")).toMatchObject({ requests: 3, prefillBlocks: 6 });
    expect(peers.load("a", 7, d(1), 0)).toBe("applied");
    expect(totals.get("e0")).toMatchObject({ requests: 4 });
    expect(peers.load("a", 9, d(1), 0)).toBe("needs_state"); // 8 was lost
    expect(totals.get("e0")).toMatchObject({ requests: 4 });
    expect(peers.load("a", 10, d(1), 0)).toBe("needs_state");
    expect(peers.load("a", 10, d(1), 0)).toBe("stale");
    expect(peers.state("a", 11, d(2), [], 0)).toBe("applied");
    expect(totals.get("e0")).toMatchObject({ requests: 2 });
  });

  it("drops a delta that would make a booking impossible, whole, and waits for the next state", () => {
    const { peers, totals } = receiver();
    const entry = (engine: string, requests: number, decodeBlocks = 0): LoadEntry => ({ engine, prefillBlocks: 0, prefillTokens: 0, decodeBlocks, decodeRequests: requests > 0 && decodeBlocks > 0 ? requests : 0, requests });
    peers.state("a", 0, [entry("e0", 1, 4), entry("e1", 1, 4)], [], 0);
    // e0 would be fine, e1 would go below 0: neither changes.
    expect(peers.load("a", 1, [entry("e0", 1), entry("e1", -2)], 0)).toBe("inconsistent");
    expect(totals.get("e0")).toMatchObject({ requests: 1 });
    expect(totals.get("e1")).toMatchObject({ requests: 1 });
    expect(peers.load("a", 2, [entry("e0", 1)], 0)).toBe("needs_state");
  });

  it("sums every replica's bookings per engine, and drops a replica's when it leaves or goes silent for the expiry", () => {
    const { peers, totals } = receiver(1000);
    const entry = (requests: number): LoadEntry => ({ engine: "e0", prefillBlocks: 10 * requests, prefillTokens: 160 * requests, decodeBlocks: 0, decodeRequests: 0, requests });
    peers.state("a", 0, [entry(1)], [{ engine: "e0", state: "up", reason: null, routing: "cache" }], 0);
    peers.state("b", 0, [entry(2)], [], 500);
    expect(totals.get("e0")).toMatchObject({ requests: 3, prefillBlocks: 30 });
    expect(peers.expire(999)).toEqual([]);
    expect(peers.expire(1000)).toEqual(["a"]); // a was last heard at 0
    expect(totals.get("e0")).toMatchObject({ requests: 2 });
    peers.heard("b", 1, 1400); // any message renews b's lease
    expect(peers.expire(1600)).toEqual([]);
    expect(peers.views(1600)).toMatchObject([{ replica: "b", lastHeardMs: 200, synced: true, loads: [{ engine: "e0", requests: 2 }] }]);
    peers.remove("b");
    expect(totals.has("e0")).toBe(false);
    expect(peers.size).toBe(0);
  });

  it("BookingDeltas sends only what changed, and a released engine as its negative", () => {
    const active = new ActiveLoad();
    const deltas = new BookingDeltas();
    const b = active.book(0, 100, 6, 16);
    expect(deltas.deltas(bookingsOf(active))).toEqual([{ engine: "e0", prefillBlocks: 6, prefillTokens: 100, decodeBlocks: 0, decodeRequests: 0, requests: 1 }]);
    expect(deltas.deltas(bookingsOf(active))).toEqual([]);
    b.release();
    expect(deltas.deltas(bookingsOf(active))).toEqual([{ engine: "e0", prefillBlocks: -6, prefillTokens: -100, decodeBlocks: 0, decodeRequests: 0, requests: -1 }]);
    expect(deltas.state()).toEqual([]);
  });
});
