// Decoding of vLLM KV-event batches (the payload frame of its ZMQ publisher) in every layout vLLM has
// published. msgpackr parses the MessagePack; this module checks the shape and normalises it:
//
//   batch          [ts, events] or [ts, events, data_parallel_rank] (a map with those keys is accepted too)
//   event          an array whose first element is the tag, or a map with the tag under "type"
//   BlockStored    [tag, block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium?, lora_name?, ...]
//   BlockRemoved   [tag, block_hashes, medium?, ...]
//   AllBlocksCleared [tag, ...]
//   block hash     an unsigned or signed 64-bit integer (a negative one is its u64 two's complement), or a
//                  byte string whose last 8 bytes, big-endian, are the integer (vLLM's 32-byte digests)
//
// Fields after the ones named here, and map keys not named here, are ignored: newer vLLM builds add
// fields (extra_keys, group_idx, ...). An event with an unknown tag is kept as { type: "Unknown" } for the
// caller to count. Anything else that does not fit is a KvEventDecodeError naming where and what.

import { Unpackr } from "msgpackr";
import { HI, LO } from "../../../util/u64.js";

export type BlockHashKind = "uint64" | "bytes32" | "bytes" | "mixed";

export interface BlockStoredEvent {
  type: "BlockStored";
  blockHashes: BigUint64Array;
  /** null for a request's first block. */
  parentBlockHash: bigint | null;
  tokenIds: Uint32Array;
  blockSize: number;
  loraId: number | null;
  /** null when the layout has no medium (older builds: GPU). */
  medium: string | null;
  loraName: string | null;
}

export interface BlockRemovedEvent {
  type: "BlockRemoved";
  blockHashes: BigUint64Array;
  medium: string | null;
}

export interface AllBlocksClearedEvent {
  type: "AllBlocksCleared";
}

/** An event whose tag this decoder does not know (a newer vLLM's): skipped and counted by the applier. */
export interface UnknownKvEvent {
  type: "Unknown";
  tag: string;
}

export type KvEvent = BlockStoredEvent | BlockRemovedEvent | AllBlocksClearedEvent | UnknownKvEvent;

export interface KvEventBatch {
  /** Publisher's timestamp, seconds since the epoch. */
  ts: number;
  events: KvEvent[];
  dataParallelRank: number | null;
  /** How the batch's block hashes were sent; null when it has none. */
  hashKind: BlockHashKind | null;
}

export class KvEventDecodeError extends Error {
  /** Where in the payload, e.g. "events[1].token_ids[5]". */
  readonly path: string;

  constructor(path: string, problem: string) {
    super(`KV event batch: ${path}: ${problem}`);
    this.name = "KvEventDecodeError";
    this.path = path;
  }
}

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "bigint" });

/** Decodes one KV-event payload. Throws KvEventDecodeError on anything malformed. */
export function decodeKvEventBatch(payload: Uint8Array): KvEventBatch {
  if (!(payload instanceof Uint8Array)) throw new KvEventDecodeError("payload", `expected bytes, got ${describe(payload)}`);
  if (payload.length === 0) throw new KvEventDecodeError("payload", "empty");
  let raw: unknown;
  try {
    raw = unpackr.unpack(payload);
  } catch (err) {
    throw new KvEventDecodeError("payload", `not valid MessagePack (${(err as Error).message})`);
  }
  return normalizeBatch(raw);
}

