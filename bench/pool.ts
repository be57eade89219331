// npm run bench:pool: where a token-id prompt should be prepared. Side by side in one run, for each prompt
// length: hashing and index lookup on the main thread, against a round trip to a pool thread doing the
// same. Two costs of the pool matter: its latency (tinybench) and the main thread's share of it (event-loop
// time per prompt while several are in flight), which is what limits a busy router. The line sits where the
// work itself costs the main thread more than handing it to the pool does.
import { performance } from "node:perf_hooks";
import { Bench } from "tinybench";
import { rootSeed } from "../src/router/prepare/hashing/index.js";
import { PrefixIndex } from "../src/router/kv-index/prefix-index/index.js";
import { PreparePool } from "../src/router/prepare/index.js";
import { createBlockHasher } from "../src/router/prepare/hashing/index.js";
import { fixed, machineLine, msPerOp, printTable, ratio } from "./lib/report.js";

const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 500);
const BLOCK_SIZE = 16;
const LENGTHS = [256, 1024, 4096, 16384, 65536, 131072];
const ENGINES = 8;

const seed = rootSeed({ model: "bench" });
const index = PrefixIndex.create({ capacity: 1 << 20, maxEngines: 256 });
const hasher = await createBlockHasher();
// Each engine holds a prefix of a different length of one long prompt, so lookups do real work.
const longest = Uint32Array.from({ length: LENGTHS.at(-1)! }, (_, i) => (i * 2654435761) % 150_000);
const hashes = hasher.hashBlocks(longest, BLOCK_SIZE, seed);
for (let e = 0; e < ENGINES; e++) index.store(e, hashes.subarray(0, Math.floor((hashes.length * (e + 1)) / ENGINES)));

/** A context longer than the longest prompt measured: every prompt is prepared, none refused. */
const LIMITS = { maxModelLen: 1 << 30 };
const pool = await PreparePool.start({ tokenizerDir: null, index: index.shared, threads: 1 });
console.log(`bench:pool  token-id prompt preparation (hash + index lookup), block size ${BLOCK_SIZE}; ${machineLine()}; ${TIME_MS} ms per task`);

/** Main-thread (event-loop) microseconds per prompt sent to the pool, with `depth` prompts in flight. */
async function poolMainThreadMicros(tokens: Uint32Array, count: number, depth = 4): Promise<number> {
  const start = performance.eventLoopUtilization();
  const inFlight = new Set<Promise<void>>();
  for (let sent = 0; sent < count; ) {
    while (inFlight.size < depth && sent < count) {
      const p: Promise<void> = pool.runInPool({ kind: "tokens", tokens: tokens.slice() }, BLOCK_SIZE, seed, LIMITS).then(() => void inFlight.delete(p));
      inFlight.add(p);
      sent++;
    }
    await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  return (performance.eventLoopUtilization(start).active * 1000) / count;
}

const rows: (string | number)[][] = [];
let crossover: number | null = null;
for (const n of LENGTHS) {
  const tokens = longest.subarray(0, n);
  const bench = new Bench({ time: TIME_MS, warmup: true });
  // Both sides copy the prompt first: the pool path transfers (and so detaches) its array.
  bench
    .add("main thread", () => void pool.runInline({ kind: "tokens", tokens: tokens.slice() }, BLOCK_SIZE, seed, LIMITS.maxModelLen))
    .add("pool round trip", async () => void (await pool.runInPool({ kind: "tokens", tokens: tokens.slice() }, BLOCK_SIZE, seed, LIMITS)));
  await bench.run();
  const inline = msPerOp(bench.tasks[0]) * 1000;
  const pooled = msPerOp(bench.tasks[1]) * 1000;
  await poolMainThreadMicros(tokens, 50); // warm up
  const mainShare = await poolMainThreadMicros(tokens, Math.max(50, Math.round((TIME_MS * 1000) / Math.max(pooled, 1))));
  if (crossover === null && mainShare < inline) crossover = n;
  rows.push([n.toLocaleString("en-US"), fixed(inline), fixed(pooled), fixed(mainShare), ratio(pooled / inline)]);
}
printTable(
  "microseconds per prompt",
  ["prompt tokens", "main thread: work", "pool: round trip", "pool: main-thread share", "round trip / work"],
  rows,
);
console.log(
  crossover === null
    ? `\nHanding a prompt to the pool costs the main thread more than the work itself at every length measured (up to ${LENGTHS.at(-1)!.toLocaleString("en-US")} tokens).`
    : `\nFrom ${crossover.toLocaleString("en-US")} tokens on, the work costs the main thread more than handing it to the pool.`,
);
await pool.close();
