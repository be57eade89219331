import { execFileSync } from "node:child_process";
import { expect, it } from "vitest";
import { distFile } from "../../src/util/package-root.js";

// The benchmark itself is run by hand (npm run bench:hash); this only checks that it runs and prints every
// row, with a tiny time budget. No duration is asserted.
it("bench:hash prints every implementation's row for both prompt sizes", () => {
  const out = execFileSync(process.execPath, [distFile("bench/hash.js")], {
    env: { ...process.env, BENCH_TIME_MS: "20" },
    encoding: "utf8",
  });
  for (const title of ["4,096 tokens = 256 blocks", "131,072 tokens = 8,192 blocks"]) expect(out).toContain(title);
  for (const row of ["(a) WASM kernel", "(b) xxhash-wasm per block", "(c) plain TypeScript XXH64", "(d) native C XXH64"]) {
    expect(out.split(row).length - 1).toBe(2);
  }
  // The native row either has figures or says why it is missing.
  expect(out).toMatch(/\(d\) native C XXH64 \(limit\)\s+(\d[\d,.]*\s|-\s+-\s+missing: )/);
}, 120_000);
