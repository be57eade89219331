import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import type { ReplaySummary, RequestResult, TraceSummary } from "../../../src/index.js";
import { packageRoot } from "../../../src/util/package-root.js";
import { startFakeOpenAI, type FakeServer } from "./fake-openai.js";
import { kvroute } from "../../run-cli.js";

const fixture = (name: string) => join(packageRoot(), "test", "fixtures", "traces", name);
const scratch = mkdtempSync(join(tmpdir(), "kvroute-replay-cli-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let server: FakeServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});


describe("kvroute replay", () => {
  it("prints its help", async () => {
    const { code, stdout } = await kvroute(["replay", "--help"]);
    expect(code).toBe(0);
    for (const option of ["--trace", "--generate", "--target", "--speedup", "--max-concurrency", "--max-requests", "--duration", "--slo", "--strict", "--json", "--out", "ignore_eos"]) {
      expect(stdout).toContain(option);
    }
  });

  it("rejects bad options with a usage error", async () => {
    expect(await kvroute(["replay", "--trace", fixture("mooncake-good.jsonl"), "--target", "http://127.0.0.1:9", "--speedup", "fast"])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--speedup must be a number above 0, got "fast"'),
    });
    expect(await kvroute(["replay", "--target", "http://127.0.0.1:9"])).toMatchObject({ code: 2, stderr: expect.stringContaining("exactly one of --trace FILE and --generate SPEC") });
    expect(await kvroute(["replay", "--trace", fixture("mooncake-good.jsonl")])).toMatchObject({ code: 2, stderr: expect.stringContaining("--target URL is required") });
    expect(await kvroute(["replay", "--nope"])).toMatchObject({ code: 2, stderr: expect.stringContaining("Unknown option '--nope'") });
  });

  it("replays a trace and writes the summary, the per-request lines and an offline HTML report", async () => {
    server = await startFakeOpenAI({ model: "served-model", behaviour: (i) => (i === 2 ? { status: 503 } : { tokenDelayMs: 1 }) });
    const out = join(scratch, "run");
    const { code, stdout, stderr } = await kvroute([
      "replay", "--trace", fixture("mooncake-good.jsonl"), "--target", server.base.replace(/\/v1$/, ""),
      "--speedup", "1000", "--slo", "ttft=60000,itl=60000", "--json", "--out", out,
    ]);
    expect(code).toBe(0);
    const summary = JSON.parse(stdout) as ReplaySummary & { files: Record<string, string> };
    expect(summary.model).toBe("served-model"); // discovered from /v1/models
    expect(server.received.every((r) => r.body.model === "served-model")).toBe(true);
    expect(summary.requests).toMatchObject({ sent: 5, completed: 5, succeeded: 4, failed: 1, errorsByKind: { http: 1 } });
    expect(summary.goodput).toMatchObject({ goodRequests: 4 });
    expect(summary.trace).toMatchObject({ format: "mooncake", blockSize: 512, records: 5, badLines: 0 });
    expect(summary.cache.requestsReporting).toBe(4);
    expect(Object.values(summary.engines).reduce((a, b) => a + b, 0)).toBe(5);
    expect(summary.files.dir).toBe(out);

    const onDisk = JSON.parse(readFileSync(join(out, "summary.json"), "utf8")) as ReplaySummary;
    expect(onDisk.requests).toEqual(summary.requests);
    const lines = readFileSync(join(out, "requests.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as RequestResult);
    expect(lines.map((l) => l.index).sort()).toEqual([0, 1, 2, 3, 4]);
    expect(lines.filter((l) => !l.ok)).toMatchObject([{ status: 503, errorKind: "http", error: "HTTP 503: fake failure 503" }]);

    const html = readFileSync(join(out, "report.html"), "utf8");
    expect(html.match(/<svg /g)).toHaveLength(6);
    for (const title of ["TTFT, cumulative distribution", "End-to-end latency, cumulative distribution", "Output tokens per second", "Cache-hit ratio over time", "Requests per engine"]) {
      expect(html).toContain(title);
    }
    // Self-contained: no script, no stylesheet or image fetched from anywhere.
    expect(html).not.toMatch(/<script|<link|<img|\ssrc=|\shref=|@import|url\(/i);

    // Progress for machines: JSON lines on stderr.
    const progress = stderr.trim().split("\n").map((l) => JSON.parse(l) as { event: string; sent: number });
    expect(progress.at(-1)).toMatchObject({ event: "progress", sent: 5 });
  });

  it("spreads a replay over several targets given as --target URL1,URL2", async () => {
    server = await startFakeOpenAI({ model: "served-model" });
    const second = await startFakeOpenAI({ model: "served-model" });
    try {
      const targets = `${server.base.replace(/\/v1$/, "")},${second.base}`;
      const { code, stdout } = await kvroute(["replay", "--trace", fixture("mooncake-good.jsonl"), "--target", targets, "--speedup", "1000", "--json", "--quiet", "--out", join(scratch, "two")]);
      expect(code).toBe(0);
      const summary = JSON.parse(stdout) as ReplaySummary;
      expect(summary.target).toBe(`${server.base},${second.base}`);
      expect(summary.requests).toMatchObject({ sent: 5, succeeded: 5 });
      expect([server.received.length, second.received.length]).toEqual([3, 2]);
    } finally {
      await second.close();
    }
  });

  it("prints a human summary and a progress line without --json", async () => {
    server = await startFakeOpenAI({ behaviour: () => ({ plain: true, noCachedTokens: true }) });
    const { code, stdout, stderr } = await kvroute(["replay", "--generate", "groups=2,prompts=3,system=64,user=16,output=4,rate=0", "--target", server.base, "--model", "m", "--out", join(scratch, "human")]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/kvroute replay: 6 sent, 6 succeeded, 0 failed/);
    expect(stdout).toMatch(/cache hit\s+n\/a \(the server reported no cached_tokens\)/);
    expect(stdout).toMatch(/engines\s+unknown 6/);
    expect(stderr).toMatch(/100%\s+sent 6\s+done 6\s+in flight 0\s+errors 0/);
  });

  it("--strict stops at the first bad line, exits 1 naming it, and keeps the results so far", async () => {
    server = await startFakeOpenAI();
    const out = join(scratch, "strict");
    const { code, stdout, stderr } = await kvroute(["replay", "--trace", fixture("mooncake-bad.jsonl"), "--strict", "--target", server.base, "--model", "m", "--out", out, "--quiet"]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/bad trace line: .*mooncake-bad\.jsonl:3: not valid JSON/);
    expect(stdout).toMatch(/2 sent, 2 succeeded/);
    expect(readFileSync(join(out, "requests.jsonl"), "utf8").trim().split("\n")).toHaveLength(2);
    // Without --strict the same trace replays its good lines and counts the bad ones.
    const lenient = await kvroute(["replay", "--trace", fixture("mooncake-bad.jsonl"), "--target", server.base, "--model", "m", "--out", join(scratch, "lenient"), "--quiet", "--json"]);
    expect(lenient.code).toBe(0);
    expect((JSON.parse(lenient.stdout) as ReplaySummary).trace).toMatchObject({ records: 3, badLines: 7 });
  });

  it("exits 1 when nothing succeeds, with the cause", async () => {
    const out = join(scratch, "refused");
    const { code, stdout } = await kvroute(["replay", "--trace", fixture("mooncake-good.jsonl"), "--target", "http://127.0.0.1:9", "--model", "m", "--out", out, "--quiet", "--speedup", "100"]);
    expect(code).toBe(1);
    expect(stdout).toMatch(/0 succeeded, 5 failed/);
    expect(stdout).toMatch(/errors\s+connect 5; first: connection refused by 127\.0\.0\.1:9/);
    expect(existsSync(join(out, "report.html"))).toBe(true);
  });

  it("--dry-run checks a trace and prints its figures", async () => {
    const { code, stdout } = await kvroute(["replay", "--trace", fixture("mooncake-conversation-200.jsonl"), "--dry-run", "--json"]);
    expect(code).toBe(0);
    const s = JSON.parse(stdout) as TraceSummary;
    expect(s.records).toBe(200);
    expect(s.blocks?.blockSize).toBe(512);
    const text = await kvroute(["replay", "--trace", fixture("azure-bad.csv"), "--dry-run"]);
    expect(text.stdout).toMatch(/records\s+3 \(6 bad lines skipped/);
    expect(text.stdout).toMatch(/bad line\s+4: expected 3 comma-separated fields, got 2/);
  });
});
