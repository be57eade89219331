// One writer storing and removing at full speed while reader threads query the same shared index.
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { describe, expect, it } from "vitest";
import { NaivePrefixIndex } from "../../../../bench/lib/naive-index.js";
import { PrefixIndex } from "../../../../src/index.js";
import { packageRoot } from "../../../../src/util/package-root.js";
import { audit } from "./audit.js";

const READERS = 3;
const MAX_ENGINES = 64; // two words per engine set
const CHAINS = 48;
const LENGTH = 64;
const WRITER_OPS = 40_000;
const WRITER_MS = 3000;

interface ReaderResult {
  queries: number;
  nonZero: number;
  violation: string | null;
}

function xorshift(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % n;
  };
}

async function stress(capacity: number, seed: number) {
  const random = xorshift(seed);
  const keys = new SharedArrayBuffer(CHAINS * LENGTH * 8);
  const words = new Uint32Array(keys);
  for (let i = 0; i < words.length; i++) words[i] = random(2 ** 32);
  const hashes = new BigUint64Array(keys);
  const chain = (c: number) => hashes.subarray(c * LENGTH, (c + 1) * LENGTH);
  // Each chain may be held by a random third of the engines, and by no other.
  const allowed = new SharedArrayBuffer(CHAINS * MAX_ENGINES);
  const permitted = new Uint8Array(allowed);
  const engines: number[][] = [];
  for (let c = 0; c < CHAINS; c++) {
    engines.push([]);
    for (let e = 0; e < MAX_ENGINES; e++) {
      if (random(3) === 0) {
        permitted[c * MAX_ENGINES + e] = 1;
        engines[c]!.push(e);
      }
    }
    if (engines[c]!.length === 0) {
      permitted[c * MAX_ENGINES + c] = 1;
      engines[c]!.push(c);
    }
  }

  const index = PrefixIndex.create({ capacity, maxEngines: MAX_ENGINES });
  const model = new NaivePrefixIndex();
  // Word 0: the stop flag; word 1: readers ready. The writer starts only once every reader is querying,
  // so the readers overlap the writes however slowly their threads start on a loaded machine.
  const stop = new SharedArrayBuffer(8);
  const script = join(packageRoot(), "test", "router", "kv-index", "prefix-index", "stress-reader.mjs");
  const readers = Array.from({ length: READERS }, (_, r) => {
    const worker = new Worker(script, {
      workerData: { shared: index.shared, keys, chains: CHAINS, length: LENGTH, allowed, stop, maxQueries: 5_000_000, seed: seed + r + 1 },
    });
    return new Promise<ReaderResult>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
    });
  });

  const flags = new Int32Array(stop);
  while (Atomics.load(flags, 1) < READERS) await new Promise((r) => setTimeout(r, 5));
  // The writer: whole chains and prefixes stored, single blocks removed (holes), chains removed, engines cleared.
  const started = Date.now();
  let ops = 0;
  for (; ops < WRITER_OPS && Date.now() - started < WRITER_MS; ops++) {
    const c = random(CHAINS);
    const e = engines[c]![random(engines[c]!.length)]!;
    const h = chain(c);
    const pick = random(100);
    if (pick < 45) {
      const from = random(3) === 0 ? random(LENGTH) : 0;
      const to = from + 1 + random(LENGTH - from);
      index.store(e, h.subarray(from, to), from === 0 ? null : h[from - 1]!);
      model.store(e, h.subarray(from, to));
    } else if (pick < 80) {
      const i = random(LENGTH);
      index.remove(e, h.subarray(i, i + 1));
      model.remove(e, h.subarray(i, i + 1));
    } else if (pick < 99) {
      index.remove(e, h);
      model.remove(e, h);
    } else {
      index.clearEngine(e);
      model.clearEngine(e);
    }
  }
  Atomics.store(flags, 0, 1);
  const results = await Promise.all(readers);
  return { index, model, chain, results, ops };
}

describe("concurrent readers while one writer works at full speed", () => {
  it("no reader reports an engine that was never given the block; the final state matches a single-threaded model", async () => {
    const { index, model, chain, results, ops } = await stress(8192, 12345);
    for (const r of results) {
      expect(r.violation).toBeNull();
      expect(r.queries).toBeGreaterThan(0);
    }
    expect(results.reduce((n, r) => n + r.nonZero, 0)).toBeGreaterThan(0);
    expect(ops).toBeGreaterThan(1000);
    expect(index.evictions).toBe(0);
    for (let c = 0; c < CHAINS; c++) expect(index.overlaps(chain(c))).toEqual(model.overlaps(chain(c), MAX_ENGINES));
    expect(index.size).toBe(model.size);
    expect(audit(index)).toEqual([]);
  }, 30_000);

  it("the same under constant eviction (a table far smaller than the blocks in play): readers stay sound", async () => {
    const { index, results } = await stress(512, 777);
    for (const r of results) {
      expect(r.violation).toBeNull();
      expect(r.queries).toBeGreaterThan(0);
    }
    expect(index.evictions).toBeGreaterThan(0);
    expect(index.size).toBeLessThanOrEqual(index.capacity);
    expect(audit(index)).toEqual([]);
  }, 30_000);
});
