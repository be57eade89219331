import { Counter, Gauge, Registry } from "prom-client";
import { FastHistogram } from "./fast-histogram.js";
import type { RequestRecord, Telemetry } from "../http/telemetry.js";

/** Latency buckets in seconds, from the sub-millisecond router path to multi-minute generations. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
const OVERHEAD_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

export type OverheadStage = "tokenize" | "hash" | "index" | "schedule";

export interface EngineGaugeSource {
  engine: string;
  up: boolean;
  /** Up, but its requests stopped moving: it takes no new ones. */
  stalled: boolean;
  activeRequests: number;
  prefillBlocks: number;
  decodeBlocks: number;
  /** What other router replicas booked on the engine. */
  peerPrefillBlocks: number;
  peerDecodeBlocks: number;
  /** The engine's own count of its requests (its metrics; every client's), when it reports one. */
  reported: { running: number; waiting: number } | null;
  /** What the router's time model has learned of the engine. */
  prefillTokensPerSecond: number;
  decodeStepSeconds: number;
  /** Requests the prefill gate holds for the engine now. */
  heldRequests: number;
  /** Long prompts taken back on the engine now (schedule/take-back.ts), waiting to be sent again. */
  pausedRequests: number;
  /** Times a long prompt was taken back on the engine since the router started. */
  pauses: number;
}

/** Observed over predicted TTFT: 1 is a perfect prediction. */
const RATIO_BUCKETS = [0.25, 0.5, 0.67, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2, 4];

/**
 * Prometheus metrics of the router. Request-level figures arrive through the Telemetry interface; engine
 * and index figures are read when /metrics is scraped, from the sources registered with `onScrape`.
 */
export class RouterMetrics implements Telemetry {
  readonly registry = new Registry();
  readonly #requests: Counter<"endpoint" | "status">;
  readonly #ttft: FastHistogram;
  readonly #itl: FastHistogram;
  readonly #duration: FastHistogram<"endpoint">;
  readonly #promptTokens: Counter;
  readonly #completionTokens: Counter;
  readonly #cachedTokens: Counter<"source">;
  readonly #cachedSource: Counter<"source">;
  readonly #predictedCached: Counter;
  readonly #predictedHitRatio: FastHistogram;
  readonly #overhead: FastHistogram<"stage">;
  readonly #retries: Counter;
  readonly #disaggregated: Counter<"path">;
  readonly #disaggFailures: Counter<"stage" | "failure">;
  readonly #engineUp: Gauge<"engine">;
  readonly #engineStalled: Gauge<"engine">;
  readonly #engineRequests: Gauge<"engine">;
  readonly #engineBlocks: Gauge<"engine" | "phase">;
  readonly #enginePeerBlocks: Gauge<"engine" | "phase">;
  readonly #engineReported: Gauge<"engine" | "state">;
  readonly #enginePrefillRate: Gauge<"engine">;
  readonly #engineStep: Gauge<"engine">;
  readonly #engineHeld: Gauge<"engine">;
  readonly #enginePaused: Gauge<"engine">;
  readonly #enginePauses: MirroredCounter<"engine">;
  readonly #decisionTurn: FastHistogram;
  readonly #ttftRatio: FastHistogram<"engine">;
  readonly #ttftPredicted: Counter<"engine">;
  readonly #ttftObserved: Counter<"engine">;
  readonly #scrapeHooks: (() => void | Promise<void>)[] = [];

