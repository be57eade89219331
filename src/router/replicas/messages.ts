// What router replicas tell each other through NATS, and the checks every received message passes before
// anything in it is used. One subject carries every kind, so that one replica's messages reach the others
// in the order it sent them. Each is one msgpack map:
//
//   { v: 1, kind, replica, seq, ...kind's fields }
//
//   load    engines: [{ engine, prefill_blocks, prefill_tokens, decode_blocks, decode_requests, requests }]
//           what changed in the sender's bookings since its previous load or state message (deltas)
//   state   engines: the same entries, as the sender's whole bookings now (absolute; engines it has no
//           booking on are left out), and health: [{ engine, state, reason, routing }], the engines as the
//           sender sees them. Sent every heartbeat, on a health change, and in answer to hello
//   approx  block_size, predictions: [{ engine, hashes }]: prompts the sender sent to engines in approximate
//           mode, each as its chained block hashes (binary, little-endian u64s)
//   hello   a replica that (re)joins asks the others for their state
//   bye     the sender is shutting down: drop its bookings now
//
// `replica` names the sender (unique per process); `seq` counts its messages from 0, so a receiver can tell
// a gap (a lost message: the next state repairs it). Engines are named as in --engine name=, the names every
// replica must give the same engines.
//
// Invariant: parseMessage never throws and accepts only a message whose every field has the type and
// range above; anything else is a rejection with a reason (a metric label) and a detail naming the field.
import { C1, Packr, Unpackr } from "msgpackr";
import { LITTLE_ENDIAN } from "../../util/u64.js";

export const PROTOCOL_VERSION = 1;

/** Booked load on one engine, in the scheduler's terms (EngineLoad), by engine name. */
export interface LoadEntry {
  engine: string;
  prefillBlocks: number;
  prefillTokens: number;
  decodeBlocks: number;
  decodeRequests: number;
  requests: number;
}

export const LOAD_FIELDS = ["prefillBlocks", "prefillTokens", "decodeBlocks", "decodeRequests", "requests"] as const;
export type LoadField = (typeof LOAD_FIELDS)[number];

export type EngineState = "connecting" | "up" | "down" | "refused";
export type EngineRouting = "cache" | "approx" | "load";

export interface HealthEntry {
  engine: string;
  state: EngineState;
  reason: string | null;
  routing: EngineRouting | null;
}

export interface Prediction {
  engine: string;
  hashes: BigUint64Array;
}

interface Header {
  replica: string;
  seq: number;
}

export type ReplicaMessage =
  | (Header & { kind: "load"; loads: LoadEntry[] })
  | (Header & { kind: "state"; loads: LoadEntry[]; health: HealthEntry[] })
  | (Header & { kind: "approx"; blockSize: number; predictions: Prediction[] })
  | (Header & { kind: "hello" })
  | (Header & { kind: "bye" });

export type MessageKind = ReplicaMessage["kind"];
export const MESSAGE_KINDS: readonly MessageKind[] = ["load", "state", "approx", "hello", "bye"];

/** Why a message was dropped: the label of the rejection metric. */
export type RejectReason = "undecodable" | "malformed" | "version" | "out_of_range" | "too_large";
export const REJECT_REASONS: readonly RejectReason[] = ["undecodable", "malformed", "version", "out_of_range", "too_large"];

export type Parsed = { ok: true; message: ReplicaMessage } | { ok: false; reason: RejectReason; detail: string };

/**
 * The largest figures a message may carry. No engine has more: past them a number is absurd, not load, and
 * the message is dropped. A delta may be negative down to minus the same bound.
 */
export const LIMITS = {
  requests: 1_000_000,
  blocks: 1_000_000_000,
  tokens: 16_000_000_000,
  /** Entries in one message (engines, health entries, predictions). */
  entries: 4096,
  /** Block hashes in one prediction. */
  predictionBlocks: 131_072,
  nameChars: 256,
  replicaChars: 128,
  reasonChars: 1024,
  blockSize: 1 << 20,
} as const;

const FIELD_LIMIT: Record<LoadField, number> = {
  prefillBlocks: LIMITS.blocks,
  prefillTokens: LIMITS.tokens,
  decodeBlocks: LIMITS.blocks,
  decodeRequests: LIMITS.requests,
  requests: LIMITS.requests,
};

const WIRE_NAME: Record<LoadField, string> = {
  prefillBlocks: "prefill_blocks",
  prefillTokens: "prefill_tokens",
  decodeBlocks: "decode_blocks",
  decodeRequests: "decode_requests",
  requests: "requests",
};

const STATES: readonly EngineState[] = ["connecting", "up", "down", "refused"];
const ROUTINGS: readonly EngineRouting[] = ["cache", "approx", "load"];
/** Replica names: printable ASCII, no spaces. */
const REPLICA_NAME = /^[!-~]+$/;

// Plain msgpack maps, no records or extensions; integers beyond 2^53 come back as BigInt, so they are seen
// (and refused) as what they are rather than rounded.
const packr = new Packr({ useRecords: false, variableMapSize: true, encodeUndefinedAsNil: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "auto" as "number" });

