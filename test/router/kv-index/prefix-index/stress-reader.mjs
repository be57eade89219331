// A reader thread of the concurrency stress test (plain JavaScript: worker threads cannot load TypeScript).
// Queries the shared index as fast as it can until told to stop, and checks every answer against what the
// writer may have done: an engine may only ever hold the blocks of chains it is allowed.
import { parentPort, workerData } from "node:worker_threads";
import { PrefixIndex } from "../../../../dist/src/index.js";

const { shared, keys, chains, length, allowed, stop, maxQueries } = workerData;
const index = PrefixIndex.attach(shared);
const hashes = new BigUint64Array(keys);
const permitted = new Uint8Array(allowed); // chains × maxEngines
const stopFlag = new Int32Array(stop);
const out = new Uint32Array(index.maxEngines);

let queries = 0;
let nonZero = 0;
let violation = null;
let seed = (workerData.seed >>> 0) || 1;
const random = (n) => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
};

Atomics.add(stopFlag, 1, 1);
while (Atomics.load(stopFlag, 0) === 0 && queries < maxQueries && violation === null) {
  const c = random(chains);
  const chain = hashes.subarray(c * length, (c + 1) * length);
  index.overlaps(chain, out);
  for (let e = 0; e < index.maxEngines; e++) {
    if (out[e] === 0) continue;
    nonZero++;
    if (out[e] > length || permitted[c * index.maxEngines + e] === 0) {
      violation = `chain ${c}: engine ${e} reported with overlap ${out[e]}, but it was never given this chain's blocks`;
    }
  }
  const i = random(length);
  for (const e of index.holders(chain[i])) {
    if (permitted[c * index.maxEngines + e] === 0) violation = `chain ${c} block ${i}: engine ${e} reported as a holder, but was never given it`;
  }
  queries++;
}
parentPort.postMessage({ queries, nonZero, violation });
