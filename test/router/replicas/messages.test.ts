// Replica messages: every valid message survives encoding; garbage, other versions and absurd numbers are
// rejected with a reason and a detail naming the field, and the parser never throws. Property tests.
import fc from "fast-check";
import { Packr, Unpackr } from "msgpackr";
import { describe, expect, it } from "vitest";
import {
  encodeMessage,
  LIMITS,
  parseMessage,
  REJECT_REASONS,
  type HealthEntry,
  type LoadEntry,
  type ReplicaMessage,
} from "../../../src/router/replicas/messages.js";

const packr = new Packr({ useRecords: false, variableMapSize: true });

const name = fc.string({ minLength: 1, maxLength: 20 });
const replica = fc.stringMatching(/^[!-~]{1,30}$/);
const seq = fc.nat();

function loadEntry(delta: boolean): fc.Arbitrary<LoadEntry> {
  const n = (max: number) => fc.integer({ min: delta ? -max : 0, max });
  return fc
    .record({
      engine: name,
      prefillBlocks: n(LIMITS.blocks),
      prefillTokens: n(LIMITS.tokens),
      decodeBlocks: n(LIMITS.blocks),
      decodeRequests: n(LIMITS.requests),
      requests: n(LIMITS.requests),
    })
    .filter((l) => delta || (l.decodeRequests <= l.requests && (l.requests > 0 || l.prefillBlocks + l.prefillTokens + l.decodeBlocks === 0)));
}

const uniqueBy = <T extends { engine: string }>(a: fc.Arbitrary<T>) => fc.uniqueArray(a, { selector: (x) => x.engine, maxLength: 6 });

const healthEntry: fc.Arbitrary<HealthEntry> = fc.record({
  engine: name,
  state: fc.constantFrom("connecting", "up", "down", "refused"),
  reason: fc.option(fc.string({ maxLength: 50 }), { nil: null }),
  routing: fc.constantFrom("cache", "approx", "load", null),
});

const validMessage: fc.Arbitrary<ReplicaMessage> = fc.oneof(
  fc.record({ kind: fc.constant("load" as const), replica, seq, loads: uniqueBy(loadEntry(true)) }),
  fc.record({ kind: fc.constant("state" as const), replica, seq, loads: uniqueBy(loadEntry(false)), health: uniqueBy(healthEntry) }),
  fc.record({
    kind: fc.constant("approx" as const),
    replica,
    seq,
    blockSize: fc.integer({ min: 1, max: 4096 }),
    predictions: fc.array(fc.record({ engine: name, hashes: fc.array(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), { minLength: 1, maxLength: 20 }).map((a) => BigUint64Array.from(a)) }), { maxLength: 4 }),
  }),
  fc.record({ kind: fc.constantFrom("hello" as const, "bye" as const), replica, seq }),
);

/** The wire form (a plain object) of a message, to damage before encoding. */
function wire(m: ReplicaMessage): Record<string, unknown> {
  return new Unpackr({ useRecords: false, mapsAsObjects: true }).unpack(encodeMessage(m)) as Record<string, unknown>;
}

/** Every path to a leaf of a wire message: ["engines", 0, "requests"], ... */
function leaves(value: unknown, path: (string | number)[] = []): (string | number)[][] {
  if (value instanceof Uint8Array || value === null || typeof value !== "object") return [path];
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
  return entries.flatMap(([k, v]) => leaves(v, [...path, k]));
}

function setAt(root: Record<string, unknown>, path: (string | number)[], value: unknown): void {
  let node: any = root;
  for (const k of path.slice(0, -1)) node = node[k];
  node[path.at(-1)!] = value;
}

function pathText(path: (string | number)[]): string {
  return path.map((k, i) => (typeof k === "number" ? `[${k}]` : i === 0 ? k : `.${k}`)).join("");
}