export function encodeMessage(message: ReplicaMessage): Uint8Array {
  const head = { v: PROTOCOL_VERSION, kind: message.kind, replica: message.replica, seq: message.seq };
  switch (message.kind) {
    case "load":
      return packr.pack({ ...head, engines: message.loads.map(wireLoad) });
    case "state":
      return packr.pack({
        ...head,
        engines: message.loads.map(wireLoad),
        health: message.health.map((h) => ({ engine: h.engine, state: h.state, reason: h.reason, routing: h.routing })),
      });
    case "approx":
      return packr.pack({ ...head, block_size: message.blockSize, predictions: message.predictions.map((p) => ({ engine: p.engine, hashes: hashBytes(p.hashes) })) });
    case "hello":
    case "bye":
      return packr.pack(head);
  }
}

function wireLoad(l: LoadEntry): Record<string, unknown> {
  const out: Record<string, unknown> = { engine: l.engine };
  for (const f of LOAD_FIELDS) out[WIRE_NAME[f]] = l[f];
  return out;
}

/** A field that is missing, or of the wrong type or range; parseMessage turns it into a rejection. */
class Reject extends Error {
  constructor(
    readonly reason: RejectReason,
    detail: string,
  ) {
    super(detail);
  }
}

export function parseMessage(bytes: Uint8Array): Parsed {
  let value: unknown;
  try {
    value = unpackr.unpack(bytes);
    if (value === C1) throw new Error("the byte 0xC1 is not msgpack");
  } catch (err) {
    return { ok: false, reason: "undecodable", detail: `not one msgpack value: ${(err as Error).message}` };
  }
  try {
    return { ok: true, message: parseValue(value) };
  } catch (err) {
    if (err instanceof Reject) return { ok: false, reason: err.reason, detail: err.message };
    // A check that threw something else is a bug in it; the message is still not applied.
    return { ok: false, reason: "malformed", detail: `the message could not be checked: ${(err as Error).message}` };
  }
}

function parseValue(value: unknown): ReplicaMessage {
  const m = map(value, "the message");
  if (typeof m.v !== "number" || !Number.isInteger(m.v)) throw new Reject("malformed", `v: expected the protocol version, an integer, got ${describe(m.v)}`);
  if (m.v !== PROTOCOL_VERSION) throw new Reject("version", `v: this replica speaks version ${PROTOCOL_VERSION}, the message version ${m.v}`);
  const kind = m.kind;
  if (typeof kind !== "string" || !MESSAGE_KINDS.includes(kind as MessageKind)) throw new Reject("malformed", `kind: expected one of ${MESSAGE_KINDS.join(", ")}, got ${describe(kind)}`);
  const replica = string(m.replica, "replica", LIMITS.replicaChars);
  if (!REPLICA_NAME.test(replica)) throw new Reject("malformed", `replica: expected printable ASCII without spaces, got ${describe(replica)}`);
  const seq = integer(m.seq, "seq", 0, Number.MAX_SAFE_INTEGER);
  const head = { replica, seq };
  switch (kind as MessageKind) {
    case "load":
      return { ...head, kind: "load", loads: loads(m.engines, true) };
    case "state":
      return { ...head, kind: "state", loads: loads(m.engines, false), health: health(m.health) };
    case "approx":
      return { ...head, kind: "approx", blockSize: integer(m.block_size, "block_size", 1, LIMITS.blockSize), predictions: predictions(m.predictions) };
    case "hello":
      return { ...head, kind: "hello" };
    case "bye":
      return { ...head, kind: "bye" };
  }
}

function loads(value: unknown, delta: boolean): LoadEntry[] {
  const entries = list(value, "engines");
  const seen = new Set<string>();
  return entries.map((item, i) => {
    const where = `engines[${i}]`;
    const m = map(item, where);
    const engine = uniqueName(m.engine, `${where}.engine`, seen);
    const entry = { engine } as LoadEntry;
    for (const f of LOAD_FIELDS) {
      const limit = FIELD_LIMIT[f];
      entry[f] = integer(m[WIRE_NAME[f]], `${where}.${WIRE_NAME[f]}`, delta ? -limit : 0, limit);
    }
    if (!delta) checkLoad(entry, where);
    return entry;
  });
}

/**
 * What a whole booking must satisfy (a state's entries, and a replica's totals after deltas): no figure
 * below 0 (the checks above), no more decoding requests than requests, and nothing booked without a request.
 */
export function loadProblem(l: Omit<LoadEntry, "engine">): string | null {
  for (const f of LOAD_FIELDS) if (l[f] < 0) return `${WIRE_NAME[f]} is ${l[f]}, below 0`;
  if (l.decodeRequests > l.requests) return `decode_requests ${l.decodeRequests} exceeds requests ${l.requests}`;
  if (l.requests === 0 && (l.prefillBlocks > 0 || l.prefillTokens > 0 || l.decodeBlocks > 0)) return "blocks or tokens are booked without a request";
  return null;
}