/** The shape checks and normalisation, for a batch already parsed from MessagePack. */
export function normalizeBatch(raw: unknown): KvEventBatch {
  const hashes: HashKindTracker = { kind: null };
  let ts: unknown;
  let events: unknown;
  let rank: unknown;
  if (Array.isArray(raw)) {
    if (raw.length < 2) throw new KvEventDecodeError("batch", `expected [ts, events, data_parallel_rank?], got an array of ${raw.length}`);
    [ts, events, rank] = raw;
  } else if (isMap(raw)) {
    ({ ts, events, data_parallel_rank: rank } = raw);
  } else {
    throw new KvEventDecodeError("batch", `expected an array or a map, got ${describe(raw)}`);
  }
  if (typeof ts !== "number" || !Number.isFinite(ts)) {
    if (typeof ts !== "bigint") throw new KvEventDecodeError("batch.ts", `expected a number, got ${describe(ts)}`);
    ts = Number(ts);
  }
  if (!Array.isArray(events)) throw new KvEventDecodeError("batch.events", `expected an array, got ${describe(events)}`);
  const dataParallelRank = rank === undefined || rank === null ? null : smallInt(rank, "batch.data_parallel_rank");
  const out: KvEvent[] = new Array(events.length);
  for (let i = 0; i < events.length; i++) out[i] = normalizeEvent(events[i], `events[${i}]`, hashes);
  return { ts: ts as number, events: out, dataParallelRank, hashKind: hashes.kind };
}

interface HashKindTracker {
  kind: BlockHashKind | null;
}

const STORED_FIELDS = ["block_hashes", "parent_block_hash", "token_ids", "block_size", "lora_id", "medium", "lora_name"] as const;
const REMOVED_FIELDS = ["block_hashes", "medium"] as const;

function normalizeEvent(raw: unknown, path: string, hashes: HashKindTracker): KvEvent {
  let tag: unknown;
  let field: (name: string) => unknown;
  if (Array.isArray(raw)) {
    tag = raw[0];
    field = (name) => {
      const order: readonly string[] = tag === "BlockStored" ? STORED_FIELDS : REMOVED_FIELDS;
      return raw[1 + order.indexOf(name)];
    };
  } else if (isMap(raw)) {
    tag = raw.type;
    field = (name) => raw[name];
  } else {
    throw new KvEventDecodeError(path, `expected an event (array or map), got ${describe(raw)}`);
  }
  if (typeof tag !== "string") throw new KvEventDecodeError(`${path}.type`, `expected the event's tag as a string, got ${describe(tag)}`);
  switch (tag) {
    case "BlockStored": {
      const blockHashes = hashArray(field("block_hashes"), `${path}.block_hashes`, hashes);
      const parent = field("parent_block_hash");
      const parentBlockHash = parent === undefined || parent === null ? null : hashValue(parent, `${path}.parent_block_hash`, hashes);
      return {
        type: "BlockStored",
        blockHashes,
        parentBlockHash,
        tokenIds: tokenArray(field("token_ids"), `${path}.token_ids`),
        blockSize: positiveInt(field("block_size"), `${path}.block_size`),
        loraId: optional(field("lora_id"), `${path}.lora_id`, smallInt),
        medium: optional(field("medium"), `${path}.medium`, string),
        loraName: optional(field("lora_name"), `${path}.lora_name`, string),
      };
    }
    case "BlockRemoved":
      return {
        type: "BlockRemoved",
        blockHashes: hashArray(field("block_hashes"), `${path}.block_hashes`, hashes),
        medium: optional(field("medium"), `${path}.medium`, string),
      };
    case "AllBlocksCleared":
      return { type: "AllBlocksCleared" };
    default:
      return { type: "Unknown", tag };
  }
}

function hashArray(raw: unknown, path: string, hashes: HashKindTracker): BigUint64Array {
  if (!Array.isArray(raw)) throw new KvEventDecodeError(path, `expected an array of block hashes, got ${describe(raw)}`);
  const out = new BigUint64Array(raw.length);
  const words = new Uint32Array(out.buffer);
  for (let i = 0; i < raw.length; i++) writeHash(raw[i], `${path}[${i}]`, words, 2 * i, hashes);
  return out;
}

function hashValue(raw: unknown, path: string, hashes: HashKindTracker): bigint {
  const one = new BigUint64Array(1);
  writeHash(raw, path, new Uint32Array(one.buffer), 0, hashes);
  return one[0]!;
}

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const TWO32 = 2 ** 32;

