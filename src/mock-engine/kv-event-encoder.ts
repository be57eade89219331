// Encodes a batch of KV events byte for byte as vLLM's publisher does (msgspec: smallest integer forms,
// unsigned for non-negative values, float64 timestamps). Hand-written because msgpackr writes a BigInt
// below 2^63 as a signed int64, where vLLM writes an unsigned one.
import type { KvEventsLayout } from "../engine-protocol/index.js";
import type { SimKvEvent } from "./kv-events.js";

class Writer {
  private buf = Buffer.allocUnsafe(1024);
  private pos = 0;

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  nil(): void {
    this.room(1);
    this.buf[this.pos++] = 0xc0;
  }

  uint(v: number): void {
    this.room(9);
    if (v < 0x80) this.buf[this.pos++] = v;
    else if (v < 0x100) {
      this.buf[this.pos++] = 0xcc;
      this.buf[this.pos++] = v;
    } else if (v < 0x10000) {
      this.buf[this.pos++] = 0xcd;
      this.pos = this.buf.writeUInt16BE(v, this.pos);
    } else if (v < 0x1_0000_0000) {
      this.buf[this.pos++] = 0xce;
      this.pos = this.buf.writeUInt32BE(v, this.pos);
    } else {
      this.buf[this.pos++] = 0xcf;
      this.pos = this.buf.writeBigUInt64BE(BigInt(v), this.pos);
    }
  }

  u64(v: bigint): void {
    if (v < 0x1_0000_0000n) return this.uint(Number(v));
    this.room(9);
    this.buf[this.pos++] = 0xcf;
    this.pos = this.buf.writeBigUInt64BE(v, this.pos);
  }

  float64(v: number): void {
    this.room(9);
    this.buf[this.pos++] = 0xcb;
    this.pos = this.buf.writeDoubleBE(v, this.pos);
  }

  str(s: string): void {
    const n = Buffer.byteLength(s, "utf8");
    this.room(5 + n);
    if (n < 32) this.buf[this.pos++] = 0xa0 | n;
    else if (n < 0x100) {
      this.buf[this.pos++] = 0xd9;
      this.buf[this.pos++] = n;
    } else if (n < 0x10000) {
      this.buf[this.pos++] = 0xda;
      this.pos = this.buf.writeUInt16BE(n, this.pos);
    } else {
      this.buf[this.pos++] = 0xdb;
      this.pos = this.buf.writeUInt32BE(n, this.pos);
    }
    this.pos += this.buf.write(s, this.pos, "utf8");
  }

  private header(n: number, fix: number, b16: number, b32: number): void {
    this.room(5);
    if (n < 16) this.buf[this.pos++] = fix | n;
    else if (n < 0x10000) {
      this.buf[this.pos++] = b16;
      this.pos = this.buf.writeUInt16BE(n, this.pos);
    } else {
      this.buf[this.pos++] = b32;
      this.pos = this.buf.writeUInt32BE(n, this.pos);
    }
  }

  array(n: number): void {
    this.header(n, 0x90, 0xdc, 0xdd);
  }

  map(n: number): void {
    this.header(n, 0x80, 0xde, 0xdf);
  }

  optStr(s: string | null): void {
    if (s === null) this.nil();
    else this.str(s);
  }

  optU64(v: bigint | null): void {
    if (v === null) this.nil();
    else this.u64(v);
  }

  u64s(values: readonly bigint[]): void {
    this.array(values.length);
    for (const v of values) this.u64(v);
  }

  uints(values: readonly number[]): void {
    this.array(values.length);
    for (const v of values) this.uint(v);
  }

  result(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

function arrayEvent(w: Writer, e: SimKvEvent): void {
  switch (e.type) {
    case "BlockStored":
      // [tag, block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium, lora_name]
      w.array(8);
      w.str(e.type);
      w.u64s(e.blockHashes);
      w.optU64(e.parentBlockHash);
      w.uints(e.tokenIds);
      w.uint(e.blockSize);
      w.nil();
      w.str(e.medium);
      w.optStr(e.loraName);
      return;
    case "BlockRemoved":
      w.array(3);
      w.str(e.type);
      w.u64s(e.blockHashes);
      w.str(e.medium);
      return;
    case "AllBlocksCleared":
      w.array(1);
      w.str(e.type);
  }
}

function mapEvent(w: Writer, e: SimKvEvent): void {
  switch (e.type) {
    case "BlockStored":
      w.map(8);
      w.str("type");
      w.str(e.type);
      w.str("block_hashes");
      w.u64s(e.blockHashes);
      w.str("parent_block_hash");
      w.optU64(e.parentBlockHash);
      w.str("token_ids");
      w.uints(e.tokenIds);
      w.str("block_size");
      w.uint(e.blockSize);
      w.str("lora_id");
      w.nil();
      w.str("medium");
      w.str(e.medium);
      w.str("lora_name");
      w.optStr(e.loraName);
      return;
    case "BlockRemoved":
      w.map(3);
      w.str("type");
      w.str(e.type);
      w.str("block_hashes");
      w.u64s(e.blockHashes);
      w.str("medium");
      w.str(e.medium);
      return;
    case "AllBlocksCleared":
      w.map(1);
      w.str("type");
      w.str(e.type);
  }
}

/**
 * One ZMQ payload: the batch `[ts, events, data_parallel_rank]`, events in the `array` layout (vLLM's
 * tagged arrays with medium and lora_name) or the `map` layout (tagged maps keyed by field name).
 */
export function encodeKvEventBatch(ts: number, events: readonly SimKvEvent[], dataParallelRank: number, layout: KvEventsLayout): Buffer {
  const w = new Writer();
  w.array(3);
  w.float64(ts);
  w.array(events.length);
  for (const e of events) {
    if (layout === "array") arrayEvent(w, e);
    else mapEvent(w, e);
  }
  w.uint(dataParallelRank);
  return w.result();
}
