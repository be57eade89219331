// Aggregates request results into the run's summary: latency percentiles, throughput, goodput, the fleet
// cache-hit ratio, requests per engine, and all of these over time.
import type { BadLine, TraceReport } from "../trace/index.js";
import type { StopReason } from "./runner.js";
import { LatencyHistogram, type LatencySummary } from "./histogram.js";
import type { RequestErrorKind } from "./request.js";
import type { RequestResult } from "./result.js";
import { Timeline, type TimelinePoint } from "./timeline.js";

/** Service-level objectives: a request is good when it succeeded and meets every one given. */
export interface Slo {
  /** Time to first token, ms. */
  ttftMs?: number;
  /** The request's mean inter-token latency (time per output token after the first), ms. */
  itlMs?: number;
  /** End-to-end latency, ms. */
  e2eMs?: number;
}

const SLO_KEYS: Record<string, keyof Slo> = { ttft: "ttftMs", itl: "itlMs", e2e: "e2eMs" };

/** Parses `ttft=500,itl=50` (any of ttft, itl, e2e; milliseconds). */
export function parseSlo(spec: string): Slo {
  const slo: Slo = {};
  for (const part of spec.split(",").map((p) => p.trim()).filter((p) => p !== "")) {
    const [key = "", value = ""] = part.split("=");
    const field = SLO_KEYS[key.trim().toLowerCase()];
    const ms = Number(value);
    if (field === undefined || value.trim() === "" || !Number.isFinite(ms) || ms <= 0) {
      throw new Error(`--slo: ${JSON.stringify(part)} must be ttft=MS, itl=MS or e2e=MS with a positive number of milliseconds`);
    }
    slo[field] = ms;
  }
  if (Object.keys(slo).length === 0) throw new Error("--slo: give at least one of ttft=MS, itl=MS, e2e=MS");
  return slo;
}

export function meetsSlo(r: RequestResult, slo: Slo): boolean {
  if (!r.ok) return false;
  if (slo.ttftMs !== undefined && (r.ttftMs === null || r.ttftMs > slo.ttftMs)) return false;
  if (slo.itlMs !== undefined && r.itlMeanMs !== null && r.itlMeanMs > slo.itlMs) return false;
  if (slo.e2eMs !== undefined && (r.e2eMs === null || r.e2eMs > slo.e2eMs)) return false;
  return true;
}

/** What the statistics cannot know by themselves: where the run went and how it ended. */
export interface RunInfo {
  tool: string;
  startedAt: string;
  target: string;
  model: string;
  trace: { name: string; blockSize: number | null; report: TraceReport };
  settings: Record<string, string | number | boolean | null>;
  stopped: StopReason;
  /** From the start to the last response (or the stop). */
  durationMs: number;
  sent: number;
}

export interface ErrorSample {
  index: number;
  line: number;
  kind: RequestErrorKind;
  message: string;
}

export interface ReplaySummary {
  tool: string;
  startedAt: string;
  target: string;
  model: string;
  trace: {
    name: string;
    format: string;
    blockSize: number | null;
    records: number;
    badLines: number;
    badByKind: TraceReport["byKind"];
    firstBadLines: BadLine[];
  };
  settings: RunInfo["settings"];
  stopped: StopReason;
  durationSec: number;
  requests: {
    sent: number;
    completed: number;
    succeeded: number;
    failed: number;
    errorsByKind: Partial<Record<RequestErrorKind, number>>;
    firstErrors: ErrorSample[];
  };
  tokens: { prompt: number; output: number };
  throughput: { requestsPerSec: number; inputTokensPerSec: number; outputTokensPerSec: number };
  latency: { ttft: LatencySummary; itl: LatencySummary; e2e: LatencySummary; sendLag: LatencySummary };
  goodput: { slo: Slo; goodRequests: number; fractionOfCompleted: number; requestsPerSec: number } | null;
  cache: {
    /** Sum of cached_tokens / sum of prompt tokens, over the successful requests that reported cached_tokens. */
    hitRatio: number | null;
    cachedTokens: number;
    promptTokens: number;
    requestsReporting: number;
    /** Requests by the x-kvroute-cached-tokens-source header ("unreported" without it). */
    sources: Record<string, number>;
  };
  /** Requests by the x-kvroute-engine header ("unknown" without it). */
  engines: Record<string, number>;
  timeline: TimelinePoint[];
  distributions: { ttftMs: [number, number][]; e2eMs: [number, number][] };
}

const KEPT_ERRORS = 20;
const KEPT_BAD_LINES = 20;

