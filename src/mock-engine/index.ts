// The simulated vLLM engine: a socket-free core for virtual time, and a server around it.
export { EngineCore, SimRequestError } from "./core.js";
export type { CoreFinish, CoreOutput, CoreRequest, EngineCoreMetrics, EngineCoreOptions, StepResult } from "./core.js";
export { BlockPool } from "./block-pool.js";
export { hashBlock, rootDigest } from "./block-hash.js";
export type { BlockDigest } from "./block-hash.js";
export { encodeKvEventBatch } from "./kv-event-encoder.js";
export type { KvEventSink, SimAllBlocksCleared, SimBlockRemoved, SimBlockStored, SimKvEvent } from "./kv-events.js";
export { KvEventPublisher } from "./kv-publisher.js";
export type { KvPublisherOptions, ReplayFormat } from "./kv-publisher.js";
export { EOS_TOKEN_ID, GENERATED_VOCAB } from "./sampler.js";
export { SIMULATOR_VERSION, startSimulator } from "./server.js";
export type { SimulatorHandle, SimulatorMetrics, SimulatorOptions } from "./server.js";
export { DEFAULT_TIMING, stepDurationMs } from "./timing.js";
export type { StepWork, TimingModel } from "./timing.js";
export { WORDS } from "./words.js";
export { startSimulatorThread } from "./thread-host.js";
export type { SimulatedEngineAddress, SimulatorThread, SimulatorThreadOptions } from "./thread-host.js";
