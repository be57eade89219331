import { execFileSync } from "node:child_process";
import { expect, it } from "vitest";
import { distFile } from "../../src/util/package-root.js";

// The benchmark itself is run by hand (npm run bench:protocol); this only checks that it runs and prints
// every row, with a tiny time budget. No duration is asserted.
it("bench:protocol prints a row per codec and the end-to-end row", () => {
  const out = execFileSync(process.execPath, [distFile("bench/protocol.js")], {
    env: { ...process.env, BENCH_TIME_MS: "20" },
    encoding: "utf8",
  });
  for (const row of ["(a) msgpackr, plain maps (the protocol)", "(b) msgpackr, records extension", "(c) JSON lines", "EngineClient ↔ simulator"]) {
    expect(out).toMatch(new RegExp(`${row.replace(/[()↔]/g, ".")}\\s+\\d[\\d,.]*\\s+\\d`));
  }
}, 120_000);
