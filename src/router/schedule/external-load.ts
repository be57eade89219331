// External load: work on an engine that the router did not book itself (other clients of the same engine,
// other router replicas), as the engine's own metrics show it. It is a separate input to the scheduler, next
// to the router's bookings, and converted into the same unit (KV blocks) by one pure rule:
//
//   foreign running = max(0, running − the router's own requests on the engine when the report came)
//   foreign waiting = max(0, waiting − the router's own requests the running count cannot hold)
//   external prefill blocks = foreign waiting × the routed prompt's blocks
//   external decode blocks  = foreign running × blocks per running request
//
// where blocks per running request is (KV-cache usage × KV blocks) / running when the engine reports both,
// else the routed prompt's blocks. The router's own requests are counted as running first: most of them are.
// A request the engine has not told us the size of is assumed to be the size of the one being routed.
//
// The router's own requests are counted as they were when the report arrived, not as they are when a
// decision is made: a report is up to one scrape interval old, and a request of the router's that has
// finished since would otherwise be taken for another client's. The router's current bookings count
// separately, in the cost's booked terms.

/** What an engine reports about its own queue, whoever sent the requests (vLLM's or SGLang's /metrics). */
export interface EngineReport {
  /** Requests being computed (prefill or decode). */
  running: number;
  /** Requests queued, not yet scheduled. */
  waiting: number;
  /** Fraction of the KV cache held by running requests, 0..1; null when the engine does not say. */
  kvCacheUsage: number | null;
  /** KV-cache capacity in blocks; null when the engine does not say. */
  numBlocks: number | null;
  /**
   * Cumulative prefill figures, where the engine keeps them (vLLM): seconds its requests spent from their
   * scheduling to their first token, how many requests, and the prompt tokens it counted and found cached.
   */
  prefill?: PrefillCounters | null;
}

export interface PrefillCounters {
  seconds: number;
  requests: number;
  promptTokens: number;
  cachedTokens: number;
}

export interface ExternalLoad {
  /** Requests on the engine beyond the router's own. */
  requests: number;
  /** Of those, the ones running (decoding, or prefilling in a step). */
  running: number;
  prefillBlocks: number;
  decodeBlocks: number;
}

export const NO_EXTERNAL_LOAD: ExternalLoad = Object.freeze({ requests: 0, running: 0, prefillBlocks: 0, decodeBlocks: 0 });

/** `ownRequests`: the router's own requests in flight on the engine when the report arrived. */
export function externalLoad(report: EngineReport | null, ownRequests: number, promptBlocks: number): ExternalLoad {
  if (report === null) return NO_EXTERNAL_LOAD;
  const running = Math.max(0, report.running);
  const waiting = Math.max(0, report.waiting);
  const foreignRunning = Math.max(0, running - ownRequests);
  const foreignWaiting = Math.max(0, waiting - Math.max(0, ownRequests - running));
  const perRunning =
    report.kvCacheUsage !== null && report.numBlocks !== null && running > 0
      ? (Math.min(1, Math.max(0, report.kvCacheUsage)) * report.numBlocks) / running
      : promptBlocks;
  return {
    requests: foreignRunning + foreignWaiting,
    running: foreignRunning,
    prefillBlocks: foreignWaiting * promptBlocks,
    decodeBlocks: Math.round(foreignRunning * perRunning),
  };
}
