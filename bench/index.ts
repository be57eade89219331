// npm run bench:index: the shared-memory prefix index and KV-event ingestion against a plain
// Map<bigint, Set<number>> index, measured side by side in one run.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Packr } from "msgpackr";
import { Bench } from "tinybench";
import {
  createBlockHasher,
  decodeKvEventBatch,
  KvEventApplier,
  PrefixIndex,
  rootSeed,
  type BlockHasher,
  type BlockRemovedEvent,
  type BlockStoredEvent,
  type KvEvent,
} from "../src/index.js";
import { NaivePrefixIndex } from "./lib/naive-index.js";
import { fixed, machineLine, msPerOp, printTable, ratio, taskByName } from "./lib/report.js";

const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 1000);
/** Entries in the index under test (the smoke test makes it small). */
const ENTRIES = Number(process.env.BENCH_INDEX_ENTRIES ?? 1_000_000);
const ENGINES = 32;
const MAX_ENGINES = 256;
const BLOCKS = 256;
const BLOCK_SIZE = 16;
const MODEL = "bench/model";
/** Distinct events cycled through by the store and remove tasks. */
const EVENTS = 64;

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

let seed = 0x2545f491;
function random32(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}
function randomHashes(n: number): BigUint64Array {
  const out = new BigUint64Array(n);
  const words = new Uint32Array(out.buffer);
  for (let i = 0; i < words.length; i++) words[i] = random32();
  return out;
}
function randomTokens(n: number): Uint32Array {
  return Uint32Array.from({ length: n }, () => random32() % 150_000);
}

const hasher: BlockHasher = await createBlockHasher({ kernel: "require" });
const root = rootSeed({ model: MODEL });
const capacity = Math.ceil(ENTRIES * 1.25);
console.log(`bench:index  ${machineLine()}; ${TIME_MS} ms per task; index of ${ENTRIES.toLocaleString("en-US")} entries across ${ENGINES} engines (capacity ${capacity.toLocaleString("en-US")}, maxEngines ${MAX_ENGINES}); prompts of ${BLOCKS} blocks × ${BLOCK_SIZE} tokens`);

// ---- Fill both indexes with the same prompts: ENTRIES blocks in chains of BLOCKS, one engine each.
const index = PrefixIndex.create({ capacity, maxEngines: MAX_ENGINES });
const naive = new NaivePrefixIndex();
gc();
const heapBefore = process.memoryUsage().heapUsed;
const prompts: BigUint64Array[] = [];
for (let p = 0; p * BLOCKS < ENTRIES; p++) {
  const prompt = randomHashes(Math.min(BLOCKS, ENTRIES - p * BLOCKS));
  index.store(p % ENGINES, prompt);
  naive.store(p % ENGINES, prompt);
  prompts.push(prompt);
}
gc();
const naiveBytes = process.memoryUsage().heapUsed - heapBefore;
if (index.size !== naive.size) throw new Error(`the index holds ${index.size} entries, the naive one ${naive.size}`);

// ---- Lookups: a prompt fully held by one engine, and the same prompt after a hole at block 100.
const held = prompts[Math.floor(prompts.length / 2)]!;
const heldBy = Math.floor(prompts.length / 2) % ENGINES;
const out = new Uint32Array(MAX_ENGINES);
const holed = randomHashes(BLOCKS);
index.store(ENGINES - 1, holed);
naive.store(ENGINES - 1, holed);
index.remove(ENGINES - 1, holed.subarray(100, 101));
naive.remove(ENGINES - 1, holed.subarray(100, 101));
for (const [q, engine, want] of [[held, heldBy, held.length], [holed, ENGINES - 1, 100]] as const) {
  if (index.overlaps(q, out)[engine] !== want || naive.overlaps(q, MAX_ENGINES)[engine] !== want) throw new Error("overlaps disagree with the fill");
}
{
  const bench = new Bench({ time: TIME_MS, warmup: true });
  bench
    .add("(a) PrefixIndex.overlaps", () => void index.overlaps(held, out))
    .add("(b) Map<bigint, Set> walk", () => void naive.overlaps(held, MAX_ENGINES))
    .add("(a') PrefixIndex, engine with a hole", () => void index.overlaps(holed, out))
    .add("(b') Map<bigint, Set>, engine with a hole", () => void naive.overlaps(holed, MAX_ENGINES));
  gc(); // start each section without the previous one's garbage
  await bench.run();
  const base = msPerOp(taskByName(bench, "(a) PrefixIndex.overlaps"));
  printTable(
    `overlaps of a ${BLOCKS}-block prompt fully held by one engine, one thread`,
    ["implementation", "lookups/s", "µs/lookup", "time vs (a)"],
    bench.tasks.map((t) => [t.name, fixed(1000 / msPerOp(t), 0), fixed(msPerOp(t) * 1000, 2), ratio(msPerOp(t) / base)]),
  );
}

