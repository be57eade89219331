// Mooncake JSONL: one object a line, `timestamp` (ms from trace start), `input_length`, `output_length`,
// `hash_ids` (prefix-chained ids of `blockSize`-token blocks).
import { bad, hashIdsProblem, lengthProblem, show, type ParsedRow } from "./fields.js";
import type { BadLine } from "./types.js";

export function parseMooncakeLine(text: string, line: number, blockSize: number): ParsedRow | BadLine {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return bad(line, "malformed", `not valid JSON (${(err as Error).message})`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return bad(line, "malformed", `expected a JSON object, got ${show(value)}`);
  }
  const row = value as Record<string, unknown>;
  const { timestamp, input_length: input, output_length: output, hash_ids: ids } = row;
  if (typeof timestamp !== "number" || !Number.isFinite(timestamp) || timestamp < 0) {
    return bad(line, "invalid-field", `timestamp must be a non-negative number of milliseconds, got ${show(timestamp)}`);
  }
  const problem = lengthProblem("input_length", input, 1) ?? lengthProblem("output_length", output, 0);
  if (problem !== undefined) return bad(line, "invalid-field", problem);
  const inputLength = input as number;
  const parsed: ParsedRow = { timeMs: timestamp, inputLength, outputLength: output as number };
  // A record without hash_ids is allowed: it is replayed with a prompt of its own.
  if (ids !== undefined) {
    const idProblem = hashIdsProblem(ids, inputLength, blockSize);
    if (idProblem !== undefined) return bad(line, idProblem.kind, idProblem.reason);
    parsed.hashIds = ids as number[];
  }
  return parsed;
}
