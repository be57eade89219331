// A disaggregated request, once the routing core has planned it split (schedule/routing-core.ts): the
// prefill stage, then the decode stage, each an ordinary attempt (send.ts) retried within its pool by the
// retry wrapper (retry.ts). Deciding stays in the routing core; this module only sends and passes along.
//
// 1. Prefill: the prompt with max_tokens 1, kv_transfer_params {do_remote_decode: true} and the prefill
//    overlap, on the prefill engine decided by the plan. Its finish carries the engine's kv_transfer_params
//    and its cached-token count. Its one token is dropped, as vLLM's disaggregated proxy drops it: the
//    decode engine computes the last prompt token itself and samples the first token the client sees, so
//    the answer's tokens, text and completion count are the decode engine's alone. min_tokens is left out
//    (vLLM refuses it above max_tokens); the rest of the sampling goes as asked.
// 2. Decode: decided over the decode pool when the prefill has finished (by load and decode-side overlap),
//    sent with the returned kv_transfer_params and the full output budget; its events stream to the client.
//    The start carries the prefill engine and its overlap, and the answer's cached tokens follow the
//    disaggregated rule (RoutingCore.settleSplit).
//
// Failures: a prefill engine that fails before answering is retried on another prefill engine; when the
// prefill stage cannot be done (no prefill engine left, or it kept failing), the request is prefilled
// locally on a decode engine (degraded), since the client has seen nothing yet. A prefill engine that
// returns no kv_transfer_params (no KV connector configured) leaves the decode engine to prefill locally.
// A decode that fails before its first token is retried on another decode engine with the same
// kv_transfer_params (the prefill engine holds the blocks until pulled or expired); after it, the request
// ends with an error. A client that leaves aborts whichever stage is running. Every attempt's booking is
// released by sendAttempt, whatever way it ends.
import type { FinishEvent, KvTransferParams } from "../../engine-protocol/index.js";
import { isEngineFailure, type Attempt, type CachedTokens, type Decision, type RoutablePrompt, type RoutingCore, type Stage } from "../schedule/index.js";
import type { GenerationEvent } from "../types.js";
import { withRetry } from "./retry.js";
import { sendAttempt, type Job, type Target } from "./send.js";
import type { AbortSignalLike } from "../../util/abort.js";

type ErrorEvent = Extract<GenerationEvent, { type: "error" }>;

/** What happens along the way, for the router's log and metrics. */
export type SplitNotice =
  | { kind: "sent"; stage: Stage; attempt: Attempt }
  | { kind: "retried"; stage: Stage; failed: Attempt; failure: ErrorEvent }
  /** The prefill stage could not be done: the request is prefilled on a decode engine. */
  | { kind: "prefill_unavailable"; reason: string }
  /** The prefill engine returned no kv_transfer_params: the decode engine prefills locally. */
  | { kind: "no_transfer_params"; prefill: Attempt }
  | { kind: "kv_transfer_failed"; prefill: Attempt; decode: Attempt }
  | { kind: "decode_failed"; decode: Attempt | null; failure: ErrorEvent }
  | { kind: "aborted"; stage: Stage };

export interface SplitContext {
  core: RoutingCore;
  prompt: RoutablePrompt;
  job: Job;
  /** Where an attempt on this engine is sent; called once per attempt, as it is sent. */
  target: (engine: number) => Target;
  signal: AbortSignalLike;
  /** The whole request on a decode engine (the router's ordinary path), for the degraded case. */
  whole: (decision: Decision) => AsyncIterable<GenerationEvent>;
  notice: (n: SplitNotice) => void;
}

