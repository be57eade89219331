// A worker thread that runs one policy job and posts its progress and report.
import { parentPort, workerData } from "node:worker_threads";
import { runPolicyJob, type JobProgress, type PolicyJob } from "./policy-job.js";
import type { PolicyReport } from "./report.js";

export type WorkerMessage = { type: "progress"; progress: JobProgress } | { type: "done"; report: PolicyReport };

const port = parentPort!;
const report = await runPolicyJob(workerData as PolicyJob, (progress) => port.postMessage({ type: "progress", progress } satisfies WorkerMessage));
port.postMessage({ type: "done", report } satisfies WorkerMessage);