function checkLoad(l: LoadEntry, where: string): void {
  const problem = loadProblem(l);
  if (problem !== null) throw new Reject("out_of_range", `${where}: ${problem}`);
}

function health(value: unknown): HealthEntry[] {
  const entries = list(value, "health");
  const seen = new Set<string>();
  return entries.map((item, i) => {
    const where = `health[${i}]`;
    const m = map(item, where);
    const engine = uniqueName(m.engine, `${where}.engine`, seen);
    const state = m.state;
    if (typeof state !== "string" || !STATES.includes(state as EngineState)) throw new Reject("malformed", `${where}.state: expected one of ${STATES.join(", ")}, got ${describe(state)}`);
    const reason = m.reason === null || m.reason === undefined ? null : string(m.reason, `${where}.reason`, LIMITS.reasonChars, true);
    const routing = m.routing;
    if (routing !== null && routing !== undefined && (typeof routing !== "string" || !ROUTINGS.includes(routing as EngineRouting))) {
      throw new Reject("malformed", `${where}.routing: expected nil or one of ${ROUTINGS.join(", ")}, got ${describe(routing)}`);
    }
    return { engine, state: state as EngineState, reason, routing: (routing ?? null) as EngineRouting | null };
  });
}

function predictions(value: unknown): Prediction[] {
  return list(value, "predictions").map((item, i) => {
    const where = `predictions[${i}]`;
    const m = map(item, where);
    const engine = string(m.engine, `${where}.engine`, LIMITS.nameChars);
    const bytes = m.hashes;
    if (!(bytes instanceof Uint8Array)) throw new Reject("malformed", `${where}.hashes: expected binary, got ${describe(bytes)}`);
    if (bytes.length === 0 || bytes.length % 8 !== 0) throw new Reject("malformed", `${where}.hashes: expected a positive multiple of 8 bytes (u64 hashes), got ${bytes.length}`);
    if (bytes.length / 8 > LIMITS.predictionBlocks) throw new Reject("too_large", `${where}.hashes: ${bytes.length / 8} blocks, more than ${LIMITS.predictionBlocks}`);
    return { engine, hashes: hashesOf(bytes) };
  });
}

function uniqueName(value: unknown, where: string, seen: Set<string>): string {
  const name = string(value, where, LIMITS.nameChars);
  if (seen.has(name)) throw new Reject("malformed", `${where}: engine ${JSON.stringify(name)} appears twice`);
  seen.add(name);
  return name;
}

function list(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) throw new Reject("malformed", `${where}: expected an array, got ${describe(value)}`);
  if (value.length > LIMITS.entries) throw new Reject("too_large", `${where}: ${value.length} entries, more than ${LIMITS.entries}`);
  return value;
}

function map(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value) || value instanceof Uint8Array) throw new Reject("malformed", `${where}: expected a map, got ${describe(value)}`);
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) throw new Reject("malformed", `${where}: expected a plain map`);
  return value as Record<string, unknown>;
}

function string(value: unknown, where: string, maxChars: number, emptyOk = false): string {
  if (typeof value !== "string") throw new Reject("malformed", `${where}: expected a string, got ${describe(value)}`);
  if (value.length === 0 && !emptyOk) throw new Reject("malformed", `${where}: expected a non-empty string`);
  if (value.length > maxChars) throw new Reject("too_large", `${where}: ${value.length} characters, more than ${maxChars}`);
  return value;
}

function integer(value: unknown, where: string, min: number, max: number): number {
  if (typeof value === "bigint") throw new Reject("out_of_range", `${where}: ${value} is out of range ${min} to ${max}`);
  if (typeof value !== "number" || !Number.isInteger(value)) throw new Reject("malformed", `${where}: expected an integer, got ${describe(value)}`);
  if (value < min || value > max) throw new Reject("out_of_range", `${where}: ${value} is out of range ${min} to ${max}`);
  return value;
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return "nil";
  if (Array.isArray(value)) return "an array";
  if (value instanceof Uint8Array) return `${value.length} bytes of binary`;
  if (typeof value === "bigint") return `the integer ${value}`;
  if (typeof value === "string") return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
  if (typeof value === "object") return "a map";
  return `${typeof value} ${String(value)}`;
}

/** Hashes as little-endian u64 bytes, whatever the platform's byte order. */
export function hashBytes(hashes: BigUint64Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(hashes.buffer, hashes.byteOffset, hashes.byteLength);
  const out = new Uint8Array(hashes.length * 8);
  const view = new DataView(out.buffer);
  for (let i = 0; i < hashes.length; i++) view.setBigUint64(8 * i, hashes[i]!, true);
  return out;
}

/** The reverse, into an array of its own (the bytes may sit at any offset of a received buffer). */
export function hashesOf(bytes: Uint8Array): BigUint64Array {
  const out = new BigUint64Array(bytes.length / 8);
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(bytes);
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = view.getBigUint64(8 * i, true);
  }
  return out;
}