/** Runs a split request whose prefill attempt the plan decided. */
export async function* splitRequest(c: SplitContext, prefillDecision: Decision): AsyncGenerator<GenerationEvent> {
  const { core, prompt, job, signal } = c;
  const prefill = await runPrefill(c, prefillDecision);
  if (signal.aborted || prefill.kind === "aborted") {
    if (signal.aborted) c.notice({ kind: "aborted", stage: "prefill" });
    return;
  }
  if (prefill.kind === "failed") {
    if (!isEngineFailure(prefill.failure.code)) {
      yield prefill.failure; // the request's own fault (an engine's 4xx): no other engine would take it
      return;
    }
    c.notice({ kind: "prefill_unavailable", reason: prefill.failure.message });
    const local = core.decide(prompt, undefined, "whole");
    if (!local) {
      yield { type: "error", code: "engine_unavailable", message: "the prefill failed and no decode engine is available to prefill locally" };
      return;
    }
    yield* asLocal(c.whole(local));
    return;
  }
  if (prefill.params === null) c.notice({ kind: "no_transfer_params", prefill: prefill.attempt });
  const decision = core.decide(prompt, undefined, "decode");
  if (!decision) {
    const failure: ErrorEvent = { type: "error", code: "engine_unavailable", message: "the prompt is prefilled, but no decode engine is available" };
    c.notice({ kind: "decode_failed", decode: null, failure });
    yield failure;
    return;
  }
  const decodeJob: Job = prefill.params === null ? job : { ...job, kvTransferParams: prefill.params };
  let decode: Attempt | null = null;
  let raw: FinishEvent | null = null;
  let ended = false;
  const send = (attempt: Attempt) => {
    decode = attempt;
    c.notice({ kind: "sent", stage: "decode", attempt });
    return sendAttempt(core, attempt, c.target(attempt.engine), decodeJob, signal, (finish) => (raw = finish));
  };
  const prefillName = prefill.sentTo.name;
  try {
    for await (const event of withRetry(core, () => core.begin(decision, prompt), prompt, send, signal, (failed, _next, failure) => c.notice({ kind: "retried", stage: "decode", failed, failure }))) {
      if (event.type === "start") {
        yield { ...event, prefillEngine: prefillName, overlapBlocks: prefill.attempt.overlapBlocks, cachedTokensSource: prefill.cached.source };
      } else if (event.type === "finish") {
        ended = true;
        const settled = core.settleSplit({ engine: prefill.attempt.engine, cached: prefill.cached }, decode!, (raw as FinishEvent | null)?.usage.cachedTokens ?? null, prompt.promptTokens);
        if (settled.failed && prefill.params !== null) c.notice({ kind: "kv_transfer_failed", prefill: prefill.attempt, decode: decode! });
        yield { ...event, usage: { ...event.usage, cachedTokens: settled.cachedTokens, cachedTokensSource: settled.source } };
      } else if (event.type === "error") {
        ended = true;
        c.notice({ kind: "decode_failed", decode, failure: event });
        yield event;
      } else {
        yield event;
      }
    }
  } finally {
    // Also when the consumer closes this generator at a yield (the client left while a token was on its way).
    if (!ended && signal.aborted) c.notice({ kind: "aborted", stage: "decode" });
  }
}

type PrefillResult =
  | { kind: "done"; attempt: Attempt; sentTo: Target; cached: CachedTokens; params: KvTransferParams | null }
  | { kind: "failed"; failure: ErrorEvent }
  | { kind: "aborted" };

async function runPrefill(c: SplitContext, decision: Decision): Promise<PrefillResult> {
  const { core, prompt, job, signal } = c;
  const prefillJob: Job = {
    ...job,
    sampling: { ...job.sampling, minTokens: 0 },
    maxTokens: 1,
    kvTransferParams: { do_remote_decode: true },
  };
  let attempt: Attempt | null = null;
  let sentTo: Target | null = null;
  let params: KvTransferParams | null = null;
  const send = (a: Attempt) => {
    attempt = a;
    sentTo = c.target(a.engine);
    c.notice({ kind: "sent", stage: "prefill", attempt: a });
    return sendAttempt(core, a, sentTo, prefillJob, signal, (finish) => (params = finish.kvTransferParams ?? null));
  };
  for await (const event of withRetry(core, () => core.begin(decision, prompt), prompt, send, signal, (failed, _next, failure) => c.notice({ kind: "retried", stage: "prefill", failed, failure }))) {
    if (event.type === "finish") return { kind: "done", attempt: attempt!, sentTo: sentTo!, cached: { cachedTokens: event.usage.cachedTokens, source: event.usage.cachedTokensSource }, params };
    if (event.type === "error") return { kind: "failed", failure: event };
  }
  return { kind: "aborted" };
}

/** A whole request on a decode engine in a disaggregated fleet: it computed the prompt itself. */
export async function* asLocal(events: AsyncIterable<GenerationEvent>): AsyncGenerator<GenerationEvent> {
  for await (const event of events) yield event.type === "start" ? { ...event, prefillEngine: event.engine } : event;
}
