// kvroute's library entry: the parts a program embedding the router, or a tool built on it, can use.
export * from "./router/prepare/hashing/index.js";
export * from "./tools/trace/index.js";
export * from "./tools/replay/index.js";
// Engine protocol (the rest of it, wire types and parsers included, is in ./protocol/index.js).
export {
  decodeBody,
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  EngineClient,
  EngineConnectError,
  FrameDecoder,
  FrameError,
  parseEngineUrl,
  PROTOCOL_VERSION,
  resolveWildcardHost,
} from "./engine-protocol/index.js";
export type {
  ConnectErrorCode,
  DeltaEvent,
  EngineClientEvents,
  EngineClientOptions,
  EngineDisconnect,
  EngineEvent,
  Welcome,
  ErrorEvent,
  FinishEvent,
  GenerateOptions,
  GenerateRequest,
  KvEventsInfo,
  KvEventsLayout,
  LogFn,
  LogLevel,
  ReconnectOptions,
  SamplingOptions,
  TokenLogprobs,
  EngineUsage,
  WireMessage,
} from "./engine-protocol/index.js";
// Simulated vLLM engine (its inner pieces are in ./simulator/index.js).
export { DEFAULT_TIMING, encodeKvEventBatch, EngineCore, EOS_TOKEN_ID, SimRequestError, SIMULATOR_VERSION, startSimulator } from "./mock-engine/index.js";
export type {
  CoreFinish,
  CoreOutput,
  CoreRequest,
  EngineCoreMetrics,
  EngineCoreOptions,
  KvEventSink,
  ReplayFormat,
  SimAllBlocksCleared,
  SimBlockRemoved,
  SimBlockStored,
  SimKvEvent,
  SimulatorHandle,
  SimulatorMetrics,
  SimulatorOptions,
  StepResult,
  StepWork,
  TimingModel,
} from "./mock-engine/index.js";
// Shared-memory prefix index (its layout and reader/writer halves are in ./prefix-index/).
export { PrefixIndex } from "./router/kv-index/prefix-index/index.js";
export type { PrefixIndexOptions, PrefixIndexShared, PrefixIndexStats } from "./router/kv-index/prefix-index/index.js";
// vLLM KV-event ingestion (the rest of it is in ./kv-events/index.js).
export {
  decodeKvEventBatch,
  KvEventApplier,
  KvEventDecodeError,
  KvEventIngest,
  KvEventThread,
  MEDIA,
  normalizeBatch,
  rankEndpoint,
  RankStream,
} from "./router/kv-index/kv-events/index.js";
export type {
  AllBlocksClearedEvent,
  ApplierCounters,
  ApplierOptions,
  Batch,
  BlockHashKind,
  BlockRemovedEvent,
  BlockStoredEvent,
  ConnectionState,
  DropReason,
  EngineIngestStats,
  EngineModel,
  IngestOptions,
  KvEngineConfig,
  KvEvent,
  KvEventBatch,
  KvEventStats,
  KvEventThreadOptions,
  KvEventThreadStats,
  Medium,
  RankIngestStats,
  RankStats,
  RankStreamHooks,
  RankStreamStats,
  UnknownKvEvent,
} from "./router/kv-index/kv-events/index.js";
// Offline policy simulation on virtual time (`kvroute simulate`).
export { H100_8B, SharedCacheBound, simulate, simulatePolicy } from "./tools/policy-sim/index.js";
export type { CacheBound, EngineSettings, PolicyReport, PolicyRun, SimulateOptions, SimulationOptions, SimulationReport, TraceSpec } from "./tools/policy-sim/index.js";
