// What `kvroute simulate` reports per policy, in the shape `--json` prints (snake_case, like the
// OpenAI-style APIs the tool sits beside), made from a policy run.
import type { LatencySummary } from "../replay/index.js";
import type { EngineRole, PolicyName } from "../../router/schedule/index.js";
import type { CacheBound } from "./bound.js";
import type { PolicyRun } from "./run.js";

export interface LatencyFigures {
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface PolicyReport {
  policy: PolicyName;
  /** aggregated: every engine serves whole requests; disaggregated: prefill engines, then decode engines. */
  mode: "aggregated" | "disaggregated";
  /** How requests were served: split across a prefill and a decode engine, or whole on one engine. */
  paths: { split: number; whole: number; local_short: number; local_degraded: number };
  requests: { sent: number; succeeded: number; failed: number };
  /** Engine-counted cached prompt tokens / prompt tokens, over the requests that succeeded. */
  hit_ratio: number | null;
  cached_tokens: number;
  prompt_tokens: number;
  ttft_ms: LatencyFigures;
  e2e_ms: LatencyFigures;
  itl_ms: LatencyFigures;
  /** Per second of virtual time, from the first arrival to the last response. */
  throughput: { requests_per_sec: number; input_tokens_per_sec: number; output_tokens_per_sec: number };
  /**
   * The busiest engine's figure over the mean across engines: 1 is perfectly even. Disaggregated, within
   * each pool (prefill engines, decode engines), the less even of the two.
   */
  balance: { requests: number; prefill_tokens: number; busy_time: number };
  engines: { engine: string; role: EngineRole; requests: number; prefill_tokens: number; busy_sec: number }[];
  virtual_sec: number;
  wall_sec: number;
  /** Virtual seconds simulated per wall-clock second. */
  speed: number;
  /** KV events the router's applier could not place, and index entries evicted for room (normally 0). */
  kv_events: { unknown_parent: number; unknown_block: number; index_evictions: number };
  /** Approximate mode (--kv-events none): predictions recorded, blocks forgotten by TTL and for room; else null. */
  approx: { predictions: number; expired_blocks: number; evicted_blocks: number } | null;
  /**
   * The time model's TTFT for the engine each attempt was sent to, predicted when it was chosen, against the
   * TTFT observed (whatever the policy: the baselines' choices are predicted too). One per first token: a
   * disaggregated request has two. Null means when there was none.
   */
  ttft_prediction: { first_tokens: number; predicted_mean_ms: number | null; observed_mean_ms: number | null; mean_abs_error_ms: number | null };
}

export interface BoundReport {
  hit_ratio: number | null;
  block_size: number;
  /** Null for the unbounded cache. */
  capacity_blocks: number | null;
  cached_tokens: number;
  prompt_tokens: number;
}

export interface TraceFigures {
  name: string;
  format: string;
  records: number;
  bad_lines: number;
}

export interface SimulationReport {
  trace: TraceFigures;
  settings: Record<string, string | number | boolean | null>;
  policies: PolicyReport[];
  /** One unbounded cache shared by all engines. */
  bound: BoundReport;
  /** One LRU cache of the fleet's total blocks. */
  fleet_bound: BoundReport;
  wall_sec: number;
}

function latency(s: LatencySummary): LatencyFigures {
  return { mean: s.meanMs, p50: s.p50Ms, p90: s.p90Ms, p99: s.p99Ms, max: s.maxMs };
}

/** Largest over mean; 1 when every value is 0. */
export function maxOverMean(values: readonly number[]): number {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return mean > 0 ? Math.max(...values) / mean : 1;
}

/** Max over mean within each pool of engines of one role; the largest. */
function byPool(run: PolicyRun, figure: (e: PolicyRun["engines"][number]) => number): number {
  const roles = [...new Set(run.engines.map((e) => e.role))];
  return Math.max(...roles.map((role) => maxOverMean(run.engines.filter((e) => e.role === role).map(figure))));
}

export function policyReport(run: PolicyRun): PolicyReport {
  const s = run.summary;
  return {
    policy: run.policy,
    mode: run.mode,
    paths: run.paths,
    requests: { sent: s.requests.sent, succeeded: s.requests.succeeded, failed: s.requests.failed },
    hit_ratio: s.cache.hitRatio,
    cached_tokens: s.cache.cachedTokens,
    prompt_tokens: s.cache.promptTokens,
    ttft_ms: latency(s.latency.ttft),
    e2e_ms: latency(s.latency.e2e),
    itl_ms: latency(s.latency.itl),
    throughput: {
      requests_per_sec: s.throughput.requestsPerSec,
      input_tokens_per_sec: s.throughput.inputTokensPerSec,
      output_tokens_per_sec: s.throughput.outputTokensPerSec,
    },
    balance: {
      requests: byPool(run, (e) => e.requests),
      prefill_tokens: byPool(run, (e) => e.prefillTokens),
      busy_time: byPool(run, (e) => e.busyMs),
    },
    engines: run.engines.map((e) => ({ engine: e.engine, role: e.role, requests: e.requests, prefill_tokens: e.prefillTokens, busy_sec: e.busyMs / 1000 })),
    virtual_sec: run.virtualMs / 1000,
    wall_sec: run.wallMs / 1000,
    speed: run.wallMs > 0 ? run.virtualMs / run.wallMs : 0,
    kv_events: { unknown_parent: run.unknownParents, unknown_block: run.unknownBlocks, index_evictions: run.indexEvictions },
    approx: run.approx === null ? null : { predictions: run.approx.predictions, expired_blocks: run.approx.expired, evicted_blocks: run.approx.evicted },
    ttft_prediction: {
      first_tokens: run.ttftPrediction.firstTokens,
      predicted_mean_ms: run.ttftPrediction.predictedMeanMs,
      observed_mean_ms: run.ttftPrediction.observedMeanMs,
      mean_abs_error_ms: run.ttftPrediction.meanAbsErrorMs,
    },
  };
}

export function boundReport(b: CacheBound): BoundReport {
  return { hit_ratio: b.hitRatio, block_size: b.blockSize, capacity_blocks: b.capacityBlocks, cached_tokens: b.cachedTokens, prompt_tokens: b.promptTokens };
}
