// The trace model shared by the load generator (`kvroute replay`) and the offline simulator.

/** One request of a trace. */
export interface TraceRecord {
  /** 1-based line of the file it came from (the header is line 1 of a CSV); position for generated workloads. */
  line: number;
  /** Arrival time in milliseconds from the trace's first record (may be fractional). */
  timestampMs: number;
  /** Prompt length in tokens, at least 1. */
  inputLength: number;
  /** Tokens to generate, at least 0. */
  outputLength: number;
  /**
   * Prefix-chained block ids (Mooncake): equal ids at the same position mean equal blocks and equal prefixes.
   * `hashIds.length === ceil(inputLength / blockSize)`, the last block cut short when the length is not a
   * multiple. Absent when the trace has no prefix information.
   */
  hashIds?: number[];
}

export type TraceFormat = "mooncake" | "azure" | "shared-prefix";

/** Why a line was rejected. */
export type BadLineKind = "malformed" | "invalid-field" | "out-of-order" | "hash-ids-mismatch" | "too-long";

export interface BadLine {
  line: number;
  kind: BadLineKind;
  reason: string;
}

/** What one pass over a trace found. Live while the pass runs, complete once it ends. */
export interface TraceReport {
  format: TraceFormat;
  records: number;
  badLines: number;
  byKind: Partial<Record<BadLineKind, number>>;
  /** The first bad lines (at most `maxKeptBadLines`), in file order. */
  firstBadLines: BadLine[];
}

/**
 * A trace: an async iterable of records, read lazily so that traces of any size stream through bounded
 * memory. Every iteration is a new pass from the start (a file is reopened) and resets `report`.
 */
export interface TraceSource extends AsyncIterable<TraceRecord> {
  readonly format: TraceFormat;
  /** The block size `hashIds` refer to; undefined when the trace carries no prefix information. */
  readonly blockSize: number | undefined;
  /** Where it comes from, for messages: a file path or a workload description. */
  readonly name: string;
  readonly report: TraceReport;
  /** Fraction of the input consumed by the current pass, from 0 to 1, when it can be known. */
  progress(): number | undefined;
}

/** A bad line met while reading with `strict`. */
export class TraceError extends Error {
  constructor(
    readonly source: string,
    readonly bad: BadLine,
  ) {
    super(`${source}:${bad.line}: ${bad.reason}`);
    this.name = "TraceError";
  }
}

export function emptyReport(format: TraceFormat): TraceReport {
  return { format, records: 0, badLines: 0, byKind: {}, firstBadLines: [] };
}
