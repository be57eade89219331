// Sending one attempt: the request goes to the attempt's engine, and what the engine reports moves the
// attempt (its booking) and becomes the router's generation events. A failure is reported as an error
// event and decided on by whoever drives the attempts (see retry.ts); this module never retries. An attempt
// the prefill gate holds (routing-core.ts) waits here until it may go, or until its client leaves. A long
// prompt taken back (take-back.ts) has its engine call aborted, and made again on the same engine when it
// is resumed; its client sees one stream.
import type { FinishEvent, KvTransferParams, SamplingOptions } from "../../engine-protocol/index.js";
import type { Attempt, RoutingCore } from "../schedule/index.js";
import type { GenerationEvent, Sampling } from "../types.js";
import { clientMessage } from "./client-message.js";
import type { Engine, GenerateRequest } from "./engine.js";
import type { AbortSignalLike } from "../../util/abort.js";
import { ResumableCall } from "./resumable-call.js";

/** What every attempt of a request sends. */
export interface Job {
  tokens: Uint32Array;
  sampling: Sampling;
  /** The output budget, already set. */
  maxTokens: number;
  cacheSalt: string | undefined;
  /** For the engine's KV connector (disaggregated serving): what a prefill asks, or what a decode pulls with. */
  kvTransferParams?: KvTransferParams;
}

/** The engine an attempt goes to, and how clients know it. */
export interface Target {
  name: string;
  engine: Engine;
}

/** `onFinish` sees the engine's own finish (its kv_transfer_params and raw count) before it is settled. */
export async function* sendAttempt(
  core: RoutingCore,
  attempt: Attempt,
  target: Target,
  job: Job,
  signal: AbortSignalLike,
  onFinish?: (finish: FinishEvent) => void,
): AsyncGenerator<GenerationEvent> {
  const promptTokens = job.tokens.length;
  const start = (): GenerationEvent => ({
    type: "start",
    engine: target.name,
    overlapBlocks: attempt.overlapBlocks,
    promptTokens,
    // Headers leave with the first token, before the engine's count exists: the source is predicted, and the
    // final usage carries the actual one.
    cachedTokensSource: core.expectedSource(attempt.engine),
  });
  let started = false;
  // TTFT counts from here, any time held included: the decision's prediction counts the prompts ahead.
  const sentAt = performance.now();
  let last = sentAt;
  // Only a long prompt can be taken back; the others call their engine with the client's signal.
  const calls = attempt.mayBeTakenBack ? new ResumableCall(signal) : null;
  try {
    // Not awaited when it is a plain true: most attempts go at once, and this is the hot path.
    const admission = admitted(attempt, signal, calls);
    if (admission !== true && !(await admission)) return;
    const request: GenerateRequest = {
      promptTokenIds: job.tokens,
      sampling: samplingOptions(job.sampling, job.maxTokens),
      overlapBlocks: attempt.overlapBlocks,
      ...(job.cacheSalt !== undefined ? { cacheSalt: job.cacheSalt } : {}),
      ...(job.kvTransferParams !== undefined ? { kvTransferParams: job.kvTransferParams } : {}),
    };
    for (;;) {
      const resumed = calls === null ? true : calls.resumed();
      if (resumed !== true && !(await resumed)) return;
      const call = calls === null ? signal : calls.start();
      const events = target.engine.generate(request, { signal: call, expectFirstTokenMs: attempt.decision.chosen.predictedTtftMs });
      for await (const event of events) {
        // Taken back: what the engine still sends for the aborted call is not the client's.
        if (calls?.tookBack(call)) break;
        if (event.type === "delta") {
          const now = performance.now();
          const tokens = event.tokenCount ?? event.tokenIds.length;
          if (!started) {
            started = true;
            attempt.firstToken(now - sentAt);
            // The first delta may carry more than the first token; only later deltas time the engine's steps.
            attempt.generated(tokens, null);
            yield start();
          } else {
            attempt.generated(tokens, now - last);
          }
          last = now;
          yield { type: "delta", text: event.text, tokenCount: tokens };
        } else if (event.type === "finish") {
          onFinish?.(event);
          if (!started) yield start();
          const cached = attempt.finish(event.usage.cachedTokens, event.usage.promptTokens);
          yield {
            type: "finish",
            finishReason: event.finishReason,
            usage: {
              promptTokens: event.usage.promptTokens,
              completionTokens: event.usage.completionTokens,
              cachedTokens: cached.cachedTokens,
              cachedTokensSource: cached.source,
            },
          };
          return;
        } else {
          const message = clientMessage(event.message, target.name);
          yield event.upstreamStatus === undefined ? { type: "error", code: event.code, message } : { type: "error", code: event.code, message, status: event.upstreamStatus };
          return;
        }
      }
      // The engine's stream ended without a final event: the client left, or the attempt was taken back
      // (and is sent again once resumed, which it may already be).
      if (calls === null || !calls.tookBack(call)) return;
    }
  } finally {
    // Finished, failed, aborted (the stream ends without a final event) or abandoned by the consumer.
    attempt.release();
    calls?.close();
  }
}

/**
 * True once the attempt may be sent: at once, or when the prefill gate releases it. False when the client
 * left first; the attempt is then released, which takes it out of the gate.
 */
function admitted(attempt: Attempt, signal: AbortSignalLike, calls: ResumableCall | null): boolean | Promise<boolean> {
  if (signal.aborted) return false;
  let wake: ((ok: boolean) => void) | null = null;
  if (attempt.admit(() => wake?.(true), calls?.handler)) return true;
  return new Promise<boolean>((resolve) => {
    const onAbort = () => {
      attempt.release();
      resolve(false);
    };
    wake = (ok) => {
      signal.removeEventListener("abort", onAbort);
      resolve(ok);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function samplingOptions(s: Sampling, maxTokens: number): SamplingOptions {
  const out: SamplingOptions = {
    maxTokens,
    temperature: s.temperature,
    topP: s.topP,
    topK: s.topK,
    ignoreEos: s.ignoreEos,
    minTokens: s.minTokens,
  };
  if (s.seed !== null) out.seed = s.seed;
  if (s.stop.length) out.stop = s.stop;
  if (s.stopTokenIds.length) out.stopTokenIds = s.stopTokenIds;
  return out;
}
