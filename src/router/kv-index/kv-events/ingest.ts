// KV-event ingestion for a fleet: per engine, one subscriber per data-parallel rank, each feeding decoded
// batches to the applier that updates the prefix index. Runs wherever the index's writer lives: the
// KV-event thread (thread-main.ts) in the router.

import type { BlockHasher } from "../../prepare/hashing/index.js";
import type { PrefixIndex } from "../prefix-index/index.js";
import { KvEventApplier, type ApplierCounters, type ApplierOptions, type RankStats } from "./applier.js";
import { decodeKvEventBatch } from "./decode.js";
import type { DropReason, RankStreamStats } from "./rank-stream.js";
import { RankSubscriber, rankEndpoint, type ConnectionState } from "./subscriber.js";

export interface KvEngineConfig {
  /** The engine's number in the index, 0..maxEngines-1. */
  id: number;
  /** For stats and messages; defaults to "engine <id>". */
  name?: string;
  /** The served model, which seeds the router's hashes of a prompt's first block. */
  model: string;
  /** The engine's KV block size in tokens. */
  blockSize: number;
  /** Rank 0's KV-event publisher, e.g. tcp://10.0.0.5:5557; rank r publishes on port + r. */
  endpoint: string;
  /** Data-parallel ranks (default 1). */
  dataParallelSize?: number;
  /** Rank 0's replay socket, e.g. tcp://10.0.0.5:5558 (rank r: port + r). Without it a gap drops the rank. */
  replayEndpoint?: string;
  /** Subscription topic prefix (default "": every topic). */
  topic?: string;
}

export interface IngestOptions extends ApplierOptions {
  /** How long a replay waits for each reply (default 2000 ms). */
  replayTimeoutMs?: number;
  /** First wait before redialling a publisher that went away (default 100 ms), doubling up to the max. */
  reconnectIntervalMs?: number;
  /** Longest wait between redials (default 5000 ms). */
  reconnectMaxIntervalMs?: number;
}

export interface RankIngestStats extends RankStreamStats, RankStats {
  endpoint: string;
  state: ConnectionState;
  connects: number;
  disconnects: number;
  payloadsRejected: number;
  lastError: string | null;
}

export interface EngineIngestStats {
  id: number;
  name: string;
  model: string;
  /** Index entries naming this engine. */
  indexBlocks: number;
  ranks: RankIngestStats[];
}

/** Every counter as a plain number, for a metrics layer. Totals include engines since removed. */
export interface KvEventStats extends ApplierCounters {
  batchesApplied: number;
  /** Payloads or frames that could not be decoded (each is skipped; the stream goes on). */
  payloadsRejected: number;
  sequenceGaps: number;
  replaysRequested: number;
  replaysSucceeded: number;
  replaysFailed: number;
  publisherRestarts: number;
  /** Ranks dropped, by reason (also counted in `drops`). */
  dropsByReason: Record<DropReason | "map-overflow", number>;
  index: { entries: number; capacity: number; evictions: number; enginesWithHoles: number; bytesAllocated: number };
  engines: EngineIngestStats[];
}

/**
 * What the ingestion tells its owner (the router's main thread) without being asked: an engine whose events
 * cannot be used, so that it can be refused. Sent once per engine while it is added.
 */
export type KvNotice = { kind: "block_size_mismatch"; engine: number; eventBlockSize: number; engineBlockSize: number };

interface RankState {
  subscriber: RankSubscriber;
  payloadsRejected: number;
  lastError: string | null;
}

interface EngineState {
  config: KvEngineConfig;
  ranks: RankState[];
}

const STREAM_TOTALS = ["batchesApplied", "gaps", "replaysRequested", "replaysSucceeded", "replaysFailed", "publisherRestarts"] as const;

export class KvEventIngest {
  readonly #index: PrefixIndex;
  readonly #applier: KvEventApplier;
  readonly #options: IngestOptions;
  readonly #engines = new Map<number, EngineState>();
  /** Counters of removed engines' ranks, so that totals never go down. */
  readonly #retired = { batchesApplied: 0, gaps: 0, replaysRequested: 0, replaysSucceeded: 0, replaysFailed: 0, publisherRestarts: 0, payloadsRejected: 0 };
  readonly #drops: KvEventStats["dropsByReason"] = { gap: 0, "replay-failed": 0, "publisher-restart": 0, disconnect: 0, backlog: 0, "map-overflow": 0 };
  /** Engines already reported by a notice since they were added. */
  readonly #noticed = new Set<number>();

