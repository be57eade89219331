// Taking an engine back from a long prompt, on virtual time: a short prompt whose prefix its engine holds,
// arriving while that engine computes a long one, gets its first token within a step instead of after the
// whole long prefill; the long one is sent again behind it and finds the blocks it had computed cached.
import { describe, expect, it } from "vitest";
import { H100_8B } from "../../../src/tools/policy-sim/engine-settings.js";
import { simulatePolicy } from "../../../src/tools/policy-sim/run.js";
import type { RequestResult } from "../../../src/tools/replay/index.js";
import type { TraceRecord, TraceSource } from "../../../src/tools/trace/index.js";

const BLOCK = 512;
const ids = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

function traceOf(records: TraceRecord[]): TraceSource {
  return {
    format: "mooncake",
    blockSize: BLOCK,
    name: "take-back",
    report: { format: "mooncake", records: records.length, badLines: 0, byKind: {}, firstBadLines: [] },
    progress: () => undefined,
    async *[Symbol.asyncIterator]() {
      yield* records;
    },
  };
}

// One engine. A 16-block prompt is computed and cached; a 64-block prompt (32,768 tokens, four steps of
// 8,192) arrives at 2 s; 100 ms later, the first prompt's 16 blocks with two more (808 tokens to compute).
const records: TraceRecord[] = [
  { line: 1, timestampMs: 0, inputLength: 16 * BLOCK, outputLength: 1, hashIds: ids(1, 16) },
  { line: 2, timestampMs: 2000, inputLength: 64 * BLOCK, outputLength: 4, hashIds: ids(100, 64) },
  { line: 3, timestampMs: 2100, inputLength: 9000, outputLength: 4, hashIds: [...ids(1, 16), 200, 201] },
];

async function run(takeBack: boolean) {
  const results: RequestResult[] = [];
  const out = await simulatePolicy(traceOf(records), { policy: "kv", engines: 1, engine: H100_8B, takeBack, onResult: (r) => results.push(r) });
  results.sort((a, b) => a.index - b.index);
  return { out, results };
}

describe("taking an engine back in the simulator", () => {
  it("serves the short prompt within a step of its arrival, and the long one after it, every request answered", async () => {
    const on = await run(true);
    const off = await run(false);
    for (const r of [on, off]) {
      expect(r.out.summary.requests).toMatchObject({ sent: 3, succeeded: 3, failed: 0 });
      expect(r.results.map((x) => x.outputTokens)).toEqual([1, 4, 4]);
    }
    expect(on.out.summary.settings).toMatchObject({ takeBack: true, takenBack: 1 });
    expect(off.out.summary.settings).toMatchObject({ takeBack: false, takenBack: 0 });

    const step = H100_8B.timing.stepOverheadMs + H100_8B.maxNumBatchedTokens * H100_8B.timing.prefillMsPerToken;
    const [, longOff, shortOff] = off.results;
    const [, longOn, shortOn] = on.results;
    // Without it, the short prompt waits for the long prefill; with it, for the rest of the step under way.
    expect(shortOff!.ttftMs!).toBeGreaterThan(2 * step);
    expect(shortOn!.ttftMs!).toBeLessThan(step + 100);
    // The short prompt's prefix was found on the engine either way, as the engine counted it.
    expect(shortOn).toMatchObject({ cachedTokens: 16 * BLOCK, cachedTokensSource: "engine" });
    // The long one waited for the short one, and lost no more than a step and the short one's compute.
    expect(longOn!.ttftMs!).toBeGreaterThan(longOff!.ttftMs!);
    expect(longOn!.ttftMs! - longOff!.ttftMs!).toBeLessThan(2 * step);
    // Taken back, its engine's count would include its own first send's blocks: the router's estimate is reported.
    expect(longOn).toMatchObject({ cachedTokens: 0, cachedTokensSource: "router" });
    expect(longOff).toMatchObject({ cachedTokens: 0, cachedTokensSource: "engine" });
  });
});
