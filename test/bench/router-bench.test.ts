import { execFileSync } from "node:child_process";
import { expect, it } from "vitest";
import { distFile } from "../../src/util/package-root.js";

// The router's benchmarks are run by hand (npm run bench:serve, npm run bench:pool); these only check
// that they run end to end and print every row, with tiny budgets. No duration is asserted.
it("bench:serve prints the ceiling and every router row, without errors", () => {
  const out = execFileSync(process.execPath, [distFile("bench/serve.js")], { env: { ...process.env, BENCH_SECONDS: "1" }, encoding: "utf8" });
  for (const row of ["ceiling: bare uWebSockets.js", "(a) router, 256-token ids", "(a) router, same, HTTP engines", "(b) router, same, streaming 16 tokens", "(b) router, same, streaming, HTTP engines", "(a) at half its peak"]) {
    expect(out).toMatch(new RegExp(`${row.replace(/[()]/g, "\\$&")}.*\\s0\\s*$`, "m")); // last column: 0 errors
  }
}, 120_000);

it("bench:pool prints a row per prompt length and where the line falls", () => {
  const out = execFileSync(process.execPath, [distFile("bench/pool.js")], { env: { ...process.env, BENCH_TIME_MS: "20" }, encoding: "utf8" });
  for (const n of ["256", "4,096", "131,072"]) expect(out).toMatch(new RegExp(`^${n}\\s+[\\d,.]+\\s+[\\d,.]+\\s+[\\d,.]+`, "m"));
  expect(out).toMatch(/the work costs the main thread more than handing it to the pool|costs the main thread more than the work itself at every length/);
}, 120_000);
