// Azure LLM inference traces, CSV `TIMESTAMP,ContextTokens,GeneratedTokens`.
// 2023 layout: `2023-11-16 18:15:46.6805900` (7 fraction digits, no zone).
// 2024 week-long layout: `2024-05-12 00:00:00.001163+00:00`, and `2024-05-12 00:00:00+00:00` on whole seconds.
// No prefix information: each record gets a prompt of its own.
import { bad, lengthProblem, show, type ParsedRow } from "./fields.js";
import type { BadLine } from "./types.js";

export interface AzureColumns {
  timestamp: number;
  context: number;
  generated: number;
  count: number;
}

/** Column order when a file has no header (only with an explicit `azure` format). */
export const DEFAULT_AZURE_COLUMNS: AzureColumns = { timestamp: 0, context: 1, generated: 2, count: 3 };

const HEADER_NAMES = { timestamp: "timestamp", context: "contexttokens", generated: "generatedtokens" } as const;

function cells(text: string): string[] {
  return text.split(",").map((cell) => {
    const trimmed = cell.trim();
    return trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"') ? trimmed.slice(1, -1) : trimmed;
  });
}

/** The columns a header line names, or undefined when the line is not a header naming all three. */
export function parseAzureHeader(text: string): AzureColumns | undefined {
  const names = cells(text).map((c) => c.toLowerCase());
  const columns = {
    timestamp: names.indexOf(HEADER_NAMES.timestamp),
    context: names.indexOf(HEADER_NAMES.context),
    generated: names.indexOf(HEADER_NAMES.generated),
    count: names.length,
  };
  return columns.timestamp < 0 || columns.context < 0 || columns.generated < 0 ? undefined : columns;
}

const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/;

/** Milliseconds since the epoch (fractional), or undefined when `text` is not a timestamp of either layout. */
export function parseAzureTimestamp(text: string): number | undefined {
  const m = TIMESTAMP.exec(text);
  if (m === null) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return undefined;
  let ms = Date.UTC(year, month - 1, day, hour, minute, second);
  if (m[7] !== undefined) ms += Number(`0.${m[7]}`) * 1000;
  const zone = m[8];
  if (zone !== undefined && zone !== "Z") {
    const digits = zone.replace(":", "");
    const offset = (Number(digits.slice(1, 3)) * 60 + Number(digits.slice(3, 5))) * 60_000;
    ms -= zone.startsWith("-") ? -offset : offset;
  }
  return ms;
}

export function parseAzureRow(text: string, line: number, columns: AzureColumns): ParsedRow | BadLine {
  const row = cells(text);
  if (row.length !== columns.count) {
    return bad(line, "malformed", `expected ${columns.count} comma-separated fields, got ${row.length}`);
  }
  const stamp = row[columns.timestamp] ?? "";
  const timeMs = parseAzureTimestamp(stamp);
  if (timeMs === undefined) {
    return bad(line, "invalid-field", `TIMESTAMP must look like 2023-11-16 18:15:46.6805900 or 2024-05-12 00:00:00.001163+00:00, got ${show(stamp)}`);
  }
  const input = integer(row[columns.context]);
  const output = integer(row[columns.generated]);
  const problem = lengthProblem("ContextTokens", input, 1) ?? lengthProblem("GeneratedTokens", output, 0);
  if (problem !== undefined) return bad(line, "invalid-field", problem);
  return { timeMs, inputLength: input as number, outputLength: output as number };
}

/** A decimal integer cell as a number; anything else stays a string so the error can show it. */
function integer(cell: string | undefined): number | string | undefined {
  if (cell === undefined || !/^-?\d+$/.test(cell)) return cell;
  return Number(cell);
}