export class ReplayStats {
  readonly ttft = new LatencyHistogram();
  readonly itl = new LatencyHistogram();
  readonly e2e = new LatencyHistogram();
  readonly sendLag = new LatencyHistogram();
  readonly timeline = new Timeline();
  completed = 0;
  succeeded = 0;
  good = 0;
  promptTokens = 0;
  outputTokens = 0;
  #reportedPrompt = 0;
  #cached = 0;
  #reporting = 0;
  readonly #errors: Partial<Record<RequestErrorKind, number>> = {};
  readonly #firstErrors: ErrorSample[] = [];
  readonly #engines = new Map<string, number>();
  readonly #sources = new Map<string, number>();

  constructor(readonly slo: Slo | null = null) {}

  get failed(): number {
    return this.completed - this.succeeded;
  }

  /** Adds a finished request; `gapsMs` are its inter-token gaps (for the ITL distribution). */
  add(r: RequestResult, gapsMs: readonly number[] = []): void {
    this.completed++;
    this.sendLag.record(Math.max(0, r.sentMs - r.scheduledMs));
    const bucket = this.timeline.at(r.sentMs + (r.e2eMs ?? 0));
    bump(this.#engines, r.engine ?? "unknown");
    if (!r.ok) {
      bucket.errors++;
      const kind = r.errorKind ?? "stream";
      this.#errors[kind] = (this.#errors[kind] ?? 0) + 1;
      if (this.#firstErrors.length < KEPT_ERRORS) this.#firstErrors.push({ index: r.index, line: r.line, kind, message: r.error ?? "" });
      return;
    }
    this.succeeded++;
    this.promptTokens += r.promptTokens;
    this.outputTokens += r.outputTokens;
    bucket.succeeded++;
    bucket.outputTokens += r.outputTokens;
    if (r.ttftMs !== null) this.ttft.record(r.ttftMs);
    if (r.e2eMs !== null) this.e2e.record(r.e2eMs);
    for (const gap of gapsMs) this.itl.record(gap);
    bump(this.#sources, r.cachedTokensSource ?? "unreported");
    if (r.cachedTokens !== null) {
      this.#reporting++;
      this.#cached += r.cachedTokens;
      this.#reportedPrompt += r.promptTokens;
      bucket.cachedTokens += r.cachedTokens;
      bucket.reportedPromptTokens += r.promptTokens;
    }
    if (this.slo !== null && meetsSlo(r, this.slo)) this.good++;
  }

  summary(run: RunInfo): ReplaySummary {
    const seconds = run.durationMs / 1000;
    const perSec = (n: number) => (seconds > 0 ? n / seconds : 0);
    const report = run.trace.report;
    return {
      tool: run.tool,
      startedAt: run.startedAt,
      target: run.target,
      model: run.model,
      trace: {
        name: run.trace.name,
        format: report.format,
        blockSize: run.trace.blockSize,
        records: report.records,
        badLines: report.badLines,
        badByKind: report.byKind,
        firstBadLines: report.firstBadLines.slice(0, KEPT_BAD_LINES),
      },
      settings: run.settings,
      stopped: run.stopped,
      durationSec: seconds,
      requests: {
        sent: run.sent,
        completed: this.completed,
        succeeded: this.succeeded,
        failed: this.failed,
        errorsByKind: { ...this.#errors },
        firstErrors: [...this.#firstErrors],
      },
      tokens: { prompt: this.promptTokens, output: this.outputTokens },
      throughput: {
        requestsPerSec: perSec(this.succeeded),
        inputTokensPerSec: perSec(this.promptTokens),
        outputTokensPerSec: perSec(this.outputTokens),
      },
      latency: { ttft: this.ttft.summary(), itl: this.itl.summary(), e2e: this.e2e.summary(), sendLag: this.sendLag.summary() },
      goodput:
        this.slo === null
          ? null
          : {
              slo: this.slo,
              goodRequests: this.good,
              fractionOfCompleted: this.completed > 0 ? this.good / this.completed : 0,
              requestsPerSec: perSec(this.good),
            },
      cache: {
        hitRatio: this.#reportedPrompt > 0 ? this.#cached / this.#reportedPrompt : null,
        cachedTokens: this.#cached,
        promptTokens: this.#reportedPrompt,
        requestsReporting: this.#reporting,
        sources: Object.fromEntries(this.#sources),
      },
      engines: Object.fromEntries([...this.#engines].sort((a, b) => a[0].localeCompare(b[0]))),
      timeline: this.timeline.points(),
      distributions: { ttftMs: this.ttft.cdf(), e2eMs: this.e2e.cdf() },
    };
  }
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}
