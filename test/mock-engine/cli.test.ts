import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { parseSimArgs } from "../../src/cli/sim.js";
import { distFile } from "../../src/util/package-root.js";

const kvroute = (...args: string[]) => spawnSync(process.execPath, [distFile("src/cli/main.js"), ...args], { encoding: "utf8", timeout: 20_000 });

describe("kvroute sim", () => {
  it("documents its options", () => {
    const run = kvroute("sim", "--help");
    expect(run.status).toBe(0);
    for (const option of ["--port", "--kv-events", "--replay", "--blocks", "--block-size", "--max-num-seqs", "--max-num-batched-tokens", "--prefill-ms-per-token", "--speedup", "--seed", "--layout"]) {
      expect(run.stdout).toContain(option);
    }
    expect(kvroute("--help").stdout).toContain("sim ");
  });

  it("names a bad option and exits 2", () => {
    const run = kvroute("sim", "--layout", "xml");
    expect(run.status).toBe(2);
    expect(run.stderr).toContain("--layout must be array or map");
    expect(kvroute("sim", "--blocks", "lots").stderr).toContain('--blocks must be an integer, got "lots"');
    expect(kvroute("sim", "--bogus").status).toBe(2);
  });

  it("turns options into simulator settings", () => {
    expect(parseSimArgs(["--port", "9000", "--kv-events", "none", "--speedup", "2.5", "--prefill-ms-per-token", "0.1", "--layout", "map"])).toMatchObject({
      port: 9000,
      kvEventsEndpoint: null,
      speedup: 2.5,
      kvEventsLayout: "map",
      timing: { prefillMsPerToken: 0.1 },
    });
  });

  it("serves vLLM's HTTP API with --http", () => {
    expect(parseSimArgs(["--http", "--enable-prompt-tokens-details", "--vocab-size", "1000"])).toMatchObject({ http: true, enablePromptTokensDetails: true, vocabSize: 1000 });
    expect(parseSimArgs([])).toMatchObject({ http: false, enablePromptTokensDetails: false });
    expect(() => parseSimArgs(["--enable-prompt-tokens-details"])).toThrow(/needs --http/);
    expect(() => parseSimArgs(["--http", "--no-cached-tokens"])).toThrow(/--no-cached-tokens is for the engine protocol/);
  });
});
