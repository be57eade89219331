export { watchKvEvents } from "./kv-metrics.js";
export { watchBodyLane, watchPool, type PoolLoad } from "./pool-metrics.js";
export { requestLogger } from "./request-log.js";
export { MirroredCounter, RouterMetrics, type EngineGaugeSource, type OverheadStage } from "./router-metrics.js";
export { ReplicaMetrics, type ReplicaTelemetry } from "./replica-metrics.js";
