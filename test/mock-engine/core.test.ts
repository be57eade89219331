import { describe, expect, it } from "vitest";
import { EngineCore, SimRequestError, type CoreOutput, type EngineCoreOptions, type SimKvEvent } from "../../src/index.js";

function prompt(n: number, salt = 0): number[] {
  return Array.from({ length: n }, (_, i) => (Math.imul(i + 1 + salt * 7919, 2654435761) >>> 0) % 150_000);
}

interface Run {
  outputs: Map<number, CoreOutput[]>;
  steps: number;
}

/** Steps the core until idle (bounded), collecting outputs per request. */
function drain(core: EngineCore, maxSteps = 10_000): Run {
  const outputs = new Map<number, CoreOutput[]>();
  let steps = 0;
  while (core.hasWork) {
    if (++steps > maxSteps) throw new Error("the core did not finish within the step bound");
    for (const out of core.step().outputs) {
      const list = outputs.get(out.id) ?? [];
      list.push(out);
      outputs.set(out.id, list);
    }
  }
  return { outputs, steps };
}

function finishOf(run: Run, id: number) {
  const last = run.outputs.get(id)?.at(-1);
  if (!last?.finish) throw new Error(`request ${id} did not finish`);
  return last.finish;
}

function coreWithEvents(options: EngineCoreOptions = {}): { core: EngineCore; events: SimKvEvent[] } {
  const events: SimKvEvent[] = [];
  const core = new EngineCore({ ...options, kvEventSink: (batch) => events.push(...batch) });
  return { core, events };
}

/** Replays structured events into the set of hashes they say the engine holds. */
function stateOf(events: readonly SimKvEvent[]): Set<bigint> {
  const held = new Set<bigint>();
  for (const e of events) {
    if (e.type === "BlockStored") e.blockHashes.forEach((h) => held.add(h));
    else if (e.type === "BlockRemoved") e.blockHashes.forEach((h) => held.delete(h));
    else held.clear();
  }
  return held;
}

describe("EngineCore prefix caching", () => {
  it("reports cached tokens for a repeated prompt on the second request, and none on the first", () => {
    const core = new EngineCore({ blockSize: 16 });
    const p = prompt(100);
    core.add({ id: 1, promptTokenIds: p, sampling: { maxTokens: 4 } });
    const first = finishOf(drain(core), 1);
    core.add({ id: 2, promptTokenIds: p, sampling: { maxTokens: 4 } });
    const second = finishOf(drain(core), 2);
    expect(first.usage).toEqual({ promptTokens: 100, completionTokens: 4, cachedTokens: 0 });
    expect(second.usage.cachedTokens).toBe(96);
  });

  it("never reports the whole prompt as cached: the last token is always computed", () => {
    const core = new EngineCore({ blockSize: 16 });
    const p = prompt(64);
    core.add({ id: 1, promptTokenIds: p, sampling: { maxTokens: 1 } });
    drain(core);
    core.add({ id: 2, promptTokenIds: p, sampling: { maxTokens: 1 } });
    expect(finishOf(drain(core), 2).usage.cachedTokens).toBe(48);
  });

  it("shares a common prefix across prompts that diverge, and keeps LoRA names and cache salts apart", () => {
    const core = new EngineCore({ blockSize: 16 });
    const base = prompt(64);
    core.add({ id: 1, promptTokenIds: [...base, ...prompt(40, 1)], sampling: { maxTokens: 1 } });
    drain(core);
    core.add({ id: 2, promptTokenIds: [...base, ...prompt(40, 2)], sampling: { maxTokens: 1 } });
    core.add({ id: 3, promptTokenIds: [...base, ...prompt(40, 2)], sampling: { maxTokens: 1 }, cacheSalt: "tenant-b" });
    core.add({ id: 4, promptTokenIds: [...base, ...prompt(40, 2)], sampling: { maxTokens: 1 }, loraName: "adapter" });
    const run = drain(core);
    expect(finishOf(run, 2).usage.cachedTokens).toBe(64);
    expect(finishOf(run, 3).usage.cachedTokens).toBe(0);
    expect(finishOf(run, 4).usage.cachedTokens).toBe(0);
  });

  it("caches blocks filled by output tokens, so a follow-up turn hits them", () => {
    const { core, events } = coreWithEvents({ blockSize: 16 });
    const p = prompt(20);
    core.add({ id: 1, promptTokenIds: p, sampling: { maxTokens: 30 } });
    const run = drain(core);
    const output = run.outputs.get(1)!.flatMap((o) => o.tokenIds);
    const stored = events.filter((e) => e.type === "BlockStored").flatMap((e) => (e.type === "BlockStored" ? e.blockHashes : []));
    // 20 + 30 = 50 tokens; the last sampled token is never computed, so 3 full blocks of the 49 computed.
    expect(stored).toHaveLength(3);
    core.add({ id: 2, promptTokenIds: [...p, ...output, ...prompt(10, 3)], sampling: { maxTokens: 1 } });
    expect(finishOf(drain(core), 2).usage.cachedTokens).toBe(48);
  });
});

