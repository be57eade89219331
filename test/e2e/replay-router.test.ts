// `kvroute replay` against `kvroute serve` with two simulated engines at full speed: the Mooncake fixture's
// first 100 requests, measured end to end.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { ReplaySummary, RequestResult } from "../../src/index.js";
import { distFile, packageRoot } from "../../src/util/package-root.js";
import { startRouterProcess, type RunningRouter } from "./router-process.js";

const trace = join(packageRoot(), "test", "fixtures", "traces", "mooncake-conversation-200.jsonl");
const scratch = mkdtempSync(join(tmpdir(), "kvroute-replay-router-"));
let router: RunningRouter;
beforeAll(async () => {
  router = await startRouterProcess(["--sim", "2", "--sim-speedup", "0", "--workers", "1"]);
});
afterAll(async () => {
  expect(await router?.stop()).toBe(0);
  rmSync(scratch, { recursive: true, force: true });
});

it("replays a trace through the router: engine-counted cache hits, both engines used, too-long prompts refused", async () => {
  const out = join(scratch, "run");
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [distFile("src/cli/main.js"), "replay", "--trace", trace, "--target", router.url, "--speedup", "1000", "--max-requests", "100", "--json", "--quiet", "--out", out],
    { timeout: 60_000, maxBuffer: 1 << 26 },
  );
  const s = JSON.parse(stdout) as ReplaySummary;
  // The simulated engines' context is 32,768 tokens; the fixture's first 100 prompts include 9 longer ones.
  const lengths = readFileSync(trace, "utf8").trim().split("\n").slice(0, 100).map((l) => (JSON.parse(l) as { input_length: number }).input_length);
  const tooLong = lengths.filter((n) => n >= 32_768).length;
  expect(tooLong).toBe(9);
  expect(s.requests).toMatchObject({ sent: 100, completed: 100, succeeded: 100 - tooLong, failed: tooLong, errorsByKind: { http: tooLong } });
  const results = readFileSync(join(out, "requests.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as RequestResult);
  for (const r of results) {
    const long = lengths[r.index]! >= 32_768;
    expect(r.ok).toBe(!long);
    if (long) expect(r).toMatchObject({ status: 400, error: expect.stringMatching(/32768/) });
    else expect(r).toMatchObject({ status: 200, cachedTokensSource: "engine", outputTokens: r.maxTokens });
  }
  // Every successful request's cached_tokens came from the engine, and the trace's shared prefixes hit.
  expect(s.cache.sources).toEqual({ engine: 100 - tooLong });
  expect(s.cache.requestsReporting).toBe(100 - tooLong);
  expect(s.cache.hitRatio).toBeGreaterThan(0);
  // Both engines served requests (the refused ones never reached an engine).
  expect(s.engines["sim-0"]).toBeGreaterThan(0);
  expect(s.engines["sim-1"]).toBeGreaterThan(0);
  expect((s.engines["sim-0"] ?? 0) + (s.engines["sim-1"] ?? 0)).toBe(100 - tooLong);
  expect(s.latency.ttft.count).toBe(100 - tooLong);
});
