import { Worker } from "node:worker_threads";
import { distFile } from "../util/package-root.js";
import type { HttpSimulatorOptions } from "./http-server.js";
import type { SimulatorOptions } from "./server.js";

/** Options that can cross to the simulator thread (no callbacks). */
export type SimulatorThreadOptions = Omit<SimulatorOptions & HttpSimulatorOptions, "log" | "kvEventSink" | "engineId" | "port"> & {
  /** Serve vLLM's OpenAI HTTP API (http-server.ts) instead of the msgpack engine protocol. */
  http?: boolean;
};

export interface SimulatorThreadData {
  count: number;
  options: SimulatorThreadOptions;
  /** Engine i runs speeds[i] times as fast as `options.timing` (default 1 for all). */
  speeds: number[];
}

export interface SimulatedEngineAddress {
  /** tcp://HOST:PORT, or http://HOST:PORT for an HTTP simulator. */
  url: string;
  kvEventsEndpoint: string | null;
  replayEndpoint: string | null;
}

export type SimulatorThreadMessage = { type: "ready"; engines: SimulatedEngineAddress[] } | { type: "error"; message: string };

export interface SimulatorThread {
  readonly engines: SimulatedEngineAddress[];
  close(): Promise<void>;
}

/**
 * The simulator thread's young generation, fixed. Left to V8, it grows when many objects survive a
 * collection (requests in flight when one runs), and its collections then stop the engines for 5 to 15 ms,
 * which shows in the router's tail as if it were the router's own: at an even 3,000 token-id requests a
 * second, engine-thread pauses had p90 4.7 to 7.7 ms and p99 at the client 10.4 to 12.7 ms; with 8 MB, p90
 * 1.1 ms and p99 8.8 ms (node --trace-gc, three and two runs). An engine in a process of its own (vLLM) has
 * no such pauses in the router's way.
 */
const YOUNG_GENERATION_MB = 8;

/**
 * Starts `count` simulated engines in one worker thread, on ephemeral loopback ports, named sim-0..N-1
 * and seeded 0..N-1 (so their outputs differ), speaking msgpack or (with `http`) vLLM's HTTP API.
 */
export function startSimulatorThread(count: number, options: SimulatorThreadOptions = {}, speeds: number[] = []): Promise<SimulatorThread> {
  if (speeds.length !== 0 && speeds.length !== count) throw new RangeError(`${speeds.length} engine speeds for ${count} engines`);
  const data: SimulatorThreadData = { count, options, speeds };
  const worker = new Worker(distFile("src/mock-engine/thread.js"), { workerData: data, resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } });
  return new Promise((resolve, reject) => {
    const onExit = (code: number) => reject(new Error(`the simulator thread exited (code ${code}) before its engines started`));
    worker.once("error", reject);
    worker.once("exit", onExit);
    worker.once("message", (message: SimulatorThreadMessage) => {
      worker.off("exit", onExit);
      if (message.type === "error") {
        reject(new Error(`simulated engines failed to start: ${message.message}`));
        return;
      }
      resolve({
        engines: message.engines,
        close: () =>
          new Promise<void>((done) => {
            worker.once("exit", () => done());
            worker.postMessage("close");
            // Engines close their sockets and the thread ends; a socket that will not close must not hang shutdown.
            setTimeout(() => void worker.terminate(), 5000).unref();
          }),
      });
    });
  });
}
