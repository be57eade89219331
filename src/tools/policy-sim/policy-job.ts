// One policy's run as a job with plain-data input and output, the same in this thread or a worker's:
// it opens the trace, runs the simulation, and writes the policy's results folder when asked.
import { join } from "node:path";
import { ResultsFolder } from "../replay/results.js";
import { SharedCacheBound, type CacheBound } from "./bound.js";
import { policyReport, type PolicyReport, type TraceFigures } from "./report.js";
import { simulatePolicy, type SimulationOptions } from "./run.js";
import { openTraceSpec, type TraceSpec } from "./trace-spec.js";

export type JobOptions = Omit<SimulationOptions, "onResult" | "onProgress" | "bound">;

export interface PolicyJob {
  trace: TraceSpec;
  options: JobOptions;
  /** When set, the policy's summary.json, requests.jsonl and report.html go to outDir/<policy>/. */
  outDir?: string;
  /** Also compute the shared-cache bound over the prompts (one job of a run is enough). */
  bound?: boolean;
}

export interface JobResult {
  report: PolicyReport;
  trace: TraceFigures;
  bound: CacheBound | null;
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
  const bound = job.bound ? new SharedCacheBound(job.options.engine.blockSize) : null;
  const run = await simulatePolicy(trace, {
    ...job.options,
    ...(bound !== null ? { bound } : {}),
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
    bound: bound?.result() ?? null,
  };
}
