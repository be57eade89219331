// npm run bench:hash: chained block hashing per implementation, measured side by side in one run.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { Bench } from "tinybench";
import { createBlockHasher, createReferenceHasher, hashBlocksPlain } from "../src/index.js";
import { packageRoot } from "../src/util/package-root.js";
import { fixed, machineLine, msPerOp, printTable, ratio, taskByName } from "./lib/report.js";

const BLOCK_SIZE = 16;
const SIZES = [4096, 131072];
const ROOT = 0x9e3779b97f4a7c15n;
const KERNEL = "(a) WASM kernel, one call";
const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 1000);

/** Deterministic tokens; the C benchmark generates the same ones. */
function tokensOf(n: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = (Math.imul(i + 1, 2654435761) ^ (i >>> 3)) >>> 0;
  return out;
}

interface Native {
  nsPerBlock: number;
  lastHash: bigint;
}

/** Builds and runs the C limit, or says why it cannot. */
function nativeRunner(): ((tokens: number) => Native) | string {
  const source = join(packageRoot(), "bench", "native", "chained-xxh64.c");
  const cc = ["cc", "gcc", "clang"].find((c) => spawnSync(c, ["--version"]).status === 0);
  if (!cc) return "no C compiler (cc, gcc or clang) on PATH";
  const buildDir = join(packageRoot(), "bench", "native", "build");
  mkdirSync(buildDir, { recursive: true });
  const binary = join(buildDir, "chained-xxh64");
  const built = spawnSync(cc, ["-O3", "-o", binary, source], { encoding: "utf8" });
  if (built.status !== 0) {
    const missingHeader = /xxhash\.h/.test(built.stderr);
    return missingHeader
      ? "xxhash.h not found: install libxxhash-dev (Debian) to time the native limit"
      : `the C benchmark did not compile: ${built.stderr.trim().split("\n")[0]}`;
  }
  if (!existsSync(binary)) return "the C benchmark binary is missing after compiling";
  return (tokens) => {
    const out = JSON.parse(execFileSync(binary, [String(tokens), String(BLOCK_SIZE), String(TIME_MS)], { encoding: "utf8" })) as {
      ns_per_block: number;
      last_hash: string;
    };
    return { nsPerBlock: out.ns_per_block, lastHash: BigInt(out.last_hash) };
  };
}

const kernel = await createBlockHasher({ kernel: "require" });
const reference = await createReferenceHasher();
const native = nativeRunner();

console.log(`bench:hash  chained XXH64, block size ${BLOCK_SIZE}; ${machineLine()}; ${TIME_MS} ms per task`);

for (const n of SIZES) {
  const tokens = tokensOf(n);
  const blocks = Math.floor(n / BLOCK_SIZE);
  const want = reference.hashBlocks(tokens, BLOCK_SIZE, ROOT);
  if (!kernel.hashBlocks(tokens, BLOCK_SIZE, ROOT).every((h, i) => h === want[i])) throw new Error("kernel disagrees with xxhash-wasm");
  if (!hashBlocksPlain(tokens, BLOCK_SIZE, ROOT).every((h, i) => h === want[i])) throw new Error("plain TypeScript disagrees with xxhash-wasm");

  // Every implementation writes into a reused result array, as the router's hot path does; one more row
  // shows the kernel through the allocating form of the API, to make the cost of a fresh array visible.
  const out = new BigUint64Array(blocks);
  const bench = new Bench({ time: TIME_MS, warmup: true });
  bench
    .add(KERNEL, () => void kernel.hashBlocks(tokens, BLOCK_SIZE, ROOT, out))
    .add("(a') WASM kernel, new result array", () => void kernel.hashBlocks(tokens, BLOCK_SIZE, ROOT))
    .add("(b) xxhash-wasm per block", () => void reference.hashBlocks(tokens, BLOCK_SIZE, ROOT, out))
    .add("(c) plain TypeScript XXH64", () => void hashBlocksPlain(tokens, BLOCK_SIZE, ROOT, out));
  await bench.run();

  const kernelNs = (msPerOp(taskByName(bench, KERNEL)) * 1e6) / blocks;
  const rows: (string | number)[][] = bench.tasks.map((task) => {
    const ns = (msPerOp(task) * 1e6) / blocks;
    return [task.name, fixed(ns), fixed((BLOCK_SIZE * 1e9) / ns / 1e6), ratio(ns / kernelNs)];
  });
  if (typeof native === "string") {
    rows.push(["(d) native C XXH64 (limit)", "-", "-", `missing: ${native}`]);
  } else {
    const result = native(n);
    if (result.lastHash !== want[blocks - 1]) throw new Error("the C benchmark hashed different bytes");
    rows.push(["(d) native C XXH64 (limit)", fixed(result.nsPerBlock), fixed((BLOCK_SIZE * 1e9) / result.nsPerBlock / 1e6), ratio(result.nsPerBlock / kernelNs)]);
    rows.push(["kernel / native", "", "", ratio(kernelNs / result.nsPerBlock)]);
  }
  printTable(`${n.toLocaleString("en-US")} tokens = ${blocks.toLocaleString("en-US")} blocks`, ["implementation", "ns/block", "Mtokens/s", "time vs (a)"], rows);
}
