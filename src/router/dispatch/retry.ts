// Retry as a wrapper around sending, not code inside it: each attempt's events pass through, and a
// failure is held back and handed to the routing core's retry rule, which either books the next attempt
// on another engine or makes the failure final.
import type { Attempt, RoutablePrompt, RoutingCore } from "../schedule/index.js";
import type { GenerationEvent } from "../types.js";
import type { AbortSignalLike } from "../../util/abort.js";

export type SendOne = (attempt: Attempt) => AsyncIterable<GenerationEvent>;

type ErrorEvent = Extract<GenerationEvent, { type: "error" }>;

/** What a request whose stream found no engine to decide on yields. */
export const NO_ENGINE: ErrorEvent = { type: "error", code: "no_engine_available", message: "no engine is available: none is connected and healthy" };

/**
 * Runs a request: when the stream is first read (a generator's body runs only then) `first` gives its
 * first attempt, decided and booked in one go, so the next request's decision sees this one's load, and a
 * stream that is never read books nothing. Null: no engine (or, with the signal aborted, the client left
 * before it was decided). A promise when the decision waits for others made with it (decision-turn.ts).
 */
export async function* withRetry(
  core: RoutingCore,
  first: () => Attempt | null | Promise<Attempt | null>,
  prompt: RoutablePrompt,
  send: SendOne,
  signal: AbortSignalLike,
  onRetry: (failed: Attempt, next: Attempt, failure: ErrorEvent) => void,
): AsyncGenerator<GenerationEvent> {
  const pending = first();
  const begun = pending instanceof Promise ? await pending : pending;
  if (begun === null) {
    if (!signal.aborted) yield NO_ENGINE;
    return;
  }
  let attempt = begun;
  for (;;) {
    let started = false;
    let tokens = 0;
    let failure: ErrorEvent | null = null;
    for await (const event of send(attempt)) {
      if (event.type === "error") {
        failure = event;
        break;
      }
      if (event.type === "start") started = true;
      else if (event.type === "delta") tokens += event.tokenCount;
      yield event;
    }
    if (failure === null) return; // finished, or aborted (the stream ended without a final event)
    if (started) {
      // The client already has this engine's answer under way (its headers, maybe tokens): no other engine
      // can continue it.
      attempt.release();
      yield failure;
      return;
    }
    const outcome = core.retry(attempt, { code: failure.code, tokensProduced: tokens }, signal.aborted);
    if (outcome.kind === "final") {
      yield failure;
      return;
    }
    if (outcome.kind === "no_engine") {
      yield { type: "error", code: "engine_unavailable", message: "the engine failed before answering and no other engine is available" };
      return;
    }
    onRetry(attempt, outcome.attempt, failure);
    attempt = outcome.attempt;
  }
}
