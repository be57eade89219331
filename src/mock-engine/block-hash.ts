// The simulator's block hashes: SHA-256 over the parent block's digest and the block's tokens, like
// vLLM's sha256 prefix-caching hash and deliberately unlike the router's XXH64, so the router has to map
// the engine's hashes to its own. A block's u64 hash is the digest's last 8 bytes read big-endian, the
// integer vLLM publishes for a 32-byte digest.
import { createHash } from "node:crypto";

export interface BlockDigest {
  digest: Buffer;
  hash: bigint;
}

/** Root digests already made, by seed, LoRA name and cache salt (salts are per tenant: bounded, cleared when full). */
const roots = new Map<string, Buffer>();
const MAX_ROOTS = 10_000;

/**
 * The digest block 0 chains from: it depends on the seed, the LoRA name and the cache salt. Every request
 * needs one; made once per distinct triple. The buffer is shared: callers must not write to it.
 */
export function rootDigest(seed: number, loraName: string | null, cacheSalt: string | null): Buffer {
  const key = JSON.stringify([seed, loraName ?? "", cacheSalt ?? ""]); // null and "" hash alike
  let root = roots.get(key);
  if (root === undefined) {
    if (roots.size >= MAX_ROOTS) roots.clear();
    root = makeRootDigest(seed, loraName, cacheSalt);
    roots.set(key, root);
  }
  return root;
}

function makeRootDigest(seed: number, loraName: string | null, cacheSalt: string | null): Buffer {
  const h = createHash("sha256");
  const lengths = Buffer.alloc(12);
  const lora = Buffer.from(loraName ?? "", "utf8");
  const salt = Buffer.from(cacheSalt ?? "", "utf8");
  lengths.writeUInt32LE(seed >>> 0, 0);
  lengths.writeUInt32LE(lora.length, 4);
  lengths.writeUInt32LE(salt.length, 8);
  h.update("kvroute-sim block hash v1");
  h.update(lengths);
  h.update(lora);
  h.update(salt);
  return h.digest();
}

const scratch = new DataView(new ArrayBuffer(4 * 1024));

/** Hashes one block of `blockSize` tokens starting at `start`, chained from `parent`. */
export function hashBlock(parent: Buffer, tokens: readonly number[], start: number, blockSize: number): BlockDigest {
  const bytes = blockSize * 4;
  const view = bytes <= scratch.byteLength ? scratch : new DataView(new ArrayBuffer(bytes));
  for (let i = 0; i < blockSize; i++) view.setUint32(i * 4, tokens[start + i]!, true);
  const digest = createHash("sha256").update(parent).update(new Uint8Array(view.buffer, 0, bytes)).digest();
  return { digest, hash: digest.readBigUInt64BE(24) };
}
