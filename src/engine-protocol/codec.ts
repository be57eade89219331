// msgpack encoding of protocol messages, with msgpackr. Plain msgpack only (no records, no extensions), so
// the Python worker's msgpack library reads every frame.
import { C1, Packr, RESERVE_START_SPACE, Unpackr } from "msgpackr";
import { FRAME_HEADER_BYTES } from "./frame.js";
import type { WireMessage } from "./wire.js";

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

/** Decodes one frame body. Throws when the bytes are not exactly one msgpack value. */
export function decodeBody(body: Uint8Array): unknown {
  const value: unknown = unpackr.unpack(body);
  // msgpackr returns a marker for 0xC1, a byte msgpack never uses; such bytes are not msgpack.
  if (value === C1) throw new Error("the byte 0xC1 is not msgpack");
  return value;
}
