// One policy's run as a job with plain-data input and output, the same in this thread or a worker's:
// it opens the trace, runs the simulation, and writes the policy's results folder when asked.
import { join } from "node:path";
import { ResultsFolder } from "../replay/index.js";
import { SharedCacheBound, type CacheBound } from "./bound.js";
import { policyReport, type PolicyReport, type TraceFigures } from "./report.js";
import { simulatePolicy, type SimulationOptions } from "./run.js";
import { openTraceSpec, type TraceSpec } from "./trace-spec.js";

export type JobOptions = Omit<SimulationOptions, "onResult" | "onProgress" | "bounds">;

export interface PolicyJob {
  trace: TraceSpec;
  options: JobOptions;
  /** When set, the policy's summary.json, requests.jsonl and report.html go to outDir/<policy>/. */
  outDir?: string;
  /** Also compute the hit-ratio bounds over the prompts (one job of a run is enough). */
  bound?: boolean;
}

export interface JobResult {
  report: PolicyReport;
  trace: TraceFigures;
  /** The unbounded and the fleet-capacity bound, when asked for. */
  bounds: { unbounded: CacheBound; fleet: CacheBound } | null;
}

export interface JobProgress {
  sent: number;
  virtualMs: number;
  /** Fraction of the trace read (or of maxRequests sent), when it can be known. */
  fraction: number | undefined;
}

export async function runPolicyJob(job: PolicyJob, onProgress?: (p: JobProgress) => void): Promise<JobResult> {
  const trace = await openTraceSpec(job.trace);
  const { maxRequests } = job.options;
  const folder = job.outDir === undefined ? null : await ResultsFolder.create(join(job.outDir, job.options.policy));
  const { blockSize, numBlocks } = job.options.engine;
  const bounds = job.bound ? [new SharedCacheBound(blockSize), new SharedCacheBound(blockSize, job.options.engines * numBlocks)] : null;
  const run = await simulatePolicy(trace, {
    ...job.options,
    ...(bounds !== null ? { bounds } : {}),
    ...(folder !== null ? { onResult: (r) => folder.write(r) } : {}),
    ...(onProgress !== undefined
      ? { onProgress: (sent, virtualMs) => onProgress({ sent, virtualMs, fraction: maxRequests !== undefined ? sent / maxRequests : trace.progress() }) }
      : {}),
  });
  if (folder !== null) await folder.finish(run.summary);
  const r = trace.report;
  return {
    report: policyReport(run),
    trace: { name: trace.name, format: r.format, records: r.records, bad_lines: r.badLines },
    bounds: bounds === null ? null : { unbounded: bounds[0]!.result(), fleet: bounds[1]!.result() },
  };
}
