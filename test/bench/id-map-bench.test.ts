import { execFileSync } from "node:child_process";
import { expect, it } from "vitest";
import { distFile } from "../../src/util/package-root.js";

// The benchmark itself is run by hand (npm run bench:id-map); this only checks that it runs and prints both
// workloads' rows with figures, with a tiny time budget. No duration is asserted.
it("bench:id-map prints a row with figures for each workload", () => {
  const out = execFileSync(process.execPath, [distFile("bench/id-map.js")], {
    env: { ...process.env, BENCH_TIME_MS: "20" },
    encoding: "utf8",
  });
  expect(out).toContain("ns per operation (mean), IdMap over Map");
  for (const workload of ["in flight", "pending"]) expect(out).toMatch(new RegExp(`^${workload}\\s+[\\d,.]+\\s+[\\d,.]+\\s+[\\d.]+x$`, "m"));
}, 60_000);
