// A worker thread that runs one policy job and posts its progress and report.
import { parentPort, workerData } from "node:worker_threads";
import { runPolicyJob, type JobProgress, type JobResult, type PolicyJob } from "./policy-job.js";

export type WorkerMessage = { type: "progress"; progress: JobProgress } | { type: "done"; result: JobResult };

const port = parentPort!;
const result = await runPolicyJob(workerData as PolicyJob, (progress) => port.postMessage({ type: "progress", progress } satisfies WorkerMessage));
port.postMessage({ type: "done", result } satisfies WorkerMessage);
