// The results folder of a run: summary.json, requests.jsonl (one line per request, written as they finish),
// and report.html.
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { renderReport } from "./report.js";
import type { RequestResult } from "./result.js";
import type { ReplaySummary } from "./stats.js";

export interface ResultFiles {
  dir: string;
  summary: string;
  requests: string;
  report: string;
}

/** `replay-results/<UTC time>`, to sort by time and not collide between runs. */
export function defaultResultsDir(now = new Date(), prefix = "replay-results"): string {
  return join(prefix, now.toISOString().replace(/\.\d+Z$/, "Z").replace(/:/g, "-"));
}

export class ResultsFolder {
  #stream: WriteStream;
  #error: Error | undefined;

  private constructor(readonly files: ResultFiles) {
    this.#stream = createWriteStream(files.requests, { flags: "w" });
    this.#stream.on("error", (err) => (this.#error ??= err));
  }

  static async create(dir: string): Promise<ResultsFolder> {
    await mkdir(dir, { recursive: true });
    return new ResultsFolder({ dir, summary: join(dir, "summary.json"), requests: join(dir, "requests.jsonl"), report: join(dir, "report.html") });
  }

  write(result: RequestResult): void {
    if (this.#error === undefined) this.#stream.write(`${JSON.stringify(result)}\n`);
  }

  /** Closes requests.jsonl and writes the summary and the report. */
  async finish(summary: ReplaySummary): Promise<ResultFiles> {
    await new Promise<void>((resolve) => this.#stream.end(resolve));
    if (this.#error !== undefined) throw new Error(`cannot write ${this.files.requests}: ${this.#error.message}`);
    await writeFile(this.files.summary, `${JSON.stringify(summary, null, 2)}\n`);
    await writeFile(this.files.report, renderReport(summary));
    return this.files;
  }
}
