import { execFileSync } from "node:child_process";
import { expect, it } from "vitest";
import { distFile } from "../../src/util/package-root.js";

// The benchmark itself is run by hand (npm run bench:tokenize); this only checks that it runs and prints
// every row, with a tiny time budget. No duration is asserted.
it("bench:tokenize prints every encoder's row and every chat path's row", () => {
  const out = execFileSync(process.execPath, [distFile("bench/tokenize.js")], { env: { ...process.env, BENCH_TIME_MS: "20" }, encoding: "utf8" });
  for (const row of [
    "(a) @huggingface/tokenizers",
    "(a') @huggingface/tokenizers, first sight",
    "(b) fast encoder, first sight",
    "(b') fast encoder, word cache warm",
    "(c) exact tokenization cache hit",
    "(d) tiktoken cl100k_base",
    "(e) template render + @huggingface/tokenizers",
    "(f) template render alone",
    "(g) traced render alone",
    "(h) traced render + tokenization cache",
  ]) {
    expect(out).toMatch(new RegExp(`^${row.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}.*\\s[\\d,.]+\\s+[\\d,.]+\\s+[\\d,.]+x\\s*$`, "m"));
  }
}, 120_000);