// ---- Updates: BlockStored events of BLOCKS blocks (BLOCKS × BLOCK_SIZE tokens) for fresh prompts,
// applied through the event path (router hashing + engine-hash map + index), then removed again.
const events = Array.from({ length: EVENTS }, () => {
  const tokenIds = randomTokens(BLOCKS * BLOCK_SIZE);
  const engineHashes = randomHashes(BLOCKS);
  const store: BlockStoredEvent = { type: "BlockStored", blockHashes: engineHashes, parentBlockHash: null, tokenIds, blockSize: BLOCK_SIZE, loraId: null, medium: "GPU", loraName: null };
  const remove: BlockRemovedEvent = { type: "BlockRemoved", blockHashes: engineHashes, medium: "GPU" };
  return { store, remove };
});

const applier = new KvEventApplier(index, hasher);
for (let e = 0; e < ENGINES; e++) applier.addEngine(e, { model: MODEL, blockSize: BLOCK_SIZE });

/** The naive event path: the same hashing, a Map per engine from engine hash to router hash, and the naive index. */
class NaiveApplier {
  readonly maps = Array.from({ length: ENGINES }, () => new Map<bigint, bigint>());
  readonly #router = new BigUint64Array(BLOCKS);

  apply(engine: number, list: readonly KvEvent[]): void {
    const map = this.maps[engine]!;
    for (const e of list) {
      if (e.type === "BlockStored") {
        const seedHash = e.parentBlockHash === null ? root : map.get(e.parentBlockHash);
        if (seedHash === undefined) continue;
        const router = hasher.hashBlocks(e.tokenIds, BLOCK_SIZE, seedHash, this.#router.subarray(0, e.blockHashes.length));
        e.blockHashes.forEach((h, i) => map.set(h, router[i]!));
        naive.store(engine, router);
      } else if (e.type === "BlockRemoved") {
        const gone: bigint[] = [];
        for (const h of e.blockHashes) {
          const r = map.get(h);
          if (r === undefined) continue;
          map.delete(h);
          gone.push(r);
        }
        naive.remove(engine, gone);
      }
    }
  }
}
const naiveApplier = new NaiveApplier();

let next = 0;
const cycle = () => {
  const i = next++ % EVENTS;
  return { e: events[i]!, engine: i % ENGINES };
};
let current = cycle();
{
  const bench = new Bench({ time: TIME_MS, warmup: true });
  const pair = (name: string, apply: (engine: number, list: KvEvent[]) => void) => {
    bench.add(`${name} store`, () => apply(current.engine, [current.e.store]), {
      beforeEach: () => void (current = cycle()),
      afterEach: () => apply(current.engine, [current.e.remove]),
    });
    bench.add(`${name} remove`, () => apply(current.engine, [current.e.remove]), {
      beforeEach: () => {
        current = cycle();
        apply(current.engine, [current.e.store]);
      },
    });
  };
  pair("(a) PrefixIndex + KvEventApplier", (engine, list) => applier.apply(engine, list));
  pair("(b) Map<bigint, Set> + Map per engine", (engine, list) => naiveApplier.apply(engine, list));
  gc(); // start each section without the previous one's garbage
  await bench.run();
  const rows = ["store", "remove"].flatMap((op) => {
    const a = msPerOp(taskByName(bench, `(a) PrefixIndex + KvEventApplier ${op}`));
    return bench.tasks
      .filter((t) => t.name.endsWith(op))
      .map((t) => [t.name, fixed((BLOCKS * 1000) / msPerOp(t), 0), fixed((msPerOp(t) * 1e6) / BLOCKS, 0), ratio(msPerOp(t) / a)]);
  });
  printTable(
    `BlockStored / BlockRemoved events of ${BLOCKS} blocks, applied (router hashing, engine-hash map, index), one thread`,
    ["implementation", "blocks/s", "ns/block", "time vs (a)"],
    rows,
  );
}
if (index.size !== ENTRIES + BLOCKS - 1 || naive.size !== index.size) throw new Error(`store/remove left ${index.size} entries (naive ${naive.size})`);

// ---- Decode + apply: msgpack payloads as vLLM sends them, in the newest (map) and the array layout.
const packr = new Packr({ useRecords: false, variableMapSize: true });
const payloads = events.map(({ store, remove }) => {
  const hashes = Array.from(store.blockHashes);
  const tokens = Array.from(store.tokenIds);
  return {
    mapStore: packr.pack([1.0, [{ type: "BlockStored", block_hashes: hashes, parent_block_hash: null, token_ids: tokens, block_size: BLOCK_SIZE, lora_id: null, medium: "GPU", lora_name: null }], 0]),
    arrayStore: packr.pack([1.0, [["BlockStored", hashes, null, tokens, BLOCK_SIZE, null, "GPU", null]], 0]),
    remove: packr.pack([1.0, [{ type: "BlockRemoved", block_hashes: hashes, medium: "GPU" }], 0]),
  };
});
let currentPayload = payloads[0]!;
{
  const bench = new Bench({ time: TIME_MS, warmup: true });
  const endToEnd = (name: string, apply: (engine: number, list: KvEvent[]) => void) => {
    for (const layout of ["mapStore", "arrayStore"] as const) {
      bench.add(`${name}, store (${layout === "mapStore" ? "map" : "array"} layout)`, () => apply(current.engine, decodeKvEventBatch(currentPayload[layout]).events), {
        beforeEach: () => {
          current = cycle();
          currentPayload = payloads[(next - 1) % EVENTS]!;
        },
        afterEach: () => apply(current.engine, [current.e.remove]),
      });
    }
    bench.add(`${name}, remove`, () => apply(current.engine, decodeKvEventBatch(currentPayload.remove).events), {
      beforeEach: () => {
        current = cycle();
        currentPayload = payloads[(next - 1) % EVENTS]!;
        apply(current.engine, [current.e.store]);
      },
    });
  };
  bench.add("decode only, store (map layout)", () => void decodeKvEventBatch(currentPayload.mapStore));
  endToEnd("(a) decode + PrefixIndex", (engine, list) => applier.apply(engine, list));
  endToEnd("(b) decode + Map<bigint, Set>", (engine, list) => naiveApplier.apply(engine, list));
  gc(); // start each section without the previous one's garbage
  await bench.run();
  const rows = bench.tasks.map((t) => {
    const twin = t.name.startsWith("(b)") ? taskByName(bench, t.name.replace("(b) decode + Map<bigint, Set>", "(a) decode + PrefixIndex")) : t;
    return [t.name, fixed((BLOCKS * 1000) / msPerOp(t), 0), fixed((msPerOp(t) * 1e6) / BLOCKS, 0), ratio(msPerOp(t) / msPerOp(twin))];
  });
  printTable(`msgpack batches of one ${BLOCKS}-block event, decoded and applied end to end, one thread`, ["path", "blocks/s", "ns/block", "time vs (a)"], rows);
}

// ---- Memory.
const stats = index.stats();
printTable(
  `memory per entry (${ENTRIES.toLocaleString("en-US")} entries, maxEngines ${MAX_ENGINES})`,
  ["structure", "bytes/entry", "how"],
  [
    ["PrefixIndex entry (record + share of sets)", fixed(stats.bytesPerEntry, 2), "allocation sizes"],
    ["  of which a lookup reads", fixed(stats.readerBytesPerEntry, 0), "allocation sizes"],
    ["PrefixIndex per live entry at this fill", fixed(stats.bytesAllocated / index.size, 2), `${fixed(stats.bytesAllocated / 2 ** 20, 1)} MiB allocated / entries`],
    ["PrefixIndex, maxEngines 32", fixed(PrefixIndex.create({ capacity: 16, maxEngines: 32 }).stats().bytesPerEntry, 2), "allocation sizes"],
    ["Map<bigint, Set<number>>", fixed(naiveBytes / naive.size, 0), "V8 heap growth after GC"],
  ],
);

// ---- How full a table gets before it evicts: random keys into an empty table, up to its capacity.
{
  const table = PrefixIndex.create({ capacity: ENTRIES, maxEngines: ENGINES });
  const key = new BigUint64Array(1);
  const words = new Uint32Array(key.buffer);
  let first = 0;
  for (let n = 1; n <= table.capacity; n++) {
    words[0] = random32();
    words[1] = random32();
    table.store(n % ENGINES, key);
    if (first === 0 && table.evictions > 0) first = n;
  }
  printTable(
    `eviction before a table of ${table.capacity.toLocaleString("en-US")} entries is full (random keys)`,
    ["point", "value"],
    [
      ["first eviction at occupancy", first === 0 ? "none" : `${fixed((100 * (first - 1)) / table.capacity, 1)}%`],
      ["inserts that evicted, of the first `capacity`", `${table.evictions.toLocaleString("en-US")} (${fixed((100 * table.evictions) / table.capacity, 3)}%)`],
    ],
  );
}
