// Worker-thread entry that runs simulated engines off the router's event loop (used by `kvroute serve`
// when no engines are given). Each engine still speaks real TCP (msgpack or HTTP) and publishes on real ZMQ
// sockets.
import { parentPort, workerData } from "node:worker_threads";
import { startHttpSimulator } from "./http-server.js";
import { startSimulator } from "./server.js";
import { atSpeed, DEFAULT_TIMING } from "./timing.js";
import type { SimulatorThreadData, SimulatorThreadMessage } from "./thread-host.js";

const { count, options, speeds } = workerData as SimulatorThreadData;
const port = parentPort!;

const engines: Array<{ url: string; kvEventsEndpoint: string | null; replayEndpoint: string | null; close(): Promise<void> }> = [];
try {
  for (let i = 0; i < count; i++) {
    const timing = atSpeed({ ...DEFAULT_TIMING, ...options.timing }, speeds[i] ?? 1);
    const seed = (options.seed ?? 0) + i;
    engines.push(options.http ? await startHttpSimulator({ ...options, timing, seed }) : await startSimulator({ ...options, timing, engineId: `sim-${i}`, seed }));
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
