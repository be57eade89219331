import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { expect, it } from "vitest";
import { distFile } from "../../src/util/package-root.js";

// The benchmark is run by hand (npm run bench:simulate); this only checks that it runs and prints every
// row, with a tiny time budget. No duration is asserted.
it("bench:simulate prints the KV-event and block-hashing rows", async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [distFile("bench/simulate.js")], {
    env: { ...process.env, BENCH_TIME_MS: "20" },
    encoding: "utf8",
    timeout: 120_000,
  });
  for (const row of [
    "(a) toKvEvents, then apply",
    "(b) encode + decode (array layout), then apply",
    "(a) SHA-256 per block (default)",
    "(b) XXH64, one kernel call (blockHasher)",
  ]) {
    expect(stdout).toMatch(new RegExp(`${row.replace(/[()+.]/g, "\\$&")}\\s+[\\d,.]+\\s+[\\d,.]+\\s+[\\d.]+x`));
  }
}, 120_000);
