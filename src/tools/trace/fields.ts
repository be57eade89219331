// Field checks shared by the trace parsers. Each returns a reason (for a bad-line report) or undefined.
import type { BadLine, BadLineKind } from "./types.js";

/** A record as parsed from one line, before its timestamp is made relative to the trace's first record. */
export interface ParsedRow {
  /** Milliseconds on the trace's own clock (from its start, or since the epoch). */
  timeMs: number;
  inputLength: number;
  outputLength: number;
  hashIds?: number[];
}

export function bad(line: number, kind: BadLineKind, reason: string): BadLine {
  return { line, kind, reason };
}

export function show(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (Array.isArray(value)) return "an array";
  if (value === null || typeof value !== "object") return String(value);
  return "an object";
}

export function lengthProblem(name: string, value: unknown, min: number): string | undefined {
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= min) return undefined;
  return `${name} must be an integer of at least ${min}, got ${show(value)}`;
}

/** Checks that a prefix-chained id list covers `inputLength` tokens in blocks of `blockSize`. */
export function hashIdsProblem(ids: unknown, inputLength: number, blockSize: number): { kind: BadLineKind; reason: string } | undefined {
  if (!Array.isArray(ids)) return { kind: "invalid-field", reason: `hash_ids must be an array of integers, got ${show(ids)}` };
  for (let i = 0; i < ids.length; i++) {
    const id: unknown = ids[i];
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0) {
      return { kind: "invalid-field", reason: `hash_ids[${i}] must be a non-negative integer, got ${show(id)}` };
    }
  }
  const want = Math.ceil(inputLength / blockSize);
  if (ids.length !== want) {
    return {
      kind: "hash-ids-mismatch",
      reason: `hash_ids has ${ids.length} ids, but input_length ${inputLength} at block size ${blockSize} needs ceil(${inputLength} / ${blockSize}) = ${want}`,
    };
  }
  return undefined;
}
