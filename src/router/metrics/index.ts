export { MirroredCounter, RouterMetrics, type EngineGaugeSource, type OverheadStage } from "./router-metrics.js";
