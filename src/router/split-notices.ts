// What a disaggregated request meets on its way (dispatch/split.ts), logged and counted: retries within a
// stage, degraded local prefills, failed KV transfers, failed decodes, and clients that leave.
import type { Logger } from "pino";
import type { SplitNotice } from "./dispatch/split.js";
import type { RouterMetrics } from "./metrics/index.js";
import type { Attempt } from "./schedule/index.js";

export function splitNoticeReporter(metrics: RouterMetrics, log: Logger, engineName: (engine: number) => string, blockSize: () => number): (n: SplitNotice) => void {
  const name = (a: Attempt) => engineName(a.engine);
  return (n) => {
    switch (n.kind) {
      case "sent":
        // The prediction that matters is the prefill engine's: it computes the prompt.
        if (n.stage === "prefill") metrics.predicted(n.attempt.overlapBlocks * blockSize(), n.attempt.prompt.promptTokens);
        return;
      case "retried":
        metrics.retried();
        metrics.disaggregationFailure(n.stage, "retried");
        log.warn({ engine: name(n.failed), stage: n.stage, code: n.failure.code, reason: n.failure.message }, `${n.stage} engine failed before answering; retrying on another ${n.stage} engine`);
        return;
      case "prefill_unavailable":
        metrics.disaggregationFailure("prefill", "unavailable");
        log.warn({ reason: n.reason }, "no prefill engine could take the prompt: prefilling it on a decode engine (degraded)");
        return;
      case "no_transfer_params":
        metrics.disaggregationFailure("prefill", "no_transfer_params");
        log.warn({ engine: name(n.prefill) }, "the prefill engine returned no kv_transfer_params (is its KV connector configured?): the decode engine prefills the prompt itself");
        return;
      case "kv_transfer_failed":
        metrics.disaggregationFailure("decode", "kv_transfer_failed");
        log.warn({ engine: name(n.decode), prefillEngine: name(n.prefill) }, "the decode engine could not load the prefilled KV blocks and computed the prompt itself; cached_tokens are its own");
        return;
      case "decode_failed":
        metrics.disaggregationFailure("decode", "engine_failed");
        log.warn({ engine: n.decode ? name(n.decode) : null, code: n.failure.code, reason: n.failure.message }, "the decode stage failed");
        return;
      case "aborted":
        metrics.disaggregationFailure(n.stage, "aborted");
        log.info({ stage: n.stage }, `the client left during the ${n.stage} stage; it was aborted`);
        return;
    }
  };
}
