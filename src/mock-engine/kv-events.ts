// The KV events the simulator publishes, as structured values before msgpack (vLLM's BlockStored,
// BlockRemoved and AllBlocksCleared). Block hashes are the simulator's own u64 hashes.

export interface SimBlockStored {
  type: "BlockStored";
  /** Consecutive blocks of one request, first to last. */
  blockHashes: bigint[];
  /** The hash of the block before the first one; null when the first is the request's block 0. */
  parentBlockHash: bigint | null;
  /** blockHashes.length × blockSize token ids. */
  tokenIds: number[];
  blockSize: number;
  loraName: string | null;
  medium: "GPU";
}

export interface SimBlockRemoved {
  type: "BlockRemoved";
  blockHashes: bigint[];
  medium: "GPU";
}

export interface SimAllBlocksCleared {
  type: "AllBlocksCleared";
}

export type SimKvEvent = SimBlockStored | SimBlockRemoved | SimAllBlocksCleared;

/** Receives the events of one engine step (or of a reset) as one batch, in order. */
export type KvEventSink = (events: readonly SimKvEvent[]) => void;
