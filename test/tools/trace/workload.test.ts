import { describe, expect, it } from "vitest";
import { createPromptSynthesizer, GENERATED_ID_BASE, parseWorkloadSpec, readAll, sharedPrefixWorkload, summarizeTrace } from "../../../src/index.js";

describe("shared-prefix workload", () => {
  it("makes groups x prompts records whose prompts share exactly the system prompt's full blocks", async () => {
    const workload = sharedPrefixWorkload({ groups: 3, promptsPerGroup: 4, systemTokens: 100, userTokens: 30, outputTokens: 7, blockSize: 16, ratePerSec: 10, seed: 5 });
    expect(workload.format).toBe("shared-prefix");
    expect(workload.blockSize).toBe(16);
    const records = await readAll(workload);
    expect(records).toHaveLength(12);
    expect(records.map((r) => r.line)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    const synth = createPromptSynthesizer({ blockSize: 16 });
    const byGroup = new Map<number, Uint32Array[]>();
    for (const r of records) {
      expect(r.inputLength).toBe(130);
      expect(r.outputLength).toBe(7);
      expect(r.hashIds).toHaveLength(Math.ceil(130 / 16));
      const group = (r.hashIds![0]! - GENERATED_ID_BASE) / 6; // 6 full blocks in 100 system tokens
      const prompts = byGroup.get(group) ?? [];
      prompts.push(synth(r));
      byGroup.set(group, prompts);
    }
    expect([...byGroup.values()].map((p) => p.length)).toEqual([4, 4, 4]);
    for (const prompts of byGroup.values()) {
      for (const p of prompts.slice(1)) {
        expect(p.subarray(0, 96)).toEqual(prompts[0]!.subarray(0, 96));
        expect(p.subarray(96, 112)).not.toEqual(prompts[0]!.subarray(96, 112));
      }
    }
    const firstOfEach = [...byGroup.values()].map((p) => p[0]!.subarray(0, 16));
    expect(firstOfEach[0]).not.toEqual(firstOfEach[1]);
  });

  it("arrives in non-decreasing time, the same for the same seed, differently for another", async () => {
    const times = async (seed: number) => (await readAll(sharedPrefixWorkload({ seed, ratePerSec: 5 }))).map((r) => r.timestampMs);
    const a = await times(1);
    expect(a[0]).toBe(0);
    for (let i = 1; i < a.length; i++) expect(a[i]!).toBeGreaterThanOrEqual(a[i - 1]!);
    expect(await times(1)).toEqual(a);
    expect(await times(2)).not.toEqual(a);
    // Rate 0: everything at once.
    expect(new Set((await readAll(sharedPrefixWorkload({ ratePerSec: 0 }))).map((r) => r.timestampMs))).toEqual(new Set([0]));
  });

  it("reports the reuse it was built with", async () => {
    const s = await summarizeTrace(sharedPrefixWorkload({ groups: 2, promptsPerGroup: 10, systemTokens: 64, userTokens: 32, blockSize: 16 }));
    // 20 prompts x 6 blocks; each group's 4 system blocks are new once, repeated 9 times.
    expect(s.blocks).toEqual({ blockSize: 16, references: 120, repeats: 72, distinct: 48, reuseRatio: 0.6 });
  });

  it("parses its spec and rejects bad ones", () => {
    expect(parseWorkloadSpec("groups=2, prompts=3,system=10,user=5,output=1,rate=0.5,block=32,seed=9")).toEqual({
      groups: 2,
      promptsPerGroup: 3,
      systemTokens: 10,
      userTokens: 5,
      outputTokens: 1,
      ratePerSec: 0.5,
      blockSize: 32,
      seed: 9,
    });
    expect(parseWorkloadSpec("default")).toEqual({});
    expect(() => parseWorkloadSpec("colour=red")).toThrow(/key=value with a key among groups/);
    expect(() => parseWorkloadSpec("groups=")).toThrow(/groups must be a number/);
    expect(() => sharedPrefixWorkload({ groups: 0 })).toThrow(/groups must be an integer of at least 1/);
    expect(() => sharedPrefixWorkload({ ratePerSec: -1 })).toThrow(/ratePerSec/);
  });
});
