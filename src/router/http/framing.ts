// Where a request's body ends, checked before anything reads it. uWebSockets.js frames a body by the first
// Content-Length header and ignores any later one, so a request carrying two different lengths would be
// cut one way here and another way by a proxy in front of the router: the request-smuggling pattern. Such
// a request, or one whose length is not a plain number, is refused with a 400 and its connection closed,
// since where its body ends (and the next request begins) is unknown. Requests that uWS 20.30 refuses
// itself (a single Content-Length that is not a plain number, or one beside Transfer-Encoding) never reach
// this; the number check stays for a parser that lets them through.
import type { HttpRequest } from "uWebSockets.js";
import { ApiError } from "./errors.js";

const DIGITS = /^[0-9]+$/;

/** The request's declared body length (0 when it has none), or the error to answer it with. */
export function declaredLength(req: HttpRequest): number | ApiError {
  const values: string[] = [];
  req.forEach((key, v) => {
    if (key === "content-length") values.push(v);
  });
  if (values.length === 0) return 0;
  const value = values[0]!;
  const conflict = values.find((v) => v !== value);
  if (conflict !== undefined) {
    return badFraming(`the request has conflicting Content-Length headers (${JSON.stringify(value)} and ${JSON.stringify(conflict)})`);
  }
  if (!DIGITS.test(value)) return badFraming(`the request's Content-Length ${JSON.stringify(value)} is not a number of bytes`);
  return Number(value);
}

function badFraming(message: string): ApiError {
  return new ApiError(400, message, "invalid_request_error", null, "invalid_content_length").closing();
}
