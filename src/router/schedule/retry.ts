// The retry rule: a request is tried again, once, on another engine, when its engine failed before
// producing any token. After the first token the client has seen output from that engine, and a second
// engine would sample a different continuation; an abort or a refusal of the request itself is final.

/** Attempts a request gets in all: the first, and one retry. */
export const MAX_ATTEMPTS = 2;

/** Error codes that are failures of the engine rather than of the request. */
const ENGINE_FAILURES = new Set(["engine_disconnected", "engine_unavailable", "engine_dead", "engine_error"]);

export interface Failure {
  code: string;
  /** Output tokens the failed attempt had produced. */
  tokensProduced: number;
}

/** Whether an error code is a failure of the engine rather than of the request. */
export function isEngineFailure(code: string): boolean {
  return ENGINE_FAILURES.has(code);
}

/** Whether attempt number `attempt` (0 for the first) that ended in `failure` is tried again elsewhere. */
export function shouldRetry(failure: Failure, attempt: number, aborted: boolean): boolean {
  return !aborted && attempt + 1 < MAX_ATTEMPTS && failure.tokensProduced === 0 && isEngineFailure(failure.code);
}
