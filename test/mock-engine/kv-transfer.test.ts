// Disaggregated serving in the simulated engine: the core's held blocks and pulls without sockets, then two
// engines on real TCP, a prefill engine holding blocks and a decode engine pulling them over the transfer
// channel at a modelled bandwidth.
import { afterEach, describe, expect, it } from "vitest";
import { EngineClient, EngineCore, startSimulator, type CoreOutput, type EngineEvent, type SimKvEvent, type SimulatorHandle } from "../../src/index.js";
import type { KvPull } from "../../src/mock-engine/core.js";
import { kvBytesPerToken, QWEN3_0_6B, transferMs } from "../../src/mock-engine/kv-link.js";

const prompt = (n: number, salt = 0) => Array.from({ length: n }, (_, i) => (Math.imul(i + 1 + salt * 7919, 2654435761) >>> 0) % 150_000);

/** Steps until idle (bounded), returning outputs and the pulls the steps asked for. */
function drain(core: EngineCore): { outputs: CoreOutput[]; pulls: KvPull[] } {
  const outputs: CoreOutput[] = [];
  const pulls: KvPull[] = [];
  for (let steps = 0; core.hasWork; steps++) {
    if (steps > 1000) throw new Error("the core did not go idle");
    const r = core.step();
    outputs.push(...r.outputs);
    pulls.push(...r.pulls);
  }
  return { outputs, pulls };
}

function withEvents(engineId: string): { core: EngineCore; events: SimKvEvent[] } {
  const events: SimKvEvent[] = [];
  return { core: new EngineCore({ engineId, numBlocks: 64, maxModelLen: 512, kvEventSink: (b) => events.push(...b) }), events };
}

describe("the core, prefill side", () => {
  it("holds a prefill request's blocks when it ends at max_tokens, answers where they are, and frees them on release", () => {
    const { core } = withEvents("p");
    core.add({ id: 7, promptTokenIds: prompt(100), sampling: { maxTokens: 1 }, kvTransferParams: { do_remote_decode: true } });
    const { outputs } = drain(core);
    const finish = outputs.at(-1)!.finish!;
    expect(finish.usage).toEqual({ promptTokens: 100, completionTokens: 1, cachedTokens: 0 });
    // 101 tokens with the output: 7 blocks, all still referenced.
    expect(finish.kvTransferParams).toMatchObject({ do_remote_prefill: true, do_remote_decode: false, remote_engine_id: "p", remote_request_id: "7" });
    expect((finish.kvTransferParams!.remote_block_ids as number[]).length).toBe(7);
    expect(core.heldBlocks(7)).toBe(7);
    expect(core.metrics()).toMatchObject({ held: 1, blocksUsed: 7 });
    expect(core.releaseHeld(7)).toBe(true);
    expect(core.releaseHeld(7)).toBe(false);
    expect(core.metrics()).toMatchObject({ held: 0, blocksUsed: 0 });
    // Freed blocks stay cached: the same prompt again is a hit.
    core.add({ id: 8, promptTokenIds: prompt(100), sampling: { maxTokens: 1 } });
    expect(drain(core).outputs.at(-1)!.finish!.usage.cachedTokens).toBe(96);
  });

  it("holds nothing for a request without do_remote_decode, or one that stopped before max_tokens", () => {
    const { core } = withEvents("p");
    core.add({ id: 1, promptTokenIds: prompt(40), sampling: { maxTokens: 1 } });
    core.add({ id: 2, promptTokenIds: prompt(40, 1), sampling: { maxTokens: 3, stopTokenIds: [] }, kvTransferParams: { do_remote_decode: false } });
    const { outputs } = drain(core);
    expect(outputs.filter((o) => o.finish).every((o) => o.finish!.kvTransferParams === undefined)).toBe(true);
    expect(core.metrics().held).toBe(0);
  });
});