  constructor() {
    const registers = [this.registry];
    this.#requests = new Counter({ name: "kvroute_requests_total", help: "HTTP requests by endpoint and status", labelNames: ["endpoint", "status"], registers });
    this.#ttft = new FastHistogram({ name: "kvroute_time_to_first_token_seconds", help: "Time from a request's arrival to its first generated token", buckets: LATENCY_BUCKETS, registers });
    this.#itl = new FastHistogram({ name: "kvroute_inter_token_latency_seconds", help: "Time between successive streamed token deltas", buckets: LATENCY_BUCKETS, registers });
    this.#duration = new FastHistogram({ name: "kvroute_request_duration_seconds", help: "Time from a request's arrival to its last byte", labelNames: ["endpoint"], buckets: LATENCY_BUCKETS, registers });
    this.#promptTokens = new Counter({ name: "kvroute_prompt_tokens_total", help: "Prompt tokens of completed requests", registers });
    this.#completionTokens = new Counter({ name: "kvroute_completion_tokens_total", help: "Generated tokens of completed requests", registers });
    this.#cachedTokens = new Counter({ name: "kvroute_cached_tokens_total", help: "Prompt tokens reported as served from cache, by where the figure came from", labelNames: ["source"], registers });
    this.#cachedSource = new Counter({ name: "kvroute_cached_tokens_source_total", help: "Responses by the source of their cached_tokens figure (engine, router estimate, none)", labelNames: ["source"], registers });
    this.#predictedCached = new Counter({ name: "kvroute_predicted_cached_tokens_total", help: "Prompt tokens the router predicted the chosen engine holds (overlap_blocks × block_size)", registers });
    this.#predictedHitRatio = new FastHistogram({ name: "kvroute_predicted_hit_ratio", help: "Per request: predicted cached tokens / prompt tokens on the chosen engine", buckets: [0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1], registers });
    this.#overhead = new FastHistogram({ name: "kvroute_router_overhead_seconds", help: "Router time per request by stage", labelNames: ["stage"], buckets: OVERHEAD_BUCKETS, registers });
    this.#retries = new Counter({ name: "kvroute_retries_total", help: "Requests retried on another engine after their engine failed before the first token", registers });
    this.#disaggregated = new Counter({
      name: "kvroute_disaggregated_requests_total",
      help: "With engine roles, prompts by how they were served: split (prefill engine, then decode engine), local_short (prefilled on the decode engine: uncached part under --disagg-min-prefill-tokens), local_degraded (no prefill engine available)",
      labelNames: ["path"],
      registers,
    });
    this.#disaggFailures = new Counter({
      name: "kvroute_disaggregation_failures_total",
      help: "Disaggregated serving's failures by stage: retried (an engine failed before answering), unavailable (no prefill engine: prefilled on a decode engine), no_transfer_params, kv_transfer_failed (the decode engine computed the prompt itself), engine_failed, aborted (the client left)",
      labelNames: ["stage", "failure"],
      registers,
    });
    this.#engineUp = new Gauge({ name: "kvroute_engine_up", help: "1 while the engine is connected (and takes work unless kvroute_engine_stalled is 1)", labelNames: ["engine"], registers });
    this.#engineStalled = new Gauge({ name: "kvroute_engine_stalled", help: "1 while the engine is connected but its requests make no progress: it gets no new ones", labelNames: ["engine"], registers });
    this.#engineRequests = new Gauge({ name: "kvroute_engine_active_requests", help: "Requests in flight per engine", labelNames: ["engine"], registers });
    this.#engineBlocks = new Gauge({ name: "kvroute_engine_active_blocks", help: "KV blocks booked per engine by phase", labelNames: ["engine", "phase"], registers });
    this.#enginePeerBlocks = new Gauge({ name: "kvroute_engine_peer_blocks", help: "KV blocks other router replicas booked per engine by phase (replicas sharing load through NATS)", labelNames: ["engine", "phase"], registers });
    this.#engineReported = new Gauge({
      name: "kvroute_engine_reported_requests",
      help: "Requests an HTTP engine's own metrics report (every client's), by state, while the report is fresh",
      labelNames: ["engine", "state"],
      registers,
    });
    this.#enginePrefillRate = new Gauge({ name: "kvroute_engine_prefill_tokens_per_second", help: "Prompt tokens per second the router's time model has learned for the engine", labelNames: ["engine"], registers });
    this.#engineStep = new Gauge({ name: "kvroute_engine_decode_step_seconds", help: "Time of one decode step with nothing else running, as the router's time model has learned it", labelNames: ["engine"], registers });
    this.#engineHeld = new Gauge({ name: "kvroute_engine_held_requests", help: "Requests the prefill gate holds in the router until the engine's prompts ahead of them have their first tokens", labelNames: ["engine"], registers });
    this.#enginePaused = new Gauge({ name: "kvroute_engine_paused_requests", help: "Long prompts a short one took the engine back from: aborted there, and sent again once the short one has its first token", labelNames: ["engine"], registers });
    this.#enginePauses = new MirroredCounter(this.registry, "kvroute_engine_pauses_total", "Times a short prompt took the engine back from a long one (a long prompt paused: aborted there and sent again)", ["engine"]);
    this.#decisionTurn = new FastHistogram({
      name: "kvroute_decision_turn_requests",
      help: "Requests decided together in one event-loop turn (--decide-together; 1: decided alone)",
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers,
    });
    this.#ttftRatio = new FastHistogram({ name: "kvroute_ttft_observed_over_predicted", help: "Per request: the TTFT observed at the router over the TTFT the time model predicted for its engine", labelNames: ["engine"], buckets: RATIO_BUCKETS, registers });
    this.#ttftPredicted = new Counter({ name: "kvroute_ttft_predicted_seconds_total", help: "Sum of predicted TTFTs, per engine (beside the observed sum, it shows the model's bias)", labelNames: ["engine"], registers });
    this.#ttftObserved = new Counter({ name: "kvroute_ttft_observed_seconds_total", help: "Sum of observed TTFTs (from the routing decision, any time held by the prefill gate included, to the first token), per engine", labelNames: ["engine"], registers });
  }

  requestDone(r: RequestRecord): void {
    this.#requestChild(r.endpoint, r.status).inc();
    this.#duration.series({ endpoint: r.endpoint }).observe(r.duration);
    if (r.ttft !== null) this.#ttft.observe(r.ttft);
    if (r.status !== 200) return;
    this.#promptTokens.inc(r.promptTokens);
    this.#completionTokens.inc(r.completionTokens);
    if (r.cachedTokensSource !== null) {
      this.#cachedTokens.inc({ source: r.cachedTokensSource }, r.cachedTokens);
      this.#cachedSource.inc({ source: r.cachedTokensSource });
    }
  }

  // Labelled children are looked up once and kept: resolving labels costs more than the increment.
  readonly #requestChildren = new Map<string, { inc(): void }>();

  #requestChild(endpoint: string, status: number): { inc(): void } {
    const key = `${endpoint} ${status}`;
    let child = this.#requestChildren.get(key);
    if (!child) this.#requestChildren.set(key, (child = this.#requests.labels({ endpoint, status: String(status) })));
    return child;
  }

  interTokenLatency(seconds: number): void {
    this.#itl.observe(seconds);
  }

  /** The router's prediction for one dispatched prompt. */
  predicted(cachedTokens: number, promptTokens: number): void {
    this.#predictedCached.inc(cachedTokens);
    this.#predictedHitRatio.observe(promptTokens > 0 ? cachedTokens / promptTokens : 0);
  }

  /** A first token came: the time model had predicted `predicted` seconds, it took `observed`. */
  ttftPrediction(engine: string, predicted: number, observed: number): void {
    if (predicted > 0) this.#ttftRatio.series({ engine }).observe(observed / predicted);
    this.#ttftPredicted.inc({ engine }, Math.max(0, predicted));
    this.#ttftObserved.inc({ engine }, Math.max(0, observed));
  }

  /** `requests` were decided together in one event-loop turn. */
  decidedTogether(requests: number): void {
    this.#decisionTurn.observe(requests);
  }

  overhead(stage: OverheadStage, seconds: number): void {
    this.#overhead.series({ stage }).observe(seconds);
  }

  retried(): void {
    this.#retries.inc();
  }

  disaggregation(path: "split" | "local_short" | "local_degraded"): void {
    this.#disaggregated.inc({ path });
  }

  disaggregationFailure(stage: "whole" | "prefill" | "decode", failure: "retried" | "unavailable" | "no_transfer_params" | "kv_transfer_failed" | "engine_failed" | "aborted"): void {
    this.#disaggFailures.inc({ stage, failure });
  }

  /** Engine gauges are rebuilt at each scrape, so engines that left the fleet disappear. */
  engines(read: () => EngineGaugeSource[]): void {
    this.onScrape(() => {
      this.#engineUp.reset();
      this.#engineStalled.reset();
      this.#engineRequests.reset();
      this.#engineBlocks.reset();
      this.#enginePeerBlocks.reset();
      this.#engineReported.reset();
      this.#enginePrefillRate.reset();
      this.#engineStep.reset();
      this.#engineHeld.reset();
      this.#enginePaused.reset();
      for (const e of read()) {
        if (e.reported) {
          this.#engineReported.set({ engine: e.engine, state: "running" }, e.reported.running);
          this.#engineReported.set({ engine: e.engine, state: "waiting" }, e.reported.waiting);
        }
        this.#enginePrefillRate.set({ engine: e.engine }, e.prefillTokensPerSecond);
        this.#engineStep.set({ engine: e.engine }, e.decodeStepSeconds);
        this.#engineHeld.set({ engine: e.engine }, e.heldRequests);
        this.#enginePaused.set({ engine: e.engine }, e.pausedRequests);
        this.#enginePauses.set(e.pauses, { engine: e.engine });
        this.#engineUp.set({ engine: e.engine }, e.up ? 1 : 0);
        this.#engineStalled.set({ engine: e.engine }, e.stalled ? 1 : 0);
        this.#engineRequests.set({ engine: e.engine }, e.activeRequests);
        this.#engineBlocks.set({ engine: e.engine, phase: "prefill" }, e.prefillBlocks);
        this.#engineBlocks.set({ engine: e.engine, phase: "decode" }, e.decodeBlocks);
        this.#enginePeerBlocks.set({ engine: e.engine, phase: "prefill" }, e.peerPrefillBlocks);
        this.#enginePeerBlocks.set({ engine: e.engine, phase: "decode" }, e.peerDecodeBlocks);
      }
    });
  }

  onScrape(hook: () => void | Promise<void>): void {
    this.#scrapeHooks.push(hook);
  }

  async scrape(): Promise<{ contentType: string; body: string }> {
    for (const hook of this.#scrapeHooks) await hook();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/**
 * A Prometheus counter that mirrors a cumulative count kept elsewhere (another thread's stats): each
 * scrape adds what the source gained since the last one. A source that restarts from zero is followed
 * from its new value.
 */
export class MirroredCounter<L extends string> {
  readonly #counter: Counter<L>;
  readonly #last = new Map<string, number>();

  constructor(registry: Registry, name: string, help: string, labelNames: L[] = []) {
    this.#counter = new Counter({ name, help, labelNames, registers: [registry] });
  }

  set(value: number, labels: Partial<Record<L, string>> = {}): void {
    const key = JSON.stringify(labels);
    const last = this.#last.get(key) ?? 0;
    const delta = value >= last ? value - last : value;
    this.#last.set(key, value);
    if (delta > 0) this.#counter.inc(labels as Record<L, string>, delta);
    else this.#counter.inc(labels as Record<L, string>, 0);
  }
}