  constructor(index: PrefixIndex, hasher: BlockHasher, options: IngestOptions = {}, notify: (notice: KvNotice) => void = () => undefined) {
    this.#index = index;
    this.#applier = new KvEventApplier(index, hasher, options, {
      blockSizeMismatch: (engine, eventBlockSize, engineBlockSize) => {
        if (this.#noticed.has(engine)) return;
        this.#noticed.add(engine);
        notify({ kind: "block_size_mismatch", engine, eventBlockSize, engineBlockSize });
      },
    });
    this.#options = options;
  }

  addEngine(config: KvEngineConfig): void {
    const { id, model, blockSize, endpoint, dataParallelSize = 1, replayEndpoint, topic = "" } = config;
    if (this.#engines.has(id)) throw new Error(`engine ${id} is already added`);
    if (typeof endpoint !== "string" || !/^[a-z]+:\/\/./.test(endpoint)) {
      throw new TypeError(`engine ${id}: endpoint must be a ZMQ endpoint such as tcp://host:5557, got ${JSON.stringify(endpoint)}`);
    }
    if (replayEndpoint !== undefined && (typeof replayEndpoint !== "string" || !/^[a-z]+:\/\/./.test(replayEndpoint))) {
      throw new TypeError(`engine ${id}: replayEndpoint must be a ZMQ endpoint, got ${JSON.stringify(replayEndpoint)}`);
    }
    if (typeof topic !== "string") throw new TypeError(`engine ${id}: topic must be a string`);
    // Resolve every rank's endpoints before anything is created, so that a bad one leaves no trace.
    const endpoints = Array.from({ length: Number.isInteger(dataParallelSize) && dataParallelSize > 0 ? dataParallelSize : 1 }, (_, rank) => ({
      endpoint: rankEndpoint(endpoint, rank),
      replay: replayEndpoint === undefined ? null : rankEndpoint(replayEndpoint, rank),
    }));
    this.#applier.addEngine(id, { model, blockSize, dataParallelSize });
    const state: EngineState = { config: { ...config, name: config.name ?? `engine ${id}` }, ranks: [] };
    this.#engines.set(id, state);
    endpoints.forEach(({ endpoint: rankUrl, replay }, rank) => {
      const r: RankState = { payloadsRejected: 0, lastError: null, subscriber: undefined as unknown as RankSubscriber };
      const reject = (message: string): void => {
        r.payloadsRejected++;
        r.lastError = message;
      };
      r.subscriber = new RankSubscriber({
        endpoint: rankUrl,
        replayEndpoint: replay,
        topic,
        replayTimeoutMs: this.#options.replayTimeoutMs ?? 2000,
        reconnectIntervalMs: this.#options.reconnectIntervalMs ?? 100,
        reconnectMaxIntervalMs: this.#options.reconnectMaxIntervalMs ?? 5000,
        apply: (batch) => {
          let decoded;
          try {
            decoded = decodeKvEventBatch(batch.payload);
          } catch (err) {
            reject(`batch ${batch.seq}: ${(err as Error).message}`);
            return false;
          }
          const overflows = this.#applier.counters.mapOverflows;
          this.#applier.apply(id, decoded.events, rank);
          this.#drops["map-overflow"] += this.#applier.counters.mapOverflows - overflows;
          return true;
        },
        drop: (reason) => {
          this.#drops[reason]++;
          this.#applier.drop(id, rank);
        },
        reject,
      });
      state.ranks.push(r);
      r.subscriber.start();
    });
  }

  /** Stops the engine's subscribers and drops all its entries. */
  async removeEngine(id: number): Promise<void> {
    const state = this.#engines.get(id);
    if (state === undefined) return;
    this.#engines.delete(id);
    this.#noticed.delete(id);
    await Promise.all(state.ranks.map((r) => r.subscriber.close()));
    for (const r of state.ranks) {
      for (const key of STREAM_TOTALS) this.#retired[key] += r.subscriber.stream.stats[key];
      this.#retired.payloadsRejected += r.payloadsRejected;
    }
    this.#applier.removeEngine(id);
  }

  stats(): KvEventStats {
    const totals = { ...this.#retired };
    const engines: EngineIngestStats[] = [];
    for (const [id, state] of this.#engines) {
      const rankStats = this.#applier.rankStats(id);
      const ranks = state.ranks.map((r, rank): RankIngestStats => {
        const stream = r.subscriber.stream.stats;
        for (const key of STREAM_TOTALS) totals[key] += stream[key];
        totals.payloadsRejected += r.payloadsRejected;
        return { ...r.subscriber.stats, ...stream, ...rankStats[rank]!, payloadsRejected: r.payloadsRejected, lastError: r.lastError };
      });
      engines.push({ id, name: state.config.name!, model: state.config.model, indexBlocks: this.#index.engineBlocks(id), ranks });
    }
    const index = this.#index.stats();
    return {
      ...this.#applier.counters,
      batchesApplied: totals.batchesApplied,
      payloadsRejected: totals.payloadsRejected,
      sequenceGaps: totals.gaps,
      replaysRequested: totals.replaysRequested,
      replaysSucceeded: totals.replaysSucceeded,
      replaysFailed: totals.replaysFailed,
      publisherRestarts: totals.publisherRestarts,
      dropsByReason: { ...this.#drops },
      index: {
        entries: index.entries,
        capacity: index.capacity,
        evictions: index.evictions,
        enginesWithHoles: index.enginesWithHoles,
        bytesAllocated: index.bytesAllocated,
      },
      engines,
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.#engines.values()].flatMap((s) => s.ranks.map((r) => r.subscriber.close())));
  }
}
