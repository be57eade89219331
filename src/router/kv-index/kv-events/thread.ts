// KvEventThread: the main thread's handle on the KV-event thread. The thread owns the index's
// writer, the ZMQ sockets and the engine-hash maps, and approximate mode's predictions; this side hands
// out `shared`, which readers in any thread attach to, and forwards fleet changes, predictions and stats
// requests. Predictions made in one event-loop turn cross to the thread as one batch whose buffer is
// transferred, not copied.
//
// If the thread dies (a bug, not bad input: bad input is counted and skipped), a new one takes over the
// same shared index, empties it (the per-engine state died with the old thread) and re-subscribes every
// engine, so readers keep their attachment and the index refills from the engines' events (and, for
// engines in approximate mode, from new predictions).

import { Worker } from "node:worker_threads";
import { checkOptions, DEFAULT_MAX_ENGINES, type PrefixIndexShared } from "../prefix-index/index.js";
import { distFile } from "../../../util/package-root.js";
import type { IngestOptions, KvEngineConfig, KvNotice } from "./ingest.js";
import type { ApproxBatch, ThreadData, ThreadNote, ThreadReply, ThreadRequest, ThreadStats } from "./thread-main.js";

export interface KvEventThreadOptions extends IngestOptions {
  /** Index entries (fixed memory; see PrefixIndex). */
  capacity: number;
  /** Engines are 0..maxEngines-1 (default 256). */
  maxEngines?: number;
  /** Count only GPU blocks as held (default true); false counts every medium. Overrides countedMedia when false. */
  gpuOnly?: boolean;
  /** Approximate mode: how long a prediction is believed (default 120,000 ms). */
  approxTtlMs?: number;
}

export const DEFAULT_APPROX_TTL_MS = 120_000;

export interface KvEventThreadStats extends ThreadStats {
  /** Times the KV-event thread died and was replaced. */
  threadRestarts: number;
}

type Pending = { resolve: (value: unknown) => void; reject: (err: Error) => void };
type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;

export class KvEventThread {
  /** Structured-cloneable: `PrefixIndex.attach(writer.shared)` in any thread. */
  readonly shared: PrefixIndexShared;
  readonly #data: Omit<ThreadData, "recover">;
  readonly #engines = new Map<number, KvEngineConfig>();
  /** Engines in approximate mode, with their capacity in blocks. */
  readonly #approxEngines = new Map<number, number>();
  /** This turn's predictions, sent to the thread at the end of it. */
  #approx: ApproxBatch | null = null;
  #approxWords = 0;
  readonly #pending = new Map<number, Pending>();
  #worker: Worker;
  /** Resolves once the current thread is ready; requests wait on it while a replacement starts. */
  #ready: Promise<void> = Promise.resolve();
  #nextId = 1;
  #closing = false;
  #failed: Error | null = null;
  #restarts = 0;
  readonly #noticeListeners: ((notice: KvNotice) => void)[] = [];

  private constructor(worker: Worker, shared: PrefixIndexShared, data: Omit<ThreadData, "recover">) {
    this.#worker = worker;
    this.shared = shared;
    this.#data = data;
    this.#watch(worker);
  }

  /** Starts the KV-event thread with an empty index. */
  static async start(options: KvEventThreadOptions): Promise<KvEventThread> {
    const { capacity, maxEngines = DEFAULT_MAX_ENGINES, gpuOnly = true, approxTtlMs = DEFAULT_APPROX_TTL_MS, ...ingest } = options;
    checkOptions(capacity, maxEngines);
    if (!(approxTtlMs > 0 && Number.isFinite(approxTtlMs))) throw new RangeError(`approxTtlMs must be a number above 0, got ${approxTtlMs}`);
    if (gpuOnly === false) ingest.countedMedia = "all";
    const data = { capacity, maxEngines, ingest, approxTtlMs };
    const { worker, shared } = await spawn({ ...data, recover: null });
    return new KvEventThread(worker, shared, data);
  }

  /** Subscribes to an engine's events (one socket per data-parallel rank). */
  async addEngine(config: KvEngineConfig): Promise<void> {
    await this.#request({ type: "addEngine", config });
    this.#engines.set(config.id, config);
  }

  /**
   * Puts an engine that publishes no KV events in approximate mode: what the router sends it (recordApprox)
   * is taken as cached there, for the TTL, up to `capacity` blocks.
   */
  async addApproxEngine(id: number, capacity: number): Promise<void> {
    await this.#request({ type: "addApproxEngine", engine: id, capacity });
    this.#approxEngines.set(id, capacity);
  }

  /** Unsubscribes from an engine (or ends its approximate mode) and drops all its entries. */
  async removeEngine(id: number): Promise<void> {
    this.#flushApprox(); // predictions made for it before it left must not land after
    await this.#request({ type: "removeEngine", engine: id });
    this.#engines.delete(id);
    this.#approxEngines.delete(id);
  }