describe("replica messages", () => {
  it("property: every valid message is read back as it was sent", () => {
    fc.assert(
      fc.property(validMessage, (m) => {
        const parsed = parseMessage(encodeMessage(m));
        expect(parsed).toEqual({ ok: true, message: m });
      }),
      { numRuns: 300 },
    );
  });

  it("property: random bytes never throw and are rejected with a known reason", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const parsed = parseMessage(bytes);
        if (!parsed.ok) {
          expect(REJECT_REASONS).toContain(parsed.reason);
          expect(parsed.detail.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("property: any msgpack value that is not a message is rejected, never thrown on", () => {
    const value = fc.letrec((tie) => ({
      any: fc.oneof(
        { depthSize: "small" },
        fc.integer(),
        fc.double(),
        fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
        fc.string({ maxLength: 10 }),
        fc.boolean(),
        fc.constant(null),
        fc.uint8Array({ maxLength: 24 }),
        fc.array(tie("any"), { maxLength: 4 }),
        fc.dictionary(fc.constantFrom("v", "kind", "replica", "seq", "engines", "health", "predictions", "block_size", "engine", "requests", "hashes", "x"), tie("any"), { maxKeys: 6 }),
      ),
    })).any;
    fc.assert(
      fc.property(value, (v) => {
        const parsed = parseMessage(packr.pack(v));
        expect(parsed.ok).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it("property: a wrong type in any field of a valid message is rejected, naming that field", () => {
    const wrong = fc.oneof(fc.constant("text"), fc.constant(1.5), fc.constant(true), fc.constant([1, 2]), fc.constant({ x: 1 }), fc.constant(new Uint8Array(3)));
    fc.assert(
      fc.property(validMessage, fc.nat(), wrong, (m, pick, bad) => {
        const w = wire(m);
        const paths = leaves(w);
        const path = paths[pick % paths.length]!;
        const field = path.at(-1);
        // A string is right by chance for these fields: not damage.
        if ((field === "reason" || field === "replica" || field === "engine") && typeof bad === "string") return;
        setAt(w, path, bad);
        const parsed = parseMessage(packr.pack(w));
        expect(parsed.ok).toBe(false);
        if (!parsed.ok) expect(parsed.detail.startsWith(`${pathText(path)}:`)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  it("drops another version, saying which", () => {
    const bytes = packr.pack({ v: 2, kind: "hello", replica: "a", seq: 0 });
    expect(parseMessage(bytes)).toEqual({ ok: false, reason: "version", detail: "v: this replica speaks version 1, the message version 2" });
  });

  it("drops absurd numbers: beyond the limits, beyond 2^53, negative totals, bookings without requests", () => {
    const load = (fields: Record<string, unknown>, kind = "state") =>
      parseMessage(packr.pack({ v: 1, kind, replica: "a", seq: 1, engines: [{ engine: "e", prefill_blocks: 0, prefill_tokens: 0, decode_blocks: 0, decode_requests: 0, requests: 1, ...fields }], health: [] }));
    expect(load({ prefill_blocks: 1e12 })).toMatchObject({ ok: false, reason: "out_of_range", detail: "engines[0].prefill_blocks: 1000000000000 is out of range 0 to 1000000000" });
    expect(load({ requests: 2n ** 60n })).toMatchObject({ ok: false, reason: "out_of_range" });
    expect(load({ requests: -1 })).toMatchObject({ ok: false, reason: "out_of_range", detail: expect.stringContaining("engines[0].requests") });
    expect(load({ requests: 0, decode_blocks: 5 })).toMatchObject({ ok: false, reason: "out_of_range", detail: "engines[0]: blocks or tokens are booked without a request" });
    expect(load({ decode_requests: 3 })).toMatchObject({ ok: false, reason: "out_of_range", detail: "engines[0]: decode_requests 3 exceeds requests 1" });
    // A delta may be negative (a booking released), within the same bounds.
    expect(load({ requests: -1, prefill_blocks: -10 }, "load")).toMatchObject({ ok: true });
    expect(load({ requests: -2_000_000 }, "load")).toMatchObject({ ok: false, reason: "out_of_range" });
    expect(parseMessage(packr.pack({ v: 1, kind: "hello", replica: "a", seq: -1 }))).toMatchObject({ ok: false, reason: "out_of_range", detail: expect.stringContaining("seq") });
  });

  it("drops what is too large, a repeated engine, an engine-less binary and a replica name with spaces", () => {
    const many = Array.from({ length: LIMITS.entries + 1 }, () => ({ engine: "e", prefill_blocks: 0, prefill_tokens: 0, decode_blocks: 0, decode_requests: 0, requests: 0 }));
    expect(parseMessage(packr.pack({ v: 1, kind: "load", replica: "a", seq: 0, engines: many }))).toMatchObject({ ok: false, reason: "too_large" });
    const twice = [
      { engine: "e", prefill_blocks: 0, prefill_tokens: 0, decode_blocks: 0, decode_requests: 0, requests: 0 },
      { engine: "e", prefill_blocks: 1, prefill_tokens: 0, decode_blocks: 0, decode_requests: 0, requests: 1 },
    ];
    expect(parseMessage(packr.pack({ v: 1, kind: "load", replica: "a", seq: 0, engines: twice }))).toMatchObject({ ok: false, detail: 'engines[1].engine: engine "e" appears twice' });
    const odd = { v: 1, kind: "approx", replica: "a", seq: 0, block_size: 16, predictions: [{ engine: "e", hashes: new Uint8Array(12) }] };
    expect(parseMessage(packr.pack(odd))).toMatchObject({ ok: false, detail: "predictions[0].hashes: expected a positive multiple of 8 bytes (u64 hashes), got 12" });
    const huge = { ...odd, predictions: [{ engine: "e", hashes: new Uint8Array(8 * (LIMITS.predictionBlocks + 1)) }] };
    expect(parseMessage(packr.pack(huge))).toMatchObject({ ok: false, reason: "too_large" });
    expect(parseMessage(packr.pack({ v: 1, kind: "bye", replica: "a b", seq: 0 }))).toMatchObject({ ok: false, detail: expect.stringContaining("replica: expected printable ASCII") });
    expect(parseMessage(new Uint8Array([0xc1]))).toMatchObject({ ok: false, reason: "undecodable" });
    expect(parseMessage(new TextEncoder().encode("{\"v\":1}"))).toMatchObject({ ok: false });
  });

  it("carries block hashes as little-endian u64s, read into an aligned array of their own", () => {
    const hashes = BigUint64Array.of(1n, 0x0102030405060708n, 2n ** 64n - 1n);
    const m: ReplicaMessage = { kind: "approx", replica: "r", seq: 3, blockSize: 16, predictions: [{ engine: "e", hashes }] };
    const bytes = encodeMessage(m);
    // Read from an odd offset of a bigger buffer, as a received message may be.
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const parsed = parseMessage(shifted.subarray(1));
    if (!parsed.ok || parsed.message.kind !== "approx") throw new Error("not parsed");
    expect(Array.from(parsed.message.predictions[0]!.hashes)).toEqual(Array.from(hashes));
    const raw = new Packr({ useRecords: false }).unpack(bytes) as { predictions: { hashes: Uint8Array }[] };
    expect(Array.from(raw.predictions[0]!.hashes.subarray(8, 16))).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
  });
});