describe("EngineCore eviction and KV events", () => {
  it("emits BlockRemoved when a full cache must make room, and its events add up to its block pool", () => {
    const { core, events } = coreWithEvents({ blockSize: 16, numBlocks: 64, maxModelLen: 1024 });
    for (let i = 0; i < 12; i++) {
      core.add({ id: i + 1, promptTokenIds: prompt(300, i), sampling: { maxTokens: 8 } });
      drain(core);
    }
    const removed = events.filter((e) => e.type === "BlockRemoved");
    expect(removed.length).toBeGreaterThan(0);
    expect(core.metrics().blocksRemoved).toBe(removed.length);
    expect(stateOf(events)).toEqual(core.cachedBlockHashes());
    expect(core.cachedBlockHashes().size).toBeLessThanOrEqual(64);
  });

  it("evicts a finished request's tail blocks before its head blocks", () => {
    const { core, events } = coreWithEvents({ blockSize: 16, numBlocks: 20, maxModelLen: 320 });
    // 8 full prompt blocks cached; the rest of the pool is never touched yet.
    core.add({ id: 1, promptTokenIds: prompt(129), sampling: { maxTokens: 1 } });
    drain(core);
    const stored = events.flatMap((e) => (e.type === "BlockStored" ? e.blockHashes : []));
    expect(stored).toHaveLength(8);
    // Request 1 freed its 9 blocks tail first (the partial 9th is uncached). A request needing 15 blocks
    // takes the 11 never-used blocks, then the partial one, then request 1's last three full blocks.
    core.add({ id: 2, promptTokenIds: prompt(236, 9), sampling: { maxTokens: 1 } });
    drain(core);
    const removed = events.flatMap((e) => (e.type === "BlockRemoved" ? e.blockHashes : []));
    expect(removed.slice(0, 3)).toEqual([stored[7], stored[6], stored[5]]);
  });

  it("clears the prefix cache with AllBlocksCleared only while no request holds blocks", () => {
    const { core, events } = coreWithEvents();
    core.add({ id: 1, promptTokenIds: prompt(64), sampling: { maxTokens: 50 } });
    core.step();
    expect(core.resetPrefixCache()).toBe(false);
    drain(core);
    expect(core.resetPrefixCache()).toBe(true);
    expect(events.at(-1)).toEqual({ type: "AllBlocksCleared" });
    expect(core.cachedBlockHashes().size).toBe(0);
    core.add({ id: 2, promptTokenIds: prompt(64), sampling: { maxTokens: 1 } });
    expect(finishOf(drain(core), 2).usage.cachedTokens).toBe(0);
  });

  it("frees an aborted request's blocks", () => {
    const core = new EngineCore({ numBlocks: 100, maxModelLen: 1024 });
    core.add({ id: 1, promptTokenIds: prompt(500), sampling: { maxTokens: 100 } });
    core.step();
    expect(core.metrics().blocksUsed).toBeGreaterThan(0);
    expect(core.abort(1)).toBe(true);
    expect(core.abort(1)).toBe(false);
    expect(core.metrics().blocksUsed).toBe(0);
    expect(core.hasWork).toBe(false);
  });
});

