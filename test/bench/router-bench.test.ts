import { execFileSync, spawnSync } from "node:child_process";
import { expect, it } from "vitest";
import { distFile, packageRoot } from "../../src/util/package-root.js";

// The router's benchmarks are run by hand (npm run bench:serve, npm run bench:pool); these only check
// that they run end to end and print every row, with tiny budgets. No duration is asserted.
it("bench:serve prints the yardsticks and every router row, without errors", () => {
  const out = execFileSync(process.execPath, [distFile("bench/serve.js")], {
    env: { ...process.env, BENCH_SECONDS: "1", BENCH_WARMUP_SECONDS: "1" },
    encoding: "utf8",
  });
  const rows = [
    "bare uWebSockets.js",
    "(a) router, 256 token ids",
    "(c) router, chat, repeated 900-word system prompt",
    "(u) router, chat, unique 900-word prompts",
    "(b) router, 256 token ids, streaming 16 tokens",
    "(a) over HTTP engines",
    "(b) over HTTP engines",
    "(a) at half its peak",
    "(c) at half its peak",
    "(a) in front of null engines",
    "(a) in front of null engines at half that peak",
  ];
  // nginx is a Debian extra: its row is there when it is installed, and a note says why when it is not.
  if (/nginx is not installed/.test(out)) console.log("nginx is not installed (Debian: nginx-light): the bench's nginx row was skipped");
  else rows.push("nginx, 1 worker, proxying to the bare server");
  for (const row of rows) {
    expect(out).toMatch(new RegExp(`^${row.replace(/[()]/g, "\\$&")}.*\\s0\\s*$`, "m")); // last column: 0 errors
  }
  // The chat prompt is what the rows say it is: about 924 tokens.
  const tokens = Number(/chat: 900-word system prompt and a numbered question, (\d+) prompt tokens/.exec(out)?.[1]);
  expect(tokens).toBeGreaterThan(900);
  expect(tokens).toBeLessThan(960);
}, 180_000);

it("bench:serve-ab compares checkouts in alternating rounds, and refuses a folder that is not a built one or a bad rate", () => {
  // This checkout against itself: one round each, then the medians.
  const root = packageRoot();
  const out = execFileSync(process.execPath, [distFile("bench/serve-ab.js"), root, "--rounds", "1", "--seconds", "1"], { encoding: "utf8" });
  const escaped = root.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  expect(out.match(new RegExp(`^1\\s+${escaped}\\s+[\\d,]+\\s`, "gm"))).toHaveLength(2);
  expect(out).toMatch(/^medians$/m);
  const refused = spawnSync(process.execPath, [distFile("bench/serve-ab.js"), "/nonexistent-checkout"], { encoding: "utf8" });
  expect(refused.status).toBe(2);
  expect(refused.stderr).toContain("/nonexistent-checkout has no dist/src/cli/main.js");
  const badRate = spawnSync(process.execPath, [distFile("bench/serve-ab.js"), "--rate", "0"], { encoding: "utf8" });
  expect(badRate.status).toBe(2);
  expect(badRate.stderr).toContain("--rate must be a number of requests a second above 0, got 0");
}, 120_000);

it("bench:pool prints a row per prompt length and where the line falls", () => {
  const out = execFileSync(process.execPath, [distFile("bench/pool.js")], { env: { ...process.env, BENCH_TIME_MS: "20" }, encoding: "utf8" });
  for (const n of ["256", "4,096", "131,072"]) expect(out).toMatch(new RegExp(`^${n}\\s+[\\d,.]+\\s+[\\d,.]+\\s+[\\d,.]+`, "m"));
  expect(out).toMatch(/the work costs the main thread more than handing it to the pool|costs the main thread more than the work itself at every length/);
}, 120_000);
