// msgpack encoding of protocol messages, with msgpackr. Plain msgpack only (no records, no extensions), so
// the Python worker's msgpack library reads every frame.
import { C1, Packr, RESERVE_START_SPACE, Unpackr } from "msgpackr";
import { FRAME_HEADER_BYTES } from "./frame.js";
import type { GenerateMessage, WireMessage } from "./wire.js";

const packr = new Packr({ useRecords: false, variableMapSize: true, encodeUndefinedAsNil: true });
// 'auto' (a runtime option msgpackr's typings do not list) gives numbers where they are safe and BigInt
// beyond, so a 64-bit seed or a hostile value is seen as what it is.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "auto" as "number" });

/**
 * One framed message: msgpackr writes the body after 4 reserved bytes, which then take its length, so no
 * copy is made. The buffer stays valid after later calls.
 */
export function encodeFrame(message: WireMessage): Buffer {
  const frame = packr.pack(message, RESERVE_START_SPACE | FRAME_HEADER_BYTES);
  frame.writeUInt32BE(frame.length - FRAME_HEADER_BYTES, 0);
  return frame;
}

/** `prompt_token_ids` as a msgpack fixstr: its length (16) in the marker, then the bytes. */
const IDS_KEY = Buffer.from([0xa0 | 16, ...Buffer.from("prompt_token_ids", "ascii")]);
/** Entries a fixmap header can count. */
const FIXMAP_MAX = 15;

/**
 * A generate message framed, its prompt ids written by a loop of their own: msgpackr takes some 35 ns per
 * id, which is most of a request's encoding, and a prompt has hundreds to hundreds of thousands of ids.
 * The other fields go through msgpackr; the ids become the map's last entry, encoded as msgpackr encodes
 * integers (the smallest of fixint, uint8, uint16, uint32), so the frame is byte for byte what
 * `encodeFrame` makes of the same message with `prompt_token_ids` last (test/engine-protocol/codec.test.ts).
 * Ids must be integers from 0 to 2^32 - 1, as the message type says; anything else is encoded by msgpackr.
 */
export function encodeGenerateFrame(message: Omit<GenerateMessage, "prompt_token_ids">, ids: ArrayLike<number>): Buffer {
  const rest = packr.pack(message);
  const entries = rest[0]! & 0x0f;
  if ((rest[0]! & 0xf0) !== 0x80 || entries >= FIXMAP_MAX || !allU32(ids)) {
    return encodeFrame(Object.assign({}, message, { prompt_token_ids: Array.from(ids) }) as GenerateMessage);
  }
  const n = ids.length;
  let idBytes = 0;
  for (let i = 0; i < n; i++) {
    const v = ids[i]!;
    idBytes += v < 0x80 ? 1 : v < 0x100 ? 2 : v < 0x10000 ? 3 : 5;
  }
  const arrayHeader = n < 0x10 ? 1 : n < 0x10000 ? 3 : 5;
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + rest.length + IDS_KEY.length + arrayHeader + idBytes);
  let at = FRAME_HEADER_BYTES;
  frame[at++] = 0x80 | (entries + 1);
  at += rest.copy(frame, at, 1);
  at += IDS_KEY.copy(frame, at);
  if (n < 0x10) frame[at++] = 0x90 | n;
  else if (n < 0x10000) {
    frame[at++] = 0xdc;
    frame[at++] = n >>> 8;
    frame[at++] = n & 0xff;
  } else {
    frame[at++] = 0xdd;
    frame.writeUInt32BE(n, at);
    at += 4;
  }
  for (let i = 0; i < n; i++) {
    const v = ids[i]!;
    if (v < 0x80) frame[at++] = v;
    else if (v < 0x100) {
      frame[at++] = 0xcc;
      frame[at++] = v;
    } else if (v < 0x10000) {
      frame[at++] = 0xcd;
      frame[at++] = v >>> 8;
      frame[at++] = v & 0xff;
    } else {
      frame[at++] = 0xce;
      frame[at++] = v >>> 24;
      frame[at++] = (v >>> 16) & 0xff;
      frame[at++] = (v >>> 8) & 0xff;
      frame[at++] = v & 0xff;
    }
  }
  frame.writeUInt32BE(at - FRAME_HEADER_BYTES, 0);
  return frame;
}

function allU32(ids: ArrayLike<number>): boolean {
  if (ids instanceof Uint32Array) return true;
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i]!;
    if (!(Number.isInteger(v) && v >= 0 && v <= 0xffffffff)) return false;
  }
  return true;
}

/** Decodes one frame body. Throws when the bytes are not exactly one msgpack value. */
export function decodeBody(body: Uint8Array): unknown {
  const value: unknown = unpackr.unpack(body);
  // msgpackr returns a marker for 0xC1, a byte msgpack never uses; such bytes are not msgpack.
  if (value === C1) throw new Error("the byte 0xC1 is not msgpack");
  return value;
}