describe("EngineCore scheduling", () => {
  it("prefills a long prompt in chunks of at most max_num_batched_tokens", () => {
    const core = new EngineCore({ maxNumBatchedTokens: 256 });
    core.add({ id: 1, promptTokenIds: prompt(1000), sampling: { maxTokens: 1 } });
    const prefills: number[] = [];
    while (core.hasWork) prefills.push(core.step().work.prefillTokens);
    expect(prefills).toEqual([256, 256, 256, 232]);
  });

  it("runs at most max_num_seqs sequences at once", () => {
    const core = new EngineCore({ maxNumSeqs: 3 });
    for (let i = 0; i < 7; i++) core.add({ id: i, promptTokenIds: prompt(20, i), sampling: { maxTokens: 5 } });
    let most = 0;
    for (let steps = 0; core.hasWork && steps < 1000; steps++) {
      core.step();
      most = Math.max(most, core.metrics().running);
    }
    expect(most).toBe(3);
    expect(core.metrics().requestsFinished).toBe(7);
  });

  it("preempts the newest request when blocks run out, and still finishes everything", () => {
    const core = new EngineCore({ blockSize: 16, numBlocks: 40, maxModelLen: 640 });
    for (let i = 0; i < 4; i++) core.add({ id: i, promptTokenIds: prompt(100, i), sampling: { maxTokens: 200, ignoreEos: true } });
    const run = drain(core);
    expect(core.metrics().preemptions).toBeGreaterThan(0);
    for (let i = 0; i < 4; i++) expect(finishOf(run, i).usage.completionTokens).toBe(200);
    expect(core.metrics().blocksUsed).toBe(0);
  });

  it("models step time from prefill tokens, decoding sequences and KV blocks", () => {
    const timing = { stepOverheadMs: 1, prefillMsPerToken: 0.5, decodeMsPerSeq: 2, msPerKvBlock: 0.25 };
    const core = new EngineCore({ blockSize: 16, timing });
    core.add({ id: 1, promptTokenIds: prompt(32), sampling: { maxTokens: 3 } });
    const prefill = core.step();
    expect(prefill.work).toEqual({ prefillTokens: 32, decodeSeqs: 0, kvBlocks: 2 });
    expect(prefill.durationMs).toBeCloseTo(1 + 16 + 0.5);
    const decode = core.step();
    expect(decode.work).toEqual({ prefillTokens: 0, decodeSeqs: 1, kvBlocks: 3 });
    expect(decode.durationMs).toBeCloseTo(1 + 2 + 0.75);
  });
});

