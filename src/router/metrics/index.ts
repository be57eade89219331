export { watchKvEvents } from "./kv-metrics.js";
export { requestLogger } from "./request-log.js";
export { MirroredCounter, RouterMetrics, type EngineGaugeSource, type OverheadStage } from "./router-metrics.js";
