// KvEventThread: the main thread's handle on the KV-event thread. The thread owns the index's
// writer, the ZMQ sockets and the engine-hash maps; this side hands out `shared`, which readers in any
// thread attach to, and forwards fleet changes and stats requests.
//
// If the thread dies (a bug, not bad input: bad input is counted and skipped), a new one takes over the
// same shared index, empties it (the per-engine state died with the old thread) and re-subscribes every
// engine, so readers keep their attachment and the index refills from the engines' events.

import { Worker } from "node:worker_threads";
import { checkOptions, DEFAULT_MAX_ENGINES, type PrefixIndexShared } from "../prefix-index/index.js";
import { distFile } from "../../../util/package-root.js";
import type { IngestOptions, KvEngineConfig, KvEventStats, KvNotice } from "./ingest.js";
import type { ThreadReply, ThreadRequest, ThreadData } from "./thread-main.js";

export interface KvEventThreadOptions extends IngestOptions {
  /** Index entries (fixed memory; see PrefixIndex). */
  capacity: number;
  /** Engines are 0..maxEngines-1 (default 256). */
  maxEngines?: number;
  /** Count only GPU blocks as held (default true); false counts every medium. Overrides countedMedia when false. */
  gpuOnly?: boolean;
}

export interface KvEventThreadStats extends KvEventStats {
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
    const { capacity, maxEngines = DEFAULT_MAX_ENGINES, gpuOnly = true, ...ingest } = options;
    checkOptions(capacity, maxEngines);
    if (gpuOnly === false) ingest.countedMedia = "all";
    const data = { capacity, maxEngines, ingest };
    const { worker, shared } = await spawn({ ...data, recover: null });
    return new KvEventThread(worker, shared, data);
  }

  /** Subscribes to an engine's events (one socket per data-parallel rank). */
  async addEngine(config: KvEngineConfig): Promise<void> {
    await this.#request({ type: "addEngine", config });
    this.#engines.set(config.id, config);
  }

  /** Unsubscribes from an engine and drops all its entries. */
  async removeEngine(id: number): Promise<void> {
    await this.#request({ type: "removeEngine", engine: id });
    this.#engines.delete(id);
  }

  /** Calls `listener` with every notice the KV-event thread sends (an engine whose events it cannot use). */
  onNotice(listener: (notice: KvNotice) => void): void {
    this.#noticeListeners.push(listener);
  }

  async stats(): Promise<KvEventThreadStats> {
    const stats = (await this.#request({ type: "stats" })) as KvEventStats;
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
      for (const config of this.#engines.values()) {
        const id = this.#nextId++;
        await new Promise((resolve, reject) => {
          this.#pending.set(id, { resolve, reject });
          worker.postMessage({ type: "addEngine", config, id } satisfies ThreadRequest);
        });
      }
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
