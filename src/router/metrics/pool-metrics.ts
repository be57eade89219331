import { Gauge } from "prom-client";
import type { RouterMetrics } from "./router-metrics.js";

/** The preparation pool's tasks, as `PreparePool.load` reports them. */
export interface PoolLoad {
  running: number;
  big: number;
  waiting: number;
}

/**
 * The preparation pool's tasks at each scrape: running (and of those, big: longer than a slice) and
 * waiting for a place. A client that leaves takes its task out of both.
 */
export function watchPool(metrics: RouterMetrics, read: () => PoolLoad): void {
  const tasks = new Gauge({
    name: "kvroute_prepare_tasks",
    help: "Preparation pool tasks: running, running and longer than a slice (big), waiting for a place",
    labelNames: ["state"],
    registers: [metrics.registry],
  });
  metrics.onScrape(() => {
    const load = read();
    tasks.set({ state: "running" }, load.running);
    tasks.set({ state: "big" }, load.big);
    tasks.set({ state: "waiting" }, load.waiting);
  });
}

/** Bodies in the body lane (read, parsed and tokenized off the main thread) at each scrape. */
export function watchBodyLane(metrics: RouterMetrics, read: () => number): void {
  const tasks = new Gauge({
    name: "kvroute_body_lane_tasks",
    help: "Request bodies over the body lane's size being parsed and tokenized off the main thread",
    registers: [metrics.registry],
  });
  metrics.onScrape(() => tasks.set(read()));
}
