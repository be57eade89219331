// A small decoder of the two KV-event layouts the simulator publishes, for tests only: the router's real
// decoder is its own part and is cross-checked against the same payloads.
import { Unpackr } from "msgpackr";

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "bigint" });

export type DecodedEvent =
  | { type: "BlockStored"; blockHashes: bigint[]; parent: bigint | null; tokenIds: number[]; blockSize: number; loraName: string | null; medium: string }
  | { type: "BlockRemoved"; blockHashes: bigint[]; medium: string }
  | { type: "AllBlocksCleared" };

export interface DecodedBatch {
  ts: number;
  events: DecodedEvent[];
  dataParallelRank: number | null;
}

const big = (v: unknown): bigint => BigInt(v as number | bigint);

function decodeEvent(raw: unknown): DecodedEvent {
  if (Array.isArray(raw)) {
    const [tag, ...f] = raw as unknown[];
    if (tag === "BlockStored") {
      return {
        type: tag,
        blockHashes: (f[0] as unknown[]).map(big),
        parent: f[1] === null ? null : big(f[1]),
        tokenIds: f[2] as number[],
        blockSize: f[3] as number,
        medium: f[5] as string,
        loraName: (f[6] as string | null) ?? null,
      };
    }
    if (tag === "BlockRemoved") return { type: tag, blockHashes: (f[0] as unknown[]).map(big), medium: f[1] as string };
    if (tag === "AllBlocksCleared") return { type: tag };
    throw new Error(`unknown event tag ${String(tag)}`);
  }
  const m = raw as Record<string, unknown>;
  if (m.type === "BlockStored") {
    return {
      type: "BlockStored",
      blockHashes: (m.block_hashes as unknown[]).map(big),
      parent: m.parent_block_hash === null ? null : big(m.parent_block_hash),
      tokenIds: m.token_ids as number[],
      blockSize: m.block_size as number,
      medium: m.medium as string,
      loraName: (m.lora_name as string | null) ?? null,
    };
  }
  if (m.type === "BlockRemoved") return { type: "BlockRemoved", blockHashes: (m.block_hashes as unknown[]).map(big), medium: m.medium as string };
  if (m.type === "AllBlocksCleared") return { type: "AllBlocksCleared" };
  throw new Error(`unknown event type ${String(m.type)}`);
}

export function decodeBatch(payload: Uint8Array): DecodedBatch {
  const [ts, events, rank] = unpackr.unpack(payload) as [number, unknown[], number | null | undefined];
  return { ts, events: events.map(decodeEvent), dataParallelRank: rank ?? null };
}

/** The set of block hashes an engine holds after these events, checking that parents are known. */
export class EventState {
  readonly blocks = new Set<bigint>();
  /** Stored blocks whose parent was not held when they arrived (should stay 0 for a sound stream). */
  orphans = 0;

  apply(events: readonly DecodedEvent[]): void {
    for (const e of events) {
      if (e.type === "BlockStored") {
        if (e.parent !== null && !this.blocks.has(e.parent)) this.orphans++;
        for (const h of e.blockHashes) this.blocks.add(h);
      } else if (e.type === "BlockRemoved") {
        for (const h of e.blockHashes) this.blocks.delete(h);
      } else {
        this.blocks.clear();
      }
    }
  }
}