describe("the core, decode side", () => {
  const pulled = (from: string) => ({ do_remote_prefill: true, do_remote_decode: false, remote_engine_id: from, remote_request_id: "7", remote_block_ids: [0, 1, 2] });

  it("waits for the blocks it lacks outside the batch, stores and publishes them when they come, and computes only the last prompt token", () => {
    const { core, events } = withEvents("d");
    const p = prompt(100);
    // The decode engine already holds the first two blocks of the prompt.
    core.add({ id: 1, promptTokenIds: p.slice(0, 40), sampling: { maxTokens: 1 } });
    drain(core);
    events.length = 0;
    core.add({ id: 2, promptTokenIds: p, sampling: { maxTokens: 3 }, kvTransferParams: pulled("p") });
    const first = core.step();
    // 100 tokens are 7 blocks with the partial last one; 2 are here.
    expect(first.pulls).toEqual([{ id: 2, from: { engineId: "p", requestId: "7", host: null, port: null }, blocks: 5 }]);
    expect(first.work).toEqual({ prefillTokens: 0, decodeSeqs: 0, kvBlocks: 0 });
    expect(core.hasWork).toBe(false);
    expect(core.metrics().receiving).toBe(1);
    expect(core.finishReceive(2, true)).toBe(true);
    // Full blocks 2 to 5 (tokens 32 to 95) are new in its cache, and published.
    const stored = events.filter((e) => e.type === "BlockStored").flatMap((e) => (e.type === "BlockStored" ? e.blockHashes : []));
    expect(stored).toHaveLength(4);
    const step = core.step();
    expect(step.work.prefillTokens).toBe(1);
    expect(step.outputs).toHaveLength(1);
    const finish = drain(core).outputs.at(-1)!.finish!;
    // What the engine counts as cached: every prompt token but the last, as vLLM counts a connector's.
    expect(finish.usage).toEqual({ promptTokens: 100, completionTokens: 3, cachedTokens: 99 });
    expect(core.metrics()).toMatchObject({ kvPulls: 1, kvPullsFailed: 0, kvBlocksReceived: 5, blocksUsed: 0 });
  });

  it("computes the prompt itself when the pull fails, its cached tokens being its own hits", () => {
    const { core } = withEvents("d");
    const p = prompt(100, 3);
    core.add({ id: 1, promptTokenIds: p.slice(0, 40), sampling: { maxTokens: 1 } });
    drain(core);
    core.add({ id: 2, promptTokenIds: p, sampling: { maxTokens: 2 }, kvTransferParams: pulled("p") });
    expect(core.step().pulls).toHaveLength(1);
    core.finishReceive(2, false);
    const { outputs } = drain(core);
    expect(outputs.at(-1)!.finish!.usage).toEqual({ promptTokens: 100, completionTokens: 2, cachedTokens: 32 });
    expect(core.metrics()).toMatchObject({ kvPullsFailed: 1, blocksUsed: 0 });
  });

  it("frees a receiving request's blocks when it is aborted, and ignores its late pull", () => {
    const { core } = withEvents("d");
    core.add({ id: 2, promptTokenIds: prompt(100, 4), sampling: { maxTokens: 2 }, kvTransferParams: pulled("p") });
    core.step();
    expect(core.metrics().blocksUsed).toBe(7);
    expect(core.unpulledFrom(2)).toBeNull(); // its pull has started
    core.abort(2);
    expect(core.metrics()).toMatchObject({ receiving: 0, blocksUsed: 0 });
    expect(core.finishReceive(2, true)).toBe(false);
  });

  it("runs without a transfer, and says so, when the params name no prefill request", () => {
    const logs: string[] = [];
    const core = new EngineCore({ log: (_level, message) => logs.push(message) });
    core.add({ id: 1, promptTokenIds: prompt(40), sampling: { maxTokens: 1 }, kvTransferParams: { do_remote_prefill: true, remote_engine_id: "p" } });
    const { outputs, pulls } = drain(core);
    expect(pulls).toEqual([]);
    expect(outputs.at(-1)!.finish!.usage.cachedTokens).toBe(0);
    expect(logs.join("\n")).toMatch(/kv_transfer_params not used \(remote_request_id must be a non-empty string\)/);
  });
});

