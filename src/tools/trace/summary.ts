// Figures of a whole trace, read in one streaming pass: what `kvroute replay --dry-run` prints.
import type { TraceReport, TraceSource } from "./types.js";

export interface TraceSummary {
  name: string;
  records: number;
  firstTimestampMs: number;
  lastTimestampMs: number;
  /** records / (last - first timestamp), per second; null for fewer than two distinct timestamps. */
  requestsPerSec: number | null;
  meanInputTokens: number;
  meanOutputTokens: number;
  maxInputTokens: number;
  maxOutputTokens: number;
  /** Present when records carry block ids: reuse with an unbounded cache, in timestamp order. */
  blocks?: {
    blockSize: number;
    references: number;
    /** References to a block an earlier reference already named. */
    repeats: number;
    distinct: number;
    /** repeats / references: the largest fraction of prompt blocks any cache could serve. */
    reuseRatio: number;
  };
  report: TraceReport;
}

export async function summarizeTrace(source: TraceSource): Promise<TraceSummary> {
  let records = 0;
  let first = 0;
  let last = 0;
  let input = 0;
  let output = 0;
  let maxInput = 0;
  let maxOutput = 0;
  let references = 0;
  let withIds = 0;
  const seen = new Set<number>();
  for await (const r of source) {
    if (records === 0) first = r.timestampMs;
    last = r.timestampMs;
    records++;
    input += r.inputLength;
    output += r.outputLength;
    maxInput = Math.max(maxInput, r.inputLength);
    maxOutput = Math.max(maxOutput, r.outputLength);
    if (r.hashIds !== undefined) {
      withIds++;
      references += r.hashIds.length;
      for (const id of r.hashIds) seen.add(id);
    }
  }
  const summary: TraceSummary = {
    name: source.name,
    records,
    firstTimestampMs: first,
    lastTimestampMs: last,
    requestsPerSec: last > first ? records / ((last - first) / 1000) : null,
    meanInputTokens: records > 0 ? input / records : 0,
    meanOutputTokens: records > 0 ? output / records : 0,
    maxInputTokens: maxInput,
    maxOutputTokens: maxOutput,
    report: source.report,
  };
  if (withIds > 0 && source.blockSize !== undefined) {
    const repeats = references - seen.size;
    summary.blocks = { blockSize: source.blockSize, references, repeats, distinct: seen.size, reuseRatio: references > 0 ? repeats / references : 0 };
  }
  return summary;
}
