// npm run bench:simulate: two choices `kvroute simulate` makes, measured side by side in one run: handing
// the simulated engines' KV events to the router's applier directly or through the wire encoding, and
// hashing the engines' blocks with SHA-256 (the simulator's default) or XXH64 (its blockHasher option).
import { Bench } from "tinybench";
import {
  createBlockHasher,
  decodeKvEventBatch,
  encodeKvEventBatch,
  EngineCore,
  KvEventApplier,
  PrefixIndex,
  type SimKvEvent,
} from "../src/index.js";
import { toKvEvents } from "../src/tools/policy-sim/kv-adapter.js";
import { fixed, machineLine, msPerOp, printTable, ratio, taskByName } from "./lib/report.js";

const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 1000);
const BLOCKS = 512;
const BLOCK_SIZE = 16;
const MODEL = "bench-model";

console.log(`bench:simulate  ${machineLine()}; ${TIME_MS} ms per task`);

const hasher = await createBlockHasher();

// What an engine publishes for one 8,192-token prefill chunk in a full cache: the chunk's 512 blocks
// stored, and 512 evictions, one BlockRemoved each (as vLLM sends them).
const engineHash = (i: number) => 0x9e3779b97f4a7c15n * BigInt(i + 1) & 0xffff_ffff_ffff_ffffn;
const stored: SimKvEvent[] = [
  {
    type: "BlockStored",
    blockHashes: Array.from({ length: BLOCKS }, (_, i) => engineHash(i)),
    parentBlockHash: null,
    tokenIds: Array.from({ length: BLOCKS * BLOCK_SIZE }, (_, i) => (Math.imul(i + 1, 2654435761) >>> 0) % 150_000),
    blockSize: BLOCK_SIZE,
    loraName: null,
    medium: "GPU",
  },
];
const removed: SimKvEvent[] = Array.from({ length: BLOCKS }, (_, i) => ({ type: "BlockRemoved", blockHashes: [engineHash(i)], medium: "GPU" }));

function applierFor(): KvEventApplier {
  const applier = new KvEventApplier(PrefixIndex.create({ capacity: 4 * BLOCKS, maxEngines: 8 }), hasher);
  applier.addEngine(0, { model: MODEL, blockSize: BLOCK_SIZE });
  return applier;
}
const direct = applierFor();
const wire = applierFor();

const events = new Bench({ time: TIME_MS, warmup: true });
events
  .add("(a) toKvEvents, then apply", () => {
    direct.apply(0, toKvEvents(stored));
    direct.apply(0, toKvEvents(removed));
  })
  .add("(b) encode + decode (array layout), then apply", () => {
    wire.apply(0, decodeKvEventBatch(encodeKvEventBatch(0, stored, 0, "array")).events);
    wire.apply(0, decodeKvEventBatch(encodeKvEventBatch(0, removed, 0, "array")).events);
  });
await events.run();
if (direct.counters.unknownBlock + wire.counters.unknownBlock > 0) throw new Error("a removal missed its block: the rows did not do the same work");
const directMs = msPerOp(taskByName(events, "(a) toKvEvents, then apply"));
printTable(
  `a prefill chunk's KV events into the router's index: ${BLOCKS} blocks stored, then ${BLOCKS} removed one event each`,
  ["path", "ns/block", "blocks/s", "time vs (a)"],
  events.tasks.map((t) => {
    const ms = msPerOp(t);
    return [t.name, fixed((ms * 1e6) / (2 * BLOCKS), 0), fixed((2 * BLOCKS) / (ms / 1000), 0), ratio(ms / directMs)];
  }),
);

// A fresh engine prefilling a 12,035-token prompt (the Mooncake conversation mean): every block is hashed,
// stored and published.
const PROMPT = 12_035;
const prompt = Array.from({ length: PROMPT }, (_, i) => (Math.imul(i + 7, 2654435761) >>> 0) % 150_000);
function prefill(blockHasher?: typeof hasher): void {
  const core = new EngineCore({ numBlocks: 1024, maxModelLen: 16_384, maxNumBatchedTokens: 16_384, kvEventSink: () => {}, ...(blockHasher ? { blockHasher } : {}) });
  core.add({ id: 0, promptTokenIds: prompt, sampling: { maxTokens: 1, ignoreEos: true } });
  while (core.hasWork) core.step();
}
const hashing = new Bench({ time: TIME_MS, warmup: true });
hashing.add("(a) SHA-256 per block (default)", () => prefill()).add("(b) XXH64, one kernel call (blockHasher)", () => prefill(hasher));
await hashing.run();
const shaMs = msPerOp(taskByName(hashing, "(a) SHA-256 per block (default)"));
const blocks = Math.floor(PROMPT / BLOCK_SIZE);
printTable(
  `one EngineCore prefill of a ${PROMPT.toLocaleString("en-US")}-token prompt (${blocks} blocks), fresh engine`,
  ["engine block hashes", "µs/prompt", "ns/block", "time vs (a)"],
  hashing.tasks.map((t) => {
    const ms = msPerOp(t);
    return [t.name, fixed(ms * 1000), fixed((ms * 1e6) / blocks, 0), ratio(ms / shaMs)];
  }),
);