describe("two engines over the transfer channel", () => {
  const sims: SimulatorHandle[] = [];
  const clients: EngineClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    for (const s of sims.splice(0)) await s.close();
  });

  async function engine(options: Parameters<typeof startSimulator>[0]): Promise<{ sim: SimulatorHandle; client: EngineClient }> {
    const sim = await startSimulator({ kvEventsEndpoint: null, ...options });
    sims.push(sim);
    const client = new EngineClient(sim.url);
    clients.push(client);
    await client.connect();
    return { sim, client };
  }

  async function run(client: EngineClient, request: Parameters<EngineClient["generate"]>[0]): Promise<{ events: EngineEvent[]; ttftMs: number }> {
    const start = performance.now();
    let ttftMs = -1;
    const events: EngineEvent[] = [];
    for await (const e of client.generate(request)) {
      if (e.type === "delta" && ttftMs < 0) ttftMs = performance.now() - start;
      events.push(e);
    }
    return { events, ttftMs };
  }

  const finishOf = (events: EngineEvent[]) => {
    const last = events.at(-1);
    if (last?.type !== "finish") throw new Error(`no finish: ${JSON.stringify(last)}`);
    return last;
  };

  it("moves a prompt's blocks at the modelled bandwidth: the transfer shows in the decode's TTFT, and the prefill engine frees them once pulled", async () => {
    // 1 Gb/s: a 16-token block of Qwen3-0.6B (1.75 MiB) takes about 14.7 ms.
    const prefill = await engine({ engineId: "p", speedup: 1 });
    const decode = await engine({ engineId: "d", speedup: 1, kvTransferGbps: 1 });
    const p = prompt(160);
    const pre = finishOf((await run(prefill.client, { promptTokenIds: p, sampling: { maxTokens: 1 }, kvTransferParams: { do_remote_decode: true } })).events);
    const params = pre.kvTransferParams!;
    expect(params).toMatchObject({ remote_engine_id: "p", remote_host: "127.0.0.1", remote_port: prefill.sim.kvTransfer!.port });
    expect(prefill.sim.metrics().held).toBe(1);
    const { events, ttftMs } = await run(decode.client, { promptTokenIds: p, sampling: { maxTokens: 4, ignoreEos: true }, kvTransferParams: params });
    // 160 tokens: 10 blocks to move, none held on the decode engine yet.
    const modelled = transferMs(10, 16, kvBytesPerToken(QWEN3_0_6B), 1);
    expect(modelled).toBeCloseTo(146.8, 0);
    expect(ttftMs).toBeGreaterThanOrEqual(modelled);
    expect(finishOf(events).usage).toEqual({ promptTokens: 160, completionTokens: 4, cachedTokens: 159 });
    expect(prefill.sim.metrics()).toMatchObject({ held: 0, blocksUsed: 0 });
    expect(decode.sim.metrics()).toMatchObject({ kvPulls: 1, kvPullsFailed: 0, kvBlocksReceived: 10 });
  });

  it("fails the pull when the prefill engine no longer holds the blocks (its hold expired), and the decode engine computes the prompt itself", async () => {
    const prefill = await engine({ engineId: "p", kvHoldTimeoutMs: 0 });
    const decode = await engine({ engineId: "d" });
    const p = prompt(160, 1);
    const params = finishOf((await run(prefill.client, { promptTokenIds: p, sampling: { maxTokens: 1 }, kvTransferParams: { do_remote_decode: true } })).events).kvTransferParams!;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(prefill.sim.metrics().held).toBe(0);
    const { events } = await run(decode.client, { promptTokenIds: p, sampling: { maxTokens: 2 }, kvTransferParams: params });
    expect(finishOf(events).usage).toEqual({ promptTokens: 160, completionTokens: 2, cachedTokens: 0 });
    expect(decode.sim.metrics()).toMatchObject({ kvPulls: 1, kvPullsFailed: 1 });
  });

  it("tells the prefill engine to free the blocks when the decode request is given up during its pull (its router left)", async () => {
    const prefill = await engine({ engineId: "p" });
    // 0.01 Gb/s: the pull of 10 blocks takes some 15 s, which the abort cuts short.
    const decode = await engine({ engineId: "d", speedup: 1, kvTransferGbps: 0.01 });
    const p = prompt(160, 2);
    const params = finishOf((await run(prefill.client, { promptTokenIds: p, sampling: { maxTokens: 1 }, kvTransferParams: { do_remote_decode: true } })).events).kvTransferParams!;
    const pending = run(decode.client, { promptTokenIds: p, sampling: { maxTokens: 2 }, kvTransferParams: params }).catch(() => null);
    for (let i = 0; decode.sim.metrics().receiving === 0; i++) {
      if (i > 200) throw new Error("the decode engine never started its pull");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await decode.client.close();
    await pending;
    for (let i = 0; prefill.sim.metrics().held > 0; i++) {
      if (i > 200) throw new Error("the prefill engine still holds the blocks");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(decode.sim.metrics()).toMatchObject({ receiving: 0, blocksUsed: 0 });
  });
});
