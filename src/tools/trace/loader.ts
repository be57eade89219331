// Streaming trace loader: format detection, per-line validation, ordering, bad-line report.
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { DEFAULT_AZURE_COLUMNS, parseAzureHeader, parseAzureRow, type AzureColumns } from "./azure.js";
import { bad, type ParsedRow } from "./fields.js";
import { readLines } from "./lines.js";
import { parseMooncakeLine } from "./mooncake.js";
import { emptyReport, TraceError, type BadLine, type TraceRecord, type TraceReport, type TraceSource } from "./types.js";

export interface OpenTraceOptions {
  /** "auto" (default) looks at the first line: a JSON object is Mooncake, a CSV header naming ContextTokens is Azure. */
  format?: "auto" | "mooncake" | "azure";
  /** Block size of Mooncake `hash_ids`; default 512 (Mooncake's). Use 16 for traces recorded at vLLM's block size. */
  blockSize?: number;
  /** Stop at the first bad line with a `TraceError`; otherwise bad lines are skipped and counted. */
  strict?: boolean;
  /** Called for every bad line (also in strict mode, before the error is thrown). */
  onBadLine?: (bad: BadLine) => void;
  /** How many bad lines the report keeps in full; default 100. All are counted. */
  maxKeptBadLines?: number;
  /** Longer lines are reported as bad without being buffered; default 16 MiB. */
  maxLineBytes?: number;
}

export const MOONCAKE_BLOCK_SIZE = 512;
const DEFAULT_MAX_LINE_BYTES = 16 << 20;
const SNIFF_BYTES = 64 << 10;

/** Opens a trace file (plain or gzip-compressed) and detects its format; records are read on iteration. */
export async function openTrace(path: string, options: OpenTraceOptions = {}): Promise<TraceSource> {
  const blockSize = options.blockSize ?? MOONCAKE_BLOCK_SIZE;
  if (!Number.isSafeInteger(blockSize) || blockSize < 1) throw new RangeError(`block size must be a positive integer, got ${blockSize}`);
  const size = (await stat(path)).size;
  const gzip = await isGzip(path);
  const format = options.format === undefined || options.format === "auto" ? await detectFormat(path, gzip) : options.format;
  return new FileTrace(path, format, format === "mooncake" ? blockSize : undefined, size, gzip, options);
}

async function isGzip(path: string): Promise<boolean> {
  const file = await open(path, "r");
  try {
    const head = Buffer.alloc(2);
    const { bytesRead } = await file.read(head, 0, 2, 0);
    return bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await file.close();
  }
}

async function detectFormat(path: string, gzip: boolean): Promise<"mooncake" | "azure"> {
  const stream = fileStream(path, gzip).stream;
  let first: string | undefined;
  try {
    outer: for await (const batch of readLines(stream, SNIFF_BYTES)) {
      for (const line of batch) {
        const text = line.text === null ? "" : stripBom(line.text).trim();
        if (text !== "") {
          first = text;
          break outer;
        }
      }
    }
  } finally {
    stream.destroy();
  }
  if (first === undefined) throw new Error(`${path}: the trace is empty, so its format cannot be told; pass the format explicitly`);
  if (first.startsWith("{")) return "mooncake";
  if (parseAzureHeader(first) !== undefined) return "azure";
  throw new Error(
    `${path}: unknown trace format (first line starts ${JSON.stringify(first.slice(0, 60))}); expected Mooncake JSONL ` +
      `(a JSON object a line) or an Azure CSV with a TIMESTAMP,ContextTokens,GeneratedTokens header`,
  );
}

function fileStream(path: string, gzip: boolean): { stream: Readable; bytesRead: () => number } {
  const raw = createReadStream(path, { highWaterMark: 256 << 10 });
  if (!gzip) return { stream: raw, bytesRead: () => raw.bytesRead };
  const inflated = createGunzip();
  raw.on("error", (err) => inflated.destroy(err));
  inflated.on("close", () => raw.destroy());
  return { stream: raw.pipe(inflated), bytesRead: () => raw.bytesRead };
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

class FileTrace implements TraceSource {
  report: TraceReport;
  #bytesRead: () => number = () => 0;

  constructor(
    readonly name: string,
    readonly format: "mooncake" | "azure",
    readonly blockSize: number | undefined,
    readonly size: number,
    private readonly gzip: boolean,
    private readonly options: OpenTraceOptions,
  ) {
    this.report = emptyReport(format);
  }

  progress(): number | undefined {
    return this.size > 0 ? Math.min(1, this.#bytesRead() / this.size) : undefined;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<TraceRecord> {
    const report = (this.report = emptyReport(this.format));
    const { strict = false, onBadLine, maxKeptBadLines = 100, maxLineBytes = DEFAULT_MAX_LINE_BYTES } = this.options;
    const reject = (b: BadLine): void => {
      report.badLines++;
      report.byKind[b.kind] = (report.byKind[b.kind] ?? 0) + 1;
      if (report.firstBadLines.length < maxKeptBadLines) report.firstBadLines.push(b);
      onBadLine?.(b);
      if (strict) throw new TraceError(this.name, b);
    };
    const parseLine = this.#lineParser();
    const { stream, bytesRead } = fileStream(this.name, this.gzip);
    this.#bytesRead = bytesRead;
    let origin: number | undefined;
    let previous = -Infinity;
    let previousLine = 0;
    try {
      for await (const batch of readLines(stream, maxLineBytes)) {
        for (const { number, text } of batch) {
          if (text === null) {
            reject(bad(number, "too-long", `line longer than ${maxLineBytes} bytes`));
            continue;
          }
          const clean = number === 1 ? stripBom(text) : text;
          if (clean.trim() === "") continue;
          const row = parseLine(clean, number);
          if (row === undefined) continue;
          if ("kind" in row) {
            reject(row);
            continue;
          }
          if (row.timeMs < previous) {
            reject(bad(number, "out-of-order", `timestamp is ${Number((previous - row.timeMs).toFixed(3))} ms earlier than that of line ${previousLine}`));
            continue;
          }
          previous = row.timeMs;
          previousLine = number;
          origin ??= row.timeMs;
          report.records++;
          const record: TraceRecord = { line: number, timestampMs: row.timeMs - origin, inputLength: row.inputLength, outputLength: row.outputLength };
          if (row.hashIds !== undefined) record.hashIds = row.hashIds;
          yield record;
        }
      }
    } finally {
      stream.destroy();
    }
  }

  /** A parser for one pass: undefined for a line that carries no record (the CSV header). */
  #lineParser(): (text: string, line: number) => ParsedRow | BadLine | undefined {
    if (this.format === "mooncake") {
      const blockSize = this.blockSize ?? MOONCAKE_BLOCK_SIZE;
      return (text, line) => parseMooncakeLine(text, line, blockSize);
    }
    let columns: AzureColumns | undefined;
    return (text, line) => {
      if (columns === undefined) {
        const header = parseAzureHeader(text);
        columns = header ?? DEFAULT_AZURE_COLUMNS;
        if (header !== undefined) return undefined;
      }
      return parseAzureRow(text, line, columns);
    };
  }
}

/** Every record of a (small) trace, in order. */
export async function readAll(source: AsyncIterable<TraceRecord>): Promise<TraceRecord[]> {
  const records: TraceRecord[] = [];
  for await (const record of source) records.push(record);
  return records;
}
