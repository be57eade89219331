export {
  decodeKvEventBatch,
  normalizeBatch,
  KvEventDecodeError,
  type AllBlocksClearedEvent,
  type BlockHashKind,
  type BlockRemovedEvent,
  type BlockStoredEvent,
  type KvEvent,
  type KvEventBatch,
  type UnknownKvEvent,
} from "./decode.js";
export { KvEventApplier, type ApplierCounters, type ApplierHooks, type ApplierOptions, type EngineModel, type RankStats } from "./applier.js";
export { MEDIA, type Medium } from "./media.js";
export { KvEventIngest, type EngineIngestStats, type IngestOptions, type KvEngineConfig, type KvEventStats, type KvNotice, type RankIngestStats } from "./ingest.js";
export { KvEventThread, type KvEventThreadOptions, type KvEventThreadStats } from "./thread.js";
export { RankStream, type Batch, type DropReason, type RankStreamHooks, type RankStreamStats } from "./rank-stream.js";
export { rankEndpoint, type ConnectionState } from "./subscriber.js";