  /**
   * A prompt with these chained block hashes was sent to an engine in approximate mode. The hashes are
   * copied into this turn's batch (the caller keeps its array), which goes to the thread when the turn ends.
   */
  recordApprox(engine: number, hashes: BigUint64Array): void {
    const n = hashes.length;
    if (n === 0 || this.#closing) return;
    if (this.#approx === null) {
      this.#approx = { records: [], words: new Uint32Array(Math.max(2048, 2 * n)) };
      this.#approxWords = 0;
      setImmediate(() => this.#flushApprox());
    }
    let batch = this.#approx;
    const at = this.#approxWords;
    if (batch.words.length < 2 * (at + n)) {
      const words = new Uint32Array(Math.max(2 * (at + n), 2 * batch.words.length));
      words.set(batch.words.subarray(0, 2 * at));
      batch = this.#approx = { records: batch.records, words };
    }
    batch.words.set(new Uint32Array(hashes.buffer, hashes.byteOffset, 2 * n), 2 * at);
    batch.records.push({ engine, at, n });
    this.#approxWords = at + n;
  }

  #flushApprox(): void {
    const batch = this.#approx;
    if (batch === null) return;
    this.#approx = null;
    if (this.#closing || this.#failed !== null) return;
    const words = batch.words.subarray(0, 2 * this.#approxWords);
    this.#worker.postMessage({ type: "approx", batch: { records: batch.records, words } } satisfies ThreadNote, [words.buffer as ArrayBuffer]);
  }

  /** Calls `listener` with every notice the KV-event thread sends (an engine whose events it cannot use). */
  onNotice(listener: (notice: KvNotice) => void): void {
    this.#noticeListeners.push(listener);
  }

  async stats(): Promise<KvEventThreadStats> {
    const stats = (await this.#request({ type: "stats" })) as ThreadStats;
    return { ...stats, threadRestarts: this.#restarts };
  }

  /** Closes every socket and ends the KV-event thread. The shared index stays readable. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    const exited = new Promise<void>((resolve) => this.#worker.once("exit", () => resolve()));
    try {
      await this.#request({ type: "close" }, true);
    } catch {
      // The thread is gone or failing: terminating it below is all that is left to do.
    }
    const timer = setTimeout(() => void this.#worker.terminate(), 5000);
    await exited;
    clearTimeout(timer);
  }

  async #request(request: WithoutId<ThreadRequest>, closing = false): Promise<unknown> {
    if (this.#closing && !closing) throw new Error("the KV-event thread is closed");
    await this.#ready;
    if (this.#failed !== null) throw this.#failed;
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...request, id });
    });
  }

  #watch(worker: Worker): void {
    worker.on("message", (reply: ThreadReply) => {
      if (reply.type === "notice") {
        for (const listener of this.#noticeListeners) listener(reply.notice);
        return;
      }
      if (reply.type !== "reply") return;
      const pending = this.#pending.get(reply.id);
      this.#pending.delete(reply.id);
      if (reply.ok) pending?.resolve(reply.value);
      else pending?.reject(new Error(reply.error));
    });
    worker.on("error", (err) => {
      if (!this.#closing) process.emitWarning(`kvroute: the KV-event thread failed: ${err.message}`);
    });
    worker.on("exit", () => {
      const gone = new Error("the KV-event thread exited");
      for (const p of this.#pending.values()) p.reject(gone);
      this.#pending.clear();
      if (!this.#closing) this.#ready = this.#replace();
    });
  }

  /** A new thread over the same index, with every engine subscribed again. */
  async #replace(): Promise<void> {
    this.#restarts++;
    try {
      const { worker } = await spawn({ ...this.#data, recover: this.shared });
      this.#worker = worker;
      this.#watch(worker);
      const again = (request: WithoutId<ThreadRequest>) => {
        const id = this.#nextId++;
        return new Promise((resolve, reject) => {
          this.#pending.set(id, { resolve, reject });
          worker.postMessage({ ...request, id } satisfies ThreadRequest);
        });
      };
      for (const config of this.#engines.values()) await again({ type: "addEngine", config });
      for (const [engine, capacity] of this.#approxEngines) await again({ type: "addApproxEngine", engine, capacity });
    } catch (err) {
      // A thread that cannot even start again would only fail again: stop here and say why.
      this.#failed = new Error(`the KV-event thread could not be restarted: ${(err as Error).message}`);
    }
  }
}

function spawn(data: ThreadData): Promise<{ worker: Worker; shared: PrefixIndexShared }> {
  const worker = new Worker(distFile("src/router/kv-index/kv-events/thread-main.js"), { workerData: data });
  return new Promise((resolve, reject) => {
    const onExit = (code: number) => reject(new Error(`the KV-event thread exited with code ${code} before it was ready`));
    const onError = (err: Error) => reject(err);
    worker.once("exit", onExit);
    worker.once("error", onError);
    worker.once("message", (message: ThreadReply) => {
      worker.off("exit", onExit);
      worker.off("error", onError);
      if (message.type === "ready") resolve({ worker, shared: message.shared });
      else reject(new Error("the KV-event thread answered before it was ready"));
    });
  });
}
