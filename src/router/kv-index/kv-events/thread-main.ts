// The KV-event thread: owns the prefix index's writer, the ZMQ sockets and the engine-hash maps, and
// approximate mode's predictions for engines without KV events; answers the requests of KvEventThread
// (thread.ts) in the thread that started it.

import { parentPort, workerData } from "node:worker_threads";
import { createBlockHasher } from "../../prepare/hashing/index.js";
import { PrefixIndex, type PrefixIndexShared } from "../prefix-index/index.js";
import { ApproxCache, type ApproxCounters, type ApproxEngineStats } from "../approx/index.js";
import { KvEventIngest, type IngestOptions, type KvEngineConfig, type KvEventStats, type KvNotice } from "./ingest.js";

export interface ThreadData {
  /** An index to take over (after the previous KV-event thread died), or null to create one. */
  recover: PrefixIndexShared | null;
  capacity: number;
  maxEngines: number;
  ingest: IngestOptions;
  /** Approximate mode: how long a prediction is believed (ms). */
  approxTtlMs: number;
}

/** Predictions for engines in approximate mode: record i is words[2·at, 2·(at + n)) for `engine`. */
export interface ApproxBatch {
  records: { engine: number; at: number; n: number }[];
  words: Uint32Array;
}

export type ThreadRequest =
  | { id: number; type: "addEngine"; config: KvEngineConfig }
  | { id: number; type: "addApproxEngine"; engine: number; capacity: number }
  | { id: number; type: "removeEngine"; engine: number }
  | { id: number; type: "stats" }
  | { id: number; type: "close" };

/** Sent without an id and never answered: the main thread does not wait for predictions to land. */
export type ThreadNote = { type: "approx"; batch: ApproxBatch };

/** The KV events' figures, and approximate mode's. */
export interface ThreadStats extends KvEventStats {
  approx: ApproxCounters & { ttlMs: number; engines: (ApproxEngineStats & { indexBlocks: number })[] };
}

export type ThreadReply =
  | { type: "ready"; shared: PrefixIndexShared }
  | { type: "notice"; notice: KvNotice }
  | { type: "reply"; id: number; ok: true; value?: unknown }
  | { type: "reply"; id: number; ok: false; error: string };

const port = parentPort!;
const data = workerData as ThreadData;
const index = data.recover !== null ? PrefixIndex.recover(data.recover) : PrefixIndex.create({ capacity: data.capacity, maxEngines: data.maxEngines });
const ingest = new KvEventIngest(index, await createBlockHasher(), data.ingest, (notice) => port.postMessage({ type: "notice", notice } satisfies ThreadReply));
const approx = new ApproxCache(index, { ttlMs: data.approxTtlMs });
// Predictions run out even when nothing new is predicted; a quarter of the TTL late at most, and within a second.
const expiry = setInterval(() => approx.expire(performance.now()), Math.min(1000, data.approxTtlMs / 4));

port.on("message", (request: ThreadRequest | ThreadNote) => {
  if (request.type === "approx") {
    const now = performance.now();
    const { records, words } = request.batch;
    for (const r of records) approx.record(r.engine, words.subarray(2 * r.at, 2 * (r.at + r.n)), r.n, now);
    return;
  }
  void handle(request).then(
    (value) => port.postMessage({ type: "reply", id: request.id, ok: true, value } satisfies ThreadReply),
    (err: unknown) => port.postMessage({ type: "reply", id: request.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies ThreadReply),
  );
});
port.postMessage({ type: "ready", shared: index.shared } satisfies ThreadReply);

async function handle(request: ThreadRequest): Promise<unknown> {
  switch (request.type) {
    case "addEngine":
      return ingest.addEngine(request.config);
    case "addApproxEngine":
      return approx.addEngine(request.engine, request.capacity);
    case "removeEngine":
      if (approx.hasEngine(request.engine)) return approx.removeEngine(request.engine);
      return ingest.removeEngine(request.engine);
    case "stats":
      return {
        ...ingest.stats(),
        approx: { ...approx.counters, ttlMs: approx.ttlMs, engines: approx.stats().map((e) => ({ ...e, indexBlocks: index.engineBlocks(e.engine) })) },
      } satisfies ThreadStats;
    case "close":
      clearInterval(expiry);
      await ingest.close();
      // Nothing else holds the event loop open: the thread ends once this reply is sent.
      port.unref();
      return undefined;
  }
}
