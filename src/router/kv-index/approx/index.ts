export { ApproxCache, type ApproxCacheOptions, type ApproxCounters, type ApproxEngineStats, type ApproxIndexSink } from "./approx-cache.js";
