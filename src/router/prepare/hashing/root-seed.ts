import { xxh64 } from "./xxh64.js";

export interface SeedParts {
  model: string;
  loraName?: string;
  cacheSalt?: string;
}

const utf8 = new TextEncoder();

/**
 * The seed of a prompt's first block: XXH64 (seed 0) over model, LoRA name and cache salt, each written
 * as a u32 little-endian byte length then its UTF-8 bytes. Lengths make the encoding unambiguous, so
 * ("ab", "c") and ("a", "bc") never share a seed. An absent LoRA name or salt is the empty string.
 */
export function rootSeed({ model, loraName = "", cacheSalt = "" }: SeedParts): bigint {
  for (const [name, value] of [["model", model], ["loraName", loraName], ["cacheSalt", cacheSalt]] as const) {
    if (typeof value !== "string") throw new TypeError(`rootSeed: ${name} must be a string, got ${typeof value}`);
  }
  const parts = [model, loraName, cacheSalt].map((s) => utf8.encode(s));
  const bytes = new Uint8Array(parts.reduce((n, p) => n + 4 + p.length, 0));
  const view = new DataView(bytes.buffer);
  let at = 0;
  for (const part of parts) {
    view.setUint32(at, part.length, true);
    bytes.set(part, at + 4);
    at += 4 + part.length;
  }
  return xxh64(bytes, 0n);
}