/** Writes a block hash as u32 halves at words[at + LO], words[at + HI], without making a BigInt for numbers and bytes. */
function writeHash(raw: unknown, path: string, words: Uint32Array, at: number, hashes: HashKindTracker): void {
  if (typeof raw === "number") {
    if (!Number.isSafeInteger(raw)) throw new KvEventDecodeError(path, `expected an integer block hash, got ${raw}`);
    note(hashes, "uint64");
    // Negative numbers: two's complement over 64 bits, done in halves.
    const lo = raw >= 0 ? raw % TWO32 : (TWO32 - (-raw % TWO32)) % TWO32;
    const hi = raw >= 0 ? Math.floor(raw / TWO32) : TWO32 - 1 - Math.floor((-raw - 1) / TWO32);
    words[at + LO] = lo;
    words[at + HI] = hi;
    return;
  }
  if (typeof raw === "bigint") {
    if (raw > U64_MAX || raw < I64_MIN) throw new KvEventDecodeError(path, `block hash ${raw} does not fit in 64 bits`);
    note(hashes, "uint64");
    const u = BigInt.asUintN(64, raw);
    words[at + LO] = Number(u & 0xffffffffn);
    words[at + HI] = Number(u >> 32n);
    return;
  }
  if (raw instanceof Uint8Array) {
    if (raw.length < 8) throw new KvEventDecodeError(path, `a block hash digest needs at least 8 bytes, got ${raw.length}`);
    note(hashes, raw.length === 32 ? "bytes32" : "bytes");
    const end = raw.length;
    words[at + HI] = ((raw[end - 8]! << 24) | (raw[end - 7]! << 16) | (raw[end - 6]! << 8) | raw[end - 5]!) >>> 0;
    words[at + LO] = ((raw[end - 4]! << 24) | (raw[end - 3]! << 16) | (raw[end - 2]! << 8) | raw[end - 1]!) >>> 0;
    return;
  }
  throw new KvEventDecodeError(path, `expected a block hash (integer or digest bytes), got ${describe(raw)}`);
}

function note(hashes: HashKindTracker, kind: BlockHashKind): void {
  if (hashes.kind === null) hashes.kind = kind;
  else if (hashes.kind !== kind) hashes.kind = "mixed";
}

function tokenArray(raw: unknown, path: string): Uint32Array {
  if (!Array.isArray(raw)) throw new KvEventDecodeError(path, `expected an array of token ids, got ${describe(raw)}`);
  const out = new Uint32Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const v: unknown = raw[i];
    if (typeof v !== "number" || v >>> 0 !== v) {
      throw new KvEventDecodeError(`${path}[${i}]`, `expected a token id (integer from 0 to 4294967295), got ${describe(v)}`);
    }
    out[i] = v;
  }
  return out;
}

function positiveInt(raw: unknown, path: string): number {
  const v = smallInt(raw, path);
  if (v < 1) throw new KvEventDecodeError(path, `expected a positive integer, got ${v}`);
  return v;
}

function smallInt(raw: unknown, path: string): number {
  if (typeof raw === "bigint" && raw >= BigInt(Number.MIN_SAFE_INTEGER) && raw <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(raw);
  if (typeof raw !== "number" || !Number.isSafeInteger(raw)) throw new KvEventDecodeError(path, `expected an integer, got ${describe(raw)}`);
  return raw;
}

function string(raw: unknown, path: string): string {
  if (typeof raw !== "string") throw new KvEventDecodeError(path, `expected a string, got ${describe(raw)}`);
  return raw;
}

function optional<T>(raw: unknown, path: string, parse: (raw: unknown, path: string) => T): T | null {
  return raw === undefined || raw === null ? null : parse(raw, path);
}

function isMap(raw: unknown): raw is Record<string, unknown> {
  return typeof raw === "object" && raw !== null && !Array.isArray(raw) && !(raw instanceof Uint8Array);
}

function describe(v: unknown): string {
  if (v === null) return "nil";
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return `${typeof v} ${String(v)}`;
  if (v instanceof Date) return "a timestamp";
  return typeof v === "object" ? "a map" : typeof v;
}
