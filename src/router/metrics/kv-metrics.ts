import { Gauge } from "prom-client";
import type { KvEventThread } from "../kv-index/kv-events/index.js";
import { MirroredCounter, type RouterMetrics } from "./router-metrics.js";

/**
 * KV-event ingestion and prefix-index figures. They live in the KV-event thread; each scrape asks it for
 * its counters and mirrors them into Prometheus counters and gauges.
 */
export function watchKvEvents(metrics: RouterMetrics, writer: KvEventThread, engineName: (id: number) => string): void {
  const registry = metrics.registry;
  const registers = [registry];
  const events = new MirroredCounter(registry, "kvroute_kv_events_applied_total", "KV events applied to the prefix index, by type", ["type"]);
  const blocks = new MirroredCounter(registry, "kvroute_kv_blocks_total", "Blocks stored into or removed from the prefix index by KV events", ["op"]);
  const batches = new MirroredCounter(registry, "kvroute_kv_event_batches_total", "KV-event batches applied");
  const rejected = new MirroredCounter(registry, "kvroute_kv_events_rejected_total", "KV-event payloads or events skipped, by reason", ["reason"]);
  const gaps = new MirroredCounter(registry, "kvroute_kv_sequence_gaps_total", "Gaps in KV-event sequence numbers");
  const replays = new MirroredCounter(registry, "kvroute_kv_replays_total", "Replays of missed KV-event batches, by result", ["result"]);
  const drops = new MirroredCounter(registry, "kvroute_kv_engine_drops_total", "Times an engine rank's index entries were dropped, by reason", ["reason"]);
  const evictions = new MirroredCounter(registry, "kvroute_index_evictions_total", "Prefix-index entries evicted because the table was full");
  const entries = new Gauge({ name: "kvroute_index_entries", help: "Prefix-index entries in use", registers });
  const capacity = new Gauge({ name: "kvroute_index_capacity", help: "Prefix-index entries available", registers });
  const engineBlocks = new Gauge({ name: "kvroute_index_engine_blocks", help: "Prefix-index entries naming each engine", labelNames: ["engine"], registers });
  const approxPredictions = new MirroredCounter(registry, "kvroute_approx_predictions_total", "Approximate mode: prompts recorded as cached on the engine they were sent to (by this router or a peer replica)");
  const approxForgotten = new MirroredCounter(registry, "kvroute_approx_blocks_forgotten_total", "Approximate mode: predicted blocks forgotten, by reason (expired: TTL; evicted: the engine's capacity)", ["reason"]);
  const approxBlocks = new Gauge({ name: "kvroute_approx_blocks", help: "Approximate mode: blocks predicted held per engine", labelNames: ["engine"], registers });
  const publisherUp = new Gauge({ name: "kvroute_kv_publisher_connected", help: "1 while the KV-event subscriber of an engine rank is connected", labelNames: ["engine", "rank"], registers });

  metrics.onScrape(async () => {
    const s = await writer.stats();
    events.set(s.eventsBlockStored, { type: "BlockStored" });
    events.set(s.eventsBlockRemoved, { type: "BlockRemoved" });
    events.set(s.eventsAllBlocksCleared, { type: "AllBlocksCleared" });
    events.set(s.eventsUnknown, { type: "unknown" });
    blocks.set(s.blocksStored, { op: "stored" });
    blocks.set(s.blocksRemoved, { op: "removed" });
    batches.set(s.batchesApplied);
    rejected.set(s.payloadsRejected, { reason: "undecodable_payload" });
    rejected.set(s.unknownParent, { reason: "unknown_parent" });
    rejected.set(s.unknownBlock, { reason: "unknown_block" });
    rejected.set(s.unknownLora, { reason: "unknown_lora" });
    rejected.set(s.blockSizeMismatch, { reason: "block_size_mismatch" });
    rejected.set(s.tokenCountMismatch, { reason: "token_count_mismatch" });
    gaps.set(s.sequenceGaps);
    replays.set(s.replaysRequested, { result: "requested" });
    replays.set(s.replaysSucceeded, { result: "succeeded" });
    replays.set(s.replaysFailed, { result: "failed" });
    for (const [reason, count] of Object.entries(s.dropsByReason)) drops.set(count, { reason });
    evictions.set(s.index.evictions);
    entries.set(s.index.entries);
    capacity.set(s.index.capacity);
    approxPredictions.set(s.approx.predictions);
    approxForgotten.set(s.approx.expired, { reason: "expired" });
    approxForgotten.set(s.approx.evicted, { reason: "evicted" });
    engineBlocks.reset();
    publisherUp.reset();
    approxBlocks.reset();
    for (const engine of s.engines) {
      const name = engineName(engine.id);
      engineBlocks.set({ engine: name }, engine.indexBlocks);
      engine.ranks.forEach((rank, r) => publisherUp.set({ engine: name, rank: String(r) }, rank.state === "connected" ? 1 : 0));
    }
    for (const engine of s.approx.engines) {
      const name = engineName(engine.engine);
      engineBlocks.set({ engine: name }, engine.indexBlocks);
      approxBlocks.set({ engine: name }, engine.blocks);
    }
  });
}
