// The simulator's KV events in the shape the router's applier takes: the same fields vLLM's publisher
// would send for them, after decoding. Converting the values directly costs a fraction of encoding them to
// msgpack and decoding them again (npm run bench:simulate), and gives the same events.
//
// The engine reports each evicted block in a BlockRemoved event of its own, as vLLM does; consecutive
// ones are merged into one event, which the applier handles exactly as the run of single ones, for less.
import type { KvEvent } from "../../router/kv-index/kv-events/index.js";
import type { SimKvEvent } from "../../mock-engine/index.js";

export function toKvEvents(events: readonly SimKvEvent[]): KvEvent[] {
  const out: KvEvent[] = [];
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    switch (e.type) {
      case "BlockStored":
        out.push({
          type: "BlockStored",
          blockHashes: u64s(e.blockHashes),
          parentBlockHash: e.parentBlockHash,
          tokenIds: u32s(e.tokenIds),
          blockSize: e.blockSize,
          loraId: null,
          medium: e.medium,
          loraName: e.loraName,
        });
        break;
      case "BlockRemoved": {
        let end = i + 1;
        let count = e.blockHashes.length;
        for (; end < events.length; end++) {
          const next = events[end]!;
          if (next.type !== "BlockRemoved" || next.medium !== e.medium) break;
          count += next.blockHashes.length;
        }
        const blockHashes = new BigUint64Array(count);
        let k = 0;
        for (let j = i; j < end; j++) for (const hash of (events[j] as typeof e).blockHashes) blockHashes[k++] = hash;
        out.push({ type: "BlockRemoved", blockHashes, medium: e.medium });
        i = end - 1;
        break;
      }
      case "AllBlocksCleared":
        out.push({ type: "AllBlocksCleared" });
        break;
    }
  }
  return out;
}

// Plain loops: BigUint64Array.from goes through the iterator protocol, several times slower for BigInts.
function u64s(values: readonly bigint[]): BigUint64Array {
  const out = new BigUint64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i]!;
  return out;
}

function u32s(values: readonly number[]): Uint32Array {
  const out = new Uint32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i]!;
  return out;
}
