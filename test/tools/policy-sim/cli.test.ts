import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { ReplaySummary } from "../../../src/tools/replay/stats.js";
import type { SimulationReport } from "../../../src/tools/policy-sim/report.js";
import { packageRoot } from "../../../src/util/package-root.js";
import { kvroute } from "../../run-cli.js";

const fixture = (name: string) => join(packageRoot(), "test", "fixtures", "traces", name);
const scratch = mkdtempSync(join(tmpdir(), "kvroute-simulate-cli-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));


const small = ["--trace", fixture("mooncake-conversation-200.jsonl"), "--max-requests", "30", "--engines", "2"];

describe("kvroute simulate", () => {
  it("prints its help", async () => {
    const { code, stdout } = await kvroute(["simulate", "--help"]);
    expect(code).toBe(0);
    for (const option of ["--trace", "--generate", "--policy", "--engines", "--blocks", "--engine-block-size", "--max-num-seqs", "--max-num-batched-tokens", "--prefill-ms-per-token", "--kv-event-delay-ms", "--jobs", "--json", "H100"]) {
      expect(stdout).toContain(option);
    }
  });

  it("prints the policies side by side, with the bound and the simulation speed", async () => {
    const { code, stdout, stderr } = await kvroute(["simulate", ...small, "--policy", "kv,round-robin"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^policy\s+hit ratio\s+TTFT mean\s+TTFT p50\s+TTFT p99\s+TTFT err\s.*virtual s\/wall s$/m);
    expect(stdout).toMatch(/^kv\s+\d+\.\d\d%\s/m);
    expect(stdout).toMatch(/^round-robin\s+\d+\.\d\d%\s/m);
    expect(stdout).toMatch(/^bound\s+\d+\.\d\d% hit ratio for one unbounded cache shared by all engines \(16-token blocks/m);
    expect(stdout).toMatch(/^fleet bound\s+\d+\.\d\d% hit ratio for one LRU cache of the fleet's 55,296 blocks/m);
    expect(stderr).toMatch(/^kvroute simulate: kv: 30 requests/m);
  });

  it("prints the same as JSON, and writes a results folder per policy", async () => {
    const out = join(scratch, "out");
    const { code, stdout } = await kvroute(["simulate", ...small, "--policy", "least-loaded,random", "--json", "--quiet", "--out", out]);
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as SimulationReport;
    expect(Object.keys(report).sort()).toEqual(["bound", "fleet_bound", "policies", "settings", "trace", "wall_sec"]);
    expect(report.policies.map((p) => p.policy)).toEqual(["least-loaded", "random"]);
    for (const p of report.policies) {
      expect(Object.keys(p).sort()).toEqual(
        ["approx", "balance", "cached_tokens", "e2e_ms", "engines", "hit_ratio", "itl_ms", "kv_events", "mode", "paths", "policy", "prompt_tokens", "requests", "speed", "throughput", "ttft_ms", "ttft_prediction", "virtual_sec", "wall_sec"],
      );
      expect(Object.keys(p.ttft_ms).sort()).toEqual(["max", "mean", "p50", "p90", "p99"]);
      expect(p.ttft_prediction.first_tokens).toBe(30);
      expect(p.ttft_prediction.mean_abs_error_ms).toBeGreaterThanOrEqual(0);
      expect(p.engines).toHaveLength(2);
      expect(p.requests).toEqual({ sent: 30, succeeded: 30, failed: 0 });
      expect(p.hit_ratio).toBeGreaterThan(0);
      expect(p.speed).toBeGreaterThan(0);
      const summary = JSON.parse(readFileSync(join(out, p.policy, "summary.json"), "utf8")) as ReplaySummary;
      expect(summary).toMatchObject({ tool: "kvroute simulate", requests: { succeeded: 30 } });
      expect(summary.cache.hitRatio).toBeCloseTo(p.hit_ratio!, 12);
      expect(readFileSync(join(out, p.policy, "requests.jsonl"), "utf8").trim().split("\n")).toHaveLength(30);
      expect(existsSync(join(out, p.policy, "report.html"))).toBe(true);
    }
    expect(report.bound).toMatchObject({ block_size: 16 });
    expect(report.bound.hit_ratio).toBeGreaterThanOrEqual(Math.max(...report.policies.map((p) => p.hit_ratio!)));
    expect(report.fleet_bound).toMatchObject({ block_size: 16, capacity_blocks: 2 * 27_648 });
    expect(report.fleet_bound.hit_ratio).toBeLessThanOrEqual(report.bound.hit_ratio!);
    expect(report.settings).toMatchObject({ engines: 2, mode: "aggregated", prefill_engines: 0, blocks: 27_648, max_model_len: 131_072 });
    expect(report.policies.every((p) => p.mode === "aggregated" && p.paths.whole === 30)).toBe(true);
  });

  it("simulates prefill and decode engines, the JSON rows carrying the mode", async () => {
    const { code, stdout } = await kvroute(["simulate", "--trace", fixture("mooncake-conversation-200.jsonl"), "--max-requests", "20", "--prefill-engines", "1", "--decode-engines", "2", "--policy", "kv", "--json", "--quiet"]);
    expect(code).toBe(0);
    const report = JSON.parse(stdout) as SimulationReport;
    expect(report.settings).toMatchObject({ engines: 3, mode: "disaggregated", prefill_engines: 1, decode_engines: 2, kv_transfer_gbps: 400 });
    expect(report.policies[0]).toMatchObject({ mode: "disaggregated", paths: { split: 20 }, requests: { succeeded: 20 } });
    expect(report.policies[0]!.engines.map((e) => [e.engine, e.role])).toEqual([["prefill-0", "prefill"], ["decode-0", "decode"], ["decode-1", "decode"]]);
    const table = await kvroute(["simulate", "--trace", fixture("mooncake-conversation-200.jsonl"), "--max-requests", "20", "--prefill-engines", "1", "--decode-engines", "2", "--policy", "kv", "--quiet"]);
    expect(table.stdout).toMatch(/1 prefill \+ 2 decode engines \(disaggregated, 400 Gb\/s links\)/);
    expect(table.stdout).toMatch(/ITL mean\s+ITL p99/);
  });

  it("answers bad options with a usage error", async () => {
    const bad = async (args: string[], message: string) => {
      expect(await kvroute(["simulate", ...args])).toMatchObject({ code: 2, stderr: expect.stringContaining(message) });
    };
    await bad([...small, "--policy", "kv,fastest"], '--policy: "fastest" is not one of kv, kv-blocks, round-robin, random, least-loaded');
    await bad([...small, "--engine-speeds", "1,0,1"], '--engine-speeds takes numbers above 0, comma-separated; got "0"');
    await bad([...small, "--engine-speeds", "1,1,1"], "--engines 2 disagrees with the 3 speeds of --engine-speeds");
    await bad([...small, "--sweep", "policy=kv,random"], "--sweep takes KEY=V1,V2,... with KEY one of speedup");
    await bad([...small, "--sweep", "speedup=1"], "--sweep speedup: give at least two values");
    await bad([...small, "--sweep", "speedup=1,0"], '--speedup must be a number above 0, got "0"');
    await bad([...small, "--policy", "kv,kv"], "--policy names a policy twice");
    await bad([...small, "--engines", "0"], '--engines must be an integer of at least 1 and at most 4096, got "0"');
    await bad([...small, "--speedup", "0"], '--speedup must be a number above 0, got "0"');
    await bad([...small, "--blocks", "100"], "--max-model-len 131072 needs 8192 blocks of 16 tokens, but --blocks is 100");
    await bad(["--max-requests", "3"], "give exactly one of --trace FILE and --generate SPEC");
    await bad(["--generate", "groups=x"], "--generate:");
    await bad([...small, "--format", "parquet"], "--format must be auto, mooncake or azure");
    await bad([...small, "--nope"], "Unknown option '--nope'");
    await bad([...small, "--prefill-engines", "1"], "--prefill-engines and --decode-engines go together");
    await bad([...small, "--prefill-engines", "1", "--decode-engines", "1"], "leave out --engines and --engine-speeds");
    await bad(["--trace", "x", "--prefill-engines", "0", "--decode-engines", "1"], '--prefill-engines must be an integer of at least 1');
    await bad([...small, "--kv-events", "some"], '--kv-events must be one of events, none, got "some"');
    await bad([...small, "--approx-ttl", "0"], "--approx-ttl must be a number above 0");
    await bad([...small, "--prefill-gate", "maybe"], '--prefill-gate must be on or off, got "maybe"');
    await bad([...small, "--take-back", "maybe"], '--take-back must be on or off, got "maybe"');
  }, 180_000); // some twenty CLI processes one after another: 16 s here, several times that on a busy machine

  it("simulates engines without KV events (approximate mode) and says so", async () => {
    const r = await kvroute(["simulate", "--trace", fixture("mooncake-conversation-200.jsonl"), "--max-requests", "20", "--policy", "kv", "--kv-events", "none", "--approx-ttl", "60", "--quiet"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/no KV events \(approximate mode, TTL 60 s\)/);
    expect(r.stdout).toMatch(/^kv\s+\d+\.\d\d%/m);
  });

  it("sweeps a setting: one run per value, in one table, and the runs in JSON", async () => {
    const args = ["simulate", "--trace", fixture("mooncake-conversation-200.jsonl"), "--max-requests", "20", "--engine-speeds", "1,0.5", "--policy", "kv,round-robin", "--sweep", "speedup=1,4", "--quiet"];
    const table = await kvroute(args);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^speedup\s+policy\s+hit ratio\s+of fleet bound\s+TTFT mean/m);
    for (const value of ["1", "4"]) {
      expect(table.stdout).toMatch(new RegExp(`^${value}\\s+kv\\s+\\d+\\.\\d\\d%`, "m"));
      expect(table.stdout).toMatch(new RegExp(`^${value}\\s+round-robin\\s`, "m"));
      expect(table.stdout).toMatch(new RegExp(`^speedup=${value}: bound \\d+\\.\\d\\d% unbounded`, "m"));
    }
    const json = await kvroute([...args, "--json"]);
    const sweep = JSON.parse(json.stdout) as { sweep: { key: string; values: string[] }; runs: { value: string; report: SimulationReport }[] };
    expect(sweep.sweep).toEqual({ key: "speedup", values: ["1", "4"] });
    expect(sweep.runs.map((r) => [r.value, r.report.settings.speedup, r.report.settings.engine_speeds])).toEqual([["1", 1, "1,0.5"], ["4", 4, "1,0.5"]]);
  });

  it("skips and counts bad trace lines, or stops at the first with --strict", async () => {
    const trace = fixture("mooncake-bad.jsonl");
    const lenient = await kvroute(["simulate", "--trace", trace, "--policy", "kv", "--json", "--quiet"]);
    expect(lenient.code).toBe(0);
    const report = JSON.parse(lenient.stdout) as SimulationReport;
    expect(report.trace.bad_lines).toBeGreaterThan(0);
    expect(report.policies[0]!.requests.sent).toBe(report.trace.records);
    const strict = await kvroute(["simulate", "--trace", trace, "--policy", "kv", "--strict", "--quiet"]);
    expect(strict.code).toBe(1);
    expect(strict.stderr).toMatch(/mooncake-bad\.jsonl:\d+: /);
  });
});
