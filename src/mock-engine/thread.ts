// Worker-thread entry that runs simulated engines off the router's event loop (used by `kvroute serve`
// when no engines are given). Each engine still speaks real TCP (msgpack or HTTP) and publishes on real ZMQ
// sockets. They hash their blocks with XXH64 (EngineCore's blockHasher) rather than SHA-256 per block: the
// same cache and the same events under other hash values, and these engines share the router's cores, so
// what they spend is taken from the router under load.
import { parentPort, workerData } from "node:worker_threads";
import { createBlockHasher } from "../router/prepare/hashing/index.js";
import { startHttpSimulator } from "./http-server.js";
import { startSimulator } from "./server.js";
import { atSpeed, DEFAULT_TIMING } from "./timing.js";
import type { SimulatorThreadData, SimulatorThreadMessage } from "./thread-host.js";

const { count, options, speeds } = workerData as SimulatorThreadData;
const port = parentPort!;

const engines: Array<{ url: string; kvEventsEndpoint: string | null; replayEndpoint: string | null; close(): Promise<void> }> = [];
try {
  const blockHasher = await createBlockHasher();
  for (let i = 0; i < count; i++) {
    const timing = atSpeed({ ...DEFAULT_TIMING, ...options.timing }, speeds[i] ?? 1);
    const seed = (options.seed ?? 0) + i;
    engines.push(options.http ? await startHttpSimulator({ ...options, timing, seed, blockHasher }) : await startSimulator({ ...options, timing, engineId: `sim-${i}`, seed, blockHasher }));
  }
  const ready: SimulatorThreadMessage = {
    type: "ready",
    engines: engines.map((e) => ({ url: e.url, kvEventsEndpoint: e.kvEventsEndpoint, replayEndpoint: e.replayEndpoint })),
  };
  port.postMessage(ready);
} catch (err) {
  await Promise.all(engines.map((e) => e.close()));
  const failed: SimulatorThreadMessage = { type: "error", message: (err as Error).message };
  port.postMessage(failed);
  port.close();
}

port.on("message", (message: "close") => {
  if (message !== "close") return;
  void Promise.all(engines.map((e) => e.close())).then(() => port.close());
});