describe("EngineCore output", () => {
  const text = (run: Run, id: number): string => run.outputs.get(id)!.map((o) => o.text).join("");
  const tokens = (run: Run, id: number): number[] => run.outputs.get(id)!.flatMap((o) => o.tokenIds);

  it("is deterministic for a seed, and differs between seeds", () => {
    const runWith = (seed: number, requestSeed?: number): Run => {
      const core = new EngineCore({ seed });
      core.add({ id: 1, promptTokenIds: prompt(50), sampling: { maxTokens: 20, ...(requestSeed === undefined ? {} : { seed: requestSeed }) } });
      return drain(core);
    };
    expect(tokens(runWith(1), 1)).toEqual(tokens(runWith(1), 1));
    expect(text(runWith(1), 1)).toEqual(text(runWith(1), 1));
    expect(tokens(runWith(1), 1)).not.toEqual(tokens(runWith(2), 1));
    expect(tokens(runWith(1, 5), 1)).not.toEqual(tokens(runWith(1, 6), 1));
    expect(tokens(runWith(1), 1).every((t) => t >= 0 && t < 151_643)).toBe(true);
  });

  it("stops at a stop string, leaving it out of the text", () => {
    const free = new EngineCore();
    free.add({ id: 1, promptTokenIds: prompt(10), sampling: { maxTokens: 30 } });
    const words = text(drain(free), 1).split(" ").filter(Boolean);
    const stop = ` ${words[5]!}`;
    const core = new EngineCore();
    core.add({ id: 1, promptTokenIds: prompt(10), sampling: { maxTokens: 30, stop: [stop] } });
    const run = drain(core);
    const finish = finishOf(run, 1);
    expect(finish.finishReason).toBe("stop");
    expect(finish.stopReason).toBe(stop);
    const out = text(run, 1);
    expect(out).not.toContain(stop);
    expect(out).toBe(` ${words.slice(0, words.indexOf(words[5]!)).join(" ")}`.trimEnd() || "");
  });

  it("stops at a stop token id only after min_tokens", () => {
    const free = new EngineCore();
    free.add({ id: 1, promptTokenIds: prompt(10), sampling: { maxTokens: 10 } });
    const all = tokens(drain(free), 1);
    const core = new EngineCore();
    core.add({ id: 1, promptTokenIds: prompt(10), sampling: { maxTokens: 10, stopTokenIds: [all[1]!] } });
    core.add({ id: 2, promptTokenIds: prompt(10), sampling: { maxTokens: 10, stopTokenIds: [all[1]!], minTokens: 5 } });
    const run = drain(core);
    expect(finishOf(run, 1)).toMatchObject({ finishReason: "stop", stopReason: all[1] });
    expect(tokens(run, 1)).toEqual(all.slice(0, 2));
    expect(finishOf(run, 2)).toMatchObject({ finishReason: "length", usage: { completionTokens: 10 } });
  });

  it("ends at EOS when it may, and runs to max_tokens with ignore_eos", () => {
    const core = new EngineCore({ eosProbability: 0.5 });
    core.add({ id: 1, promptTokenIds: prompt(10), sampling: { maxTokens: 200 } });
    core.add({ id: 2, promptTokenIds: prompt(10, 1), sampling: { maxTokens: 200, ignoreEos: true } });
    const run = drain(core);
    expect(finishOf(run, 1).finishReason).toBe("stop");
    expect(finishOf(run, 1).usage.completionTokens).toBeLessThan(200);
    expect(finishOf(run, 2)).toMatchObject({ finishReason: "length", usage: { completionTokens: 200 } });
  });

  it("returns log-probabilities when asked", () => {
    const core = new EngineCore();
    core.add({ id: 1, promptTokenIds: prompt(10), sampling: { maxTokens: 3, logprobs: 2 } });
    const outs = drain(core).outputs.get(1)!;
    for (const o of outs) {
      expect(o.logprobs).toHaveLength(1);
      expect(o.logprobs![0]![0]![0]).toBe(o.tokenIds[0]);
      expect(o.logprobs![0]).toHaveLength(3);
    }
  });

  it("caps output at max_model_len", () => {
    const core = new EngineCore({ maxModelLen: 64 });
    core.add({ id: 1, promptTokenIds: prompt(60), sampling: { maxTokens: 100 } });
    expect(finishOf(drain(core), 1)).toMatchObject({ finishReason: "length", usage: { completionTokens: 4 } });
  });
});

describe("EngineCore input checks", () => {
  it("refuses requests it can never serve, naming the problem", () => {
    const core = new EngineCore({ maxModelLen: 128 });
    const refuse = (fn: () => void, code: string, text: RegExp): void => {
      try {
        fn();
        throw new Error("expected a refusal");
      } catch (error) {
        expect(error).toBeInstanceOf(SimRequestError);
        expect((error as SimRequestError).code).toBe(code);
        expect((error as Error).message).toMatch(text);
      }
    };
    refuse(() => core.add({ id: 1, promptTokenIds: [] }), "invalid_request", /at least one token/);
    refuse(() => core.add({ id: 1, promptTokenIds: [1, 999_999] }), "invalid_request", /prompt_token_ids\[1\] is 999999/);
    refuse(() => core.add({ id: 1, promptTokenIds: prompt(128) }), "prompt_too_long", /128 tokens/);
    core.add({ id: 1, promptTokenIds: prompt(10) });
    refuse(() => core.add({ id: 1, promptTokenIds: prompt(10) }), "duplicate_id", /already in flight/);
  });

  it("refuses a configuration whose context length does not fit the cache", () => {
    expect(() => new EngineCore({ numBlocks: 10, blockSize: 16, maxModelLen: 1024 })).toThrow(/needs 64 blocks/);
    expect(() => new EngineCore({ blockSize: 0 })).toThrow(/blockSize must be a positive integer/);
    expect(() => new EngineCore({ timing: { prefillMsPerToken: -1 } })).toThrow(/timing.prefillMsPerToken/);
  });
});
