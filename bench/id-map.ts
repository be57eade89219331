// npm run bench:id-map: IdMap (src/util/id-map.ts) against a Map, side by side in one run, on the two ways
// the router uses it: requests in flight (ids rising, a few open, each looked up as its outputs come) and a
// connection's pending outputs (a few set, walked and cleared on every write).
import { Bench } from "tinybench";
import { IdMap } from "../src/util/id-map.js";
import { fixed, machineLine, msPerOp, printTable, ratio, taskByName } from "./lib/report.js";

const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 1000);
const IN_FLIGHT = 8;

interface Table<V> {
  set(id: number, value: V): unknown;
  get(id: number): V | undefined;
  delete(id: number): boolean;
  clear(): void;
}

/** One request opens, its outputs are looked up twice, the oldest closes. */
function inFlight(table: Table<{ id: number }>): () => void {
  let id = 1_000_000;
  for (let i = 0; i < IN_FLIGHT; i++) table.set(id++, { id });
  return () => {
    table.set(id, { id });
    table.get(id);
    table.get(id - 3);
    table.delete(id - IN_FLIGHT);
    id++;
  };
}

/** Four outputs pile up, are walked, and the table is cleared. */
function pending(table: Table<{ id: number }>, walk: () => Iterable<[number, { id: number }]>): () => void {
  let id = 0;
  let sum = 0;
  return () => {
    for (let i = 0; i < 4; i++) table.set(id + i, { id: id + i });
    for (const [, v] of walk()) sum += v.id;
    table.clear();
    id += 4;
    if (sum < 0) throw new Error("unreachable");
  };
}

const bench = new Bench({ time: TIME_MS });
const map = new Map<number, { id: number }>();
const idMap = new IdMap<{ id: number }>();
const mapPending = new Map<number, { id: number }>();
const idMapPending = new IdMap<{ id: number }>();
bench
  .add("Map, in flight", inFlight(map))
  .add("IdMap, in flight", inFlight(idMap))
  .add("Map, pending", pending(mapPending, () => mapPending))
  .add("IdMap, pending", pending(idMapPending, () => idMapPending.entries()));
await bench.run();

console.log(`bench:id-map  ${machineLine()}`);
const ns = (name: string) => msPerOp(taskByName(bench, name)) * 1e6;
printTable(
  "ns per operation (mean), IdMap over Map",
  ["workload", "Map", "IdMap", "IdMap / Map"],
  ["in flight", "pending"].map((w) => [w, fixed(ns(`Map, ${w}`)), fixed(ns(`IdMap, ${w}`)), ratio(ns(`IdMap, ${w}`) / ns(`Map, ${w}`))]),
);
