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
  const row = text.split(",");
  for (let i = 0; i < row.length; i++) {
    const cell = row[i]!;
    // Most cells are bare: only trim and unquote the ones that need it.
    const first = cell.charCodeAt(0);
    if (first <= 32 || first === 34 || cell.charCodeAt(cell.length - 1) <= 32) {
      const trimmed = cell.trim();
      row[i] = trimmed.length >= 2 && trimmed.startsWith('"') && trimmed.endsWith('"') ? trimmed.slice(1, -1) : trimmed;
    }
  }
  return row;
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

/** The digits of text[from, to) as a number; NaN if any is not a digit. */
function digitsAt(text: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = text.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return Number.NaN;
    n = n * 10 + d;
  }
  return n;
}

// Consecutive rows nearly always share their date: its Date.UTC is computed once.
let cachedDay = -1;
let cachedDayMs = 0;

/**
 * Milliseconds since the epoch (fractional), or undefined when `text` is not a timestamp of either layout:
 * `YYYY-MM-DD HH:MM:SS` (or `T`), an optional fraction of up to 9 digits, an optional `Z` or `+HH:MM` zone.
 * Read by position rather than by regular expression: week-long traces have tens of millions of rows.
 */
export function parseAzureTimestamp(text: string): number | undefined {
  const sep = text[10];
  if (text.length < 19 || text[4] !== "-" || text[7] !== "-" || (sep !== " " && sep !== "T") || text[13] !== ":" || text[16] !== ":") return undefined;
  const year = digitsAt(text, 0, 4);
  const month = digitsAt(text, 5, 7);
  const day = digitsAt(text, 8, 10);
  const hour = digitsAt(text, 11, 13);
  const minute = digitsAt(text, 14, 16);
  const second = digitsAt(text, 17, 19);
  if (!(month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour <= 23 && minute <= 59 && second <= 60) || Number.isNaN(year)) return undefined;
  let at = 19;
  let fractionMs = 0;
  if (text[at] === ".") {
    let end = at + 1;
    while (end < text.length && end - at <= 9 && text.charCodeAt(end) >= 48 && text.charCodeAt(end) <= 57) end++;
    if (end === at + 1) return undefined;
    fractionMs = (digitsAt(text, at + 1, end) / 10 ** (end - at - 1)) * 1000;
    at = end;
  }
  let offsetMs = 0;
  if (at < text.length) {
    const sign = text[at];
    if (sign === "Z" && at + 1 === text.length) {
      at++;
    } else if (sign === "+" || sign === "-") {
      const colon = text[at + 3] === ":" ? 1 : 0;
      if (text.length !== at + 5 + colon) return undefined;
      const minutes = digitsAt(text, at + 1, at + 3) * 60 + digitsAt(text, at + 3 + colon, at + 5 + colon);
      if (Number.isNaN(minutes)) return undefined;
      offsetMs = (sign === "+" ? 1 : -1) * minutes * 60_000;
    } else {
      return undefined;
    }
  }
  const dayKey = (year * 100 + month) * 100 + day;
  if (dayKey !== cachedDay) {
    cachedDay = dayKey;
    cachedDayMs = Date.UTC(year, month - 1, day);
  }
  return cachedDayMs + ((hour * 60 + minute) * 60 + second) * 1000 + fractionMs - offsetMs;
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
  if (cell === undefined || cell.length === 0 || cell.length > 15) return cell;
  const negative = cell.charCodeAt(0) === 45;
  if (negative && cell.length === 1) return cell;
  const value = digitsAt(cell, negative ? 1 : 0, cell.length);
  return Number.isNaN(value) ? cell : negative ? -value : value;
}
