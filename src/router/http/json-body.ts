import { nextTurn } from "../../util/next-turn.js";
import { ApiError } from "./errors.js";

/** Bodies above this size are decoded and parsed in two turns of the event loop (see `readJson`). */
const TWO_TURNS_BYTES = 1 << 20;

/** A request body's JSON, or the 400 that says why it is not JSON. */
export function parseJsonBody(raw: Buffer): unknown {
  return parseJsonText(raw.toString("utf8"));
}

/**
 * The same on the main thread: decoding and parsing a body of megabytes each hold the thread for a while,
 * so other requests get a turn between the two.
 */
export async function readJson(raw: Buffer): Promise<unknown> {
  if (raw.length <= TWO_TURNS_BYTES) return parseJsonBody(raw);
  const text = raw.toString("utf8");
  await nextTurn();
  return parseJsonText(text);
}

function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, `the request body is not valid JSON: ${(err as Error).message}`, "invalid_request_error", "body", "invalid_json");
  }
}
