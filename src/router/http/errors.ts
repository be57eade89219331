// OpenAI-shaped errors: `{"error": {"message", "type", "param", "code"}}` with an HTTP status. HTTP
// statuses are decided here, from the router's error kinds and the engines' error codes.
import { RouterError, type RouterErrorKind } from "../types.js";

export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "not_found_error"
  | "service_unavailable_error"
  | "server_error";

export class ApiError extends Error {
  /**
   * Set when the connection cannot carry another request after this answer (its framing is unknown, or
   * the rest of its body is still arriving): the answer goes out, then the connection is closed.
   */
  closeConnection = false;

  constructor(
    readonly status: number,
    message: string,
    readonly type: ErrorType = "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }

  /** The same error, answered and then the connection closed. */
  closing(): this {
    this.closeConnection = true;
    return this;
  }

  toBody(): { error: { message: string; type: ErrorType; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const KIND_STATUS: Record<RouterErrorKind, { status: number; type: ErrorType }> = {
  invalid_request: { status: 400, type: "invalid_request_error" },
  not_found: { status: 404, type: "not_found_error" },
  unavailable: { status: 503, type: "service_unavailable_error" },
};

/** Any error thrown while serving a request, as the error the client gets. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof RouterError) {
    const { status, type } = KIND_STATUS[err.kind];
    return new ApiError(status, err.message, type, err.param, err.code);
  }
  return new ApiError(500, `internal error: ${(err as Error)?.message ?? String(err)}`, "server_error", null, "internal_error");
}

/** A failed generation (an engine error code, or the router's), as the error the client gets. */
export function generationError(code: string, message: string, upstreamStatus?: number): ApiError {
  const status = generationErrorStatus(code, upstreamStatus);
  return new ApiError(status, message, status >= 500 ? "server_error" : "invalid_request_error", null, code);
}

/**
 * Codes the engine uses for a request it refuses are the client's fault; the rest are the engine's. An HTTP
 * engine's own 4xx reaches the client as it is.
 */
export function generationErrorStatus(code: string, upstreamStatus?: number): number {
  if (upstreamStatus !== undefined && upstreamStatus >= 400 && upstreamStatus < 500) return upstreamStatus;
  if (code === "invalid_request" || code === "prompt_too_long" || code === "unknown_lora" || code === "frame_too_large") return 400;
  if (code === "engine_unavailable" || code === "no_engine_available") return 503;
  if (code === "internal_error") return 500;
  return 502;
}

/** A 400 about one request field. */
export function badField(param: string, message: string, code = "invalid_value"): ApiError {
  return new ApiError(400, message, "invalid_request_error", param, code);
}

export const STATUS_TEXT: Record<number, string> = {
  200: "200 OK",
  400: "400 Bad Request",
  401: "401 Unauthorized",
  404: "404 Not Found",
  405: "405 Method Not Allowed",
  408: "408 Request Timeout",
  413: "413 Payload Too Large",
  415: "415 Unsupported Media Type",
  422: "422 Unprocessable Entity",
  429: "429 Too Many Requests",
  500: "500 Internal Server Error",
  502: "502 Bad Gateway",
  503: "503 Service Unavailable",
};

export function statusLine(status: number): string {
  return STATUS_TEXT[status] ?? `${status}`;
}
