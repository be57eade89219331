import { execFileSync } from "node:child_process";
import { expect, it } from "vitest";
import { distFile } from "../../src/util/package-root.js";

// The benchmark itself is run by hand (npm run bench:index); this only checks that it runs and prints every
// table and row, on a small index with a tiny time budget. No duration is asserted.
it("bench:index prints every table and row", () => {
  const out = execFileSync(process.execPath, [distFile("bench/index.js")], {
    env: { ...process.env, BENCH_TIME_MS: "20", BENCH_INDEX_ENTRIES: "20000" },
    encoding: "utf8",
  });
  for (const title of ["overlaps of a 256-block prompt", "BlockStored / BlockRemoved events of 256 blocks", "msgpack batches of one 256-block event", "memory per entry", "eviction before a table"]) {
    expect(out).toContain(title);
  }
  for (const row of ["(a) PrefixIndex.overlaps", "(b) Map<bigint, Set> walk", "(a) PrefixIndex + KvEventApplier store", "(b) Map<bigint, Set> + Map per engine remove", "(a) decode + PrefixIndex, store (map layout)", "(b) decode + Map<bigint, Set>, remove", "first eviction at occupancy"]) {
    expect(out).toContain(row);
  }
  // Every measured row ends with a ratio against its (a) row.
  expect(out.match(/\d\.\d\dx$/gm)?.length).toBeGreaterThanOrEqual(15);
}, 120_000);
