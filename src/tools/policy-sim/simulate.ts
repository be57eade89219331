// Several policies over one trace, each on a fresh fleet and a fresh index with the same trace, settings
// and seed, so their figures compare like with like; up to `jobs` of them at once in worker threads. The
// first policy's run also computes the shared-cache bound, from the prompt hashes it makes anyway.
import { Worker } from "node:worker_threads";
import { DEFAULT_EVICTION_WEIGHT, type PolicyName } from "../../router/schedule/index.js";
import { distFile } from "../../util/package-root.js";
import { DEFAULT_APPROX_TTL_MS } from "./run.js";
import { runPolicyJob, type JobOptions, type JobProgress, type JobResult, type PolicyJob } from "./policy-job.js";
import { boundReport, type PolicyReport, type SimulationReport } from "./report.js";
import type { TraceSpec } from "./trace-spec.js";
import type { WorkerMessage } from "./worker.js";

export interface SimulateOptions extends Omit<JobOptions, "policy"> {
  policies: readonly PolicyName[];
  /** Policies simulated at once, each in a worker thread of its own; 1 (default) runs them here, one by one. */
  jobs?: number;
  outDir?: string;
  onProgress?: (policy: PolicyName, progress: JobProgress) => void;
  onPolicyDone?: (report: PolicyReport) => void;
}

export async function simulate(spec: TraceSpec, o: SimulateOptions): Promise<SimulationReport> {
  const wallStart = performance.now();
  const { policies, jobs = 1, outDir, onProgress, onPolicyDone, ...options } = o;
  if (policies.length === 0) throw new RangeError("give at least one policy");
  if (!Number.isSafeInteger(jobs) || jobs < 1) throw new RangeError(`jobs must be a positive integer, got ${jobs}`);
  const workers = new Set<Worker>();
  const runOne = async (i: number): Promise<JobResult> => {
    const policy = policies[i]!;
    const job: PolicyJob = { trace: spec, options: { ...options, policy }, bound: i === 0, ...(outDir !== undefined ? { outDir } : {}) };
    const progress = onProgress && ((p: JobProgress) => onProgress(policy, p));
    const result = jobs === 1 ? await runPolicyJob(job, progress) : await inWorker(job, progress, workers);
    onPolicyDone?.(result.report);
    return result;
  };

  const results = new Array<JobResult>(policies.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < policies.length) {
      const i = next++;
      results[i] = await runOne(i);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(jobs, policies.length) }, lane));
  } catch (err) {
    // One failure ends the run: the other policies' threads are stopped rather than left to finish.
    for (const worker of workers) void worker.terminate();
    throw err;
  }
  const first = results[0]!;
  return {
    trace: first.trace,
    settings: {
      engines: options.engines,
      mode: (options.prefillEngines ?? 0) > 0 ? "disaggregated" : "aggregated",
      prefill_engines: options.prefillEngines ?? 0,
      decode_engines: (options.prefillEngines ?? 0) > 0 ? options.engines - options.prefillEngines! : 0,
      disagg_min_prefill_tokens: options.disaggMinPrefillTokens ?? 0,
      kv_transfer_gbps: options.engine.kvTransferGbps,
      engine_speeds: options.engineSpeeds ? options.engineSpeeds.join(",") : null,
      speedup: options.speedup ?? 1,
      kv_event_delay_ms: options.kvEventDelayMs ?? 0,
      kv_events: options.kvEvents ?? "events",
      approx_ttl_sec: (options.kvEvents ?? "events") === "none" ? (options.approxTtlMs ?? DEFAULT_APPROX_TTL_MS) / 1000 : null,
      seed: options.seed ?? 0,
      overlap_weight: options.overlapWeight ?? 1,
      eviction_weight: options.evictionWeight ?? DEFAULT_EVICTION_WEIGHT,
      temperature: options.temperature ?? 0,
      prefill_gate: options.prefillGate ?? true,
      decide_together: options.decideTogether ?? true,
      take_back: options.takeBack ?? true,
      max_requests: options.maxRequests ?? null,
      block_size: options.engine.blockSize,
      blocks: options.engine.numBlocks,
      max_num_seqs: options.engine.maxNumSeqs,
      max_num_batched_tokens: options.engine.maxNumBatchedTokens,
      max_model_len: options.engine.maxModelLen,
      step_overhead_ms: options.engine.timing.stepOverheadMs,
      prefill_ms_per_token: options.engine.timing.prefillMsPerToken,
      decode_ms_per_seq: options.engine.timing.decodeMsPerSeq,
      ms_per_kv_block: options.engine.timing.msPerKvBlock,
      jobs,
    },
    policies: results.map((r) => r.report),
    bound: boundReport(first.bounds!.unbounded),
    fleet_bound: boundReport(first.bounds!.fleet),
    wall_sec: (performance.now() - wallStart) / 1000,
  };
}

function inWorker(job: PolicyJob, onProgress: ((p: JobProgress) => void) | undefined, live: Set<Worker>): Promise<JobResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(distFile("src/tools/policy-sim/worker.js"), { workerData: job });
    live.add(worker);
    let result: JobResult | undefined;
    worker.on("message", (m: WorkerMessage) => {
      if (m.type === "progress") onProgress?.(m.progress);
      else result = m.result;
    });
    worker.once("error", reject);
    worker.once("exit", (code) => {
      live.delete(worker);
      if (result !== undefined) resolve(result);
      else reject(new Error(`the simulation of policy ${job.options.policy} stopped (worker exit code ${code})`));
    });
  });
}
