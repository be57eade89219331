// kvroute's library entry: the parts a program embedding the router, or a tool built on it, can use, in
// the order of a request's path.
//
// The router: startRouter runs all of it; the routing core, the scheduler and the engine interface are
// what a program driving its own engines (or a simulation) builds on.
export { startRouter, type RouterOptions, type RunningRouter } from "./router/serve.js";
export { Router, type RouterParts } from "./router/router.js";
export { LeanAbortSignal, type AbortSignalLike } from "./util/abort.js";
export { RouterError, type Backend, type CachedTokensSource, type GenerateInput, type GenerationEvent, type Prompt, type RouterErrorKind, type Sampling, type Usage } from "./router/types.js";
export {
  ActiveLoad,
  Attempt,
  Booking,
  cachedTokens,
  outputBudget,
  POLICIES,
  RoutingCore,
  Scheduler,
  shouldRetry,
  type CachedTokensFallback,
  type Decision,
  type EngineLoad,
  type PolicyName,
  type RoutablePrompt,
  type Scored,
  externalLoad,
  type EngineReport,
  type ExternalLoad,
} from "./router/schedule/index.js";
export { Fleet, type EngineHandle, type EngineState } from "./router/dispatch/fleet.js";
export { MsgpackEngine } from "./router/dispatch/msgpack-engine.js";
export { HttpEngine, type HttpEngineOptions } from "./router/dispatch/http-engine.js";
export { parseEngineSpec, type EngineKind, type EngineSpec } from "./router/dispatch/engine-spec.js";
export type { Engine, EngineInfo, EngineListener, KvEventSource } from "./router/dispatch/engine.js";
// Preparation: block hashing (the tokenizer and the pool are in ./router/prepare/).
export * from "./router/prepare/hashing/index.js";
// Trace tools: loaders, prompt synthesis, and the replay against any OpenAI endpoint.
export * from "./tools/trace/index.js";
export * from "./tools/replay/index.js";
// Engine protocol (the rest of it, wire types and parsers included, is in ./engine-protocol/index.js).
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
  KvTransferParams,
  LogFn,
  LogLevel,
  ReconnectOptions,
  SamplingOptions,
  TokenLogprobs,
  EngineUsage,
  WireMessage,
} from "./engine-protocol/index.js";
// The mock engine: a simulated vLLM engine (its inner pieces are in ./mock-engine/index.js).
export { DEFAULT_TIMING, encodeKvEventBatch, EngineCore, EOS_TOKEN_ID, SimRequestError, SIMULATOR_VERSION, startHttpSimulator, startSimulator } from "./mock-engine/index.js";
export type {
  HttpSimulatorHandle,
  HttpSimulatorOptions,
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
// Shared-memory prefix index (its layout and reader/writer halves are in ./router/kv-index/prefix-index/).
export { PrefixIndex } from "./router/kv-index/prefix-index/index.js";
export type { PrefixIndexOptions, PrefixIndexShared, PrefixIndexStats } from "./router/kv-index/prefix-index/index.js";
// vLLM KV-event ingestion (the rest of it is in ./router/kv-index/kv-events/index.js).
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
