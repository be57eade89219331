// The KV-event thread: owns the prefix index's writer, the ZMQ sockets and the engine-hash maps,
// and answers the requests of KvEventThread (writer.ts) in the thread that started it.

import { parentPort, workerData } from "node:worker_threads";
import { createBlockHasher } from "../../prepare/hashing/index.js";
import { PrefixIndex, type PrefixIndexShared } from "../prefix-index/index.js";
import { KvEventIngest, type IngestOptions, type KvEngineConfig, type KvNotice } from "./ingest.js";

export interface ThreadData {
  /** An index to take over (after the previous KV-event thread died), or null to create one. */
  recover: PrefixIndexShared | null;
  capacity: number;
  maxEngines: number;
  ingest: IngestOptions;
}

export type ThreadRequest =
  | { id: number; type: "addEngine"; config: KvEngineConfig }
  | { id: number; type: "removeEngine"; engine: number }
  | { id: number; type: "stats" }
  | { id: number; type: "close" };

export type ThreadReply =
  | { type: "ready"; shared: PrefixIndexShared }
  | { type: "notice"; notice: KvNotice }
  | { type: "reply"; id: number; ok: true; value?: unknown }
  | { type: "reply"; id: number; ok: false; error: string };

const port = parentPort!;
const data = workerData as ThreadData;
const index = data.recover !== null ? PrefixIndex.recover(data.recover) : PrefixIndex.create({ capacity: data.capacity, maxEngines: data.maxEngines });
const ingest = new KvEventIngest(index, await createBlockHasher(), data.ingest, (notice) => port.postMessage({ type: "notice", notice } satisfies ThreadReply));

port.on("message", (request: ThreadRequest) => {
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
    case "removeEngine":
      return ingest.removeEngine(request.engine);
    case "stats":
      return ingest.stats();
    case "close":
      await ingest.close();
      // Nothing else holds the event loop open: the thread ends once this reply is sent.
      port.unref();
      return undefined;
  }
}
