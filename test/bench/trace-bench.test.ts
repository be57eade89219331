import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { expect, it } from "vitest";
import { distFile } from "../../src/util/package-root.js";

// The benchmark is run by hand (npm run bench:trace); this only checks that it runs and prints every row,
// with a tiny time budget. No duration is asserted.
it("bench:trace prints the reader, prompt and histogram rows", async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [distFile("bench/trace.js")], {
    env: { ...process.env, BENCH_TIME_MS: "20" },
    encoding: "utf8",
    timeout: 120_000,
  });
  for (const row of [
    "(a) readline + JSON.parse, no checks",
    "(b) openTrace, Mooncake JSONL",
    "(c) openTrace, Azure CSV (2024 stamps)",
    "(a) synthesise the prompt",
    "(b) synthesise + completionRequestBody (join)",
    "(c) synthesise + JSON.stringify body",
    "(a) hdr-histogram-js, JavaScript mode",
    "(b) hdr-histogram-js, WebAssembly mode",
    "(c) LatencyHistogram.record (JS mode + checks)",
  ]) {
    expect(stdout).toMatch(new RegExp(`${row.replace(/[()+.]/g, "\\$&")}\\s+[\\d,.]+\\s+[\\d,.]+\\s+[\\d.]+x`));
  }
}, 120_000);
