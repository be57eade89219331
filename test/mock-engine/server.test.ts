// The simulator's answers to two protocol fields: one data-parallel rank, and kv_transfer_params, which a
// prefill request is answered with as vLLM's NixlConnector answers (kv-transfer.test.ts covers the pulls).
import { afterEach, describe, expect, it } from "vitest";
import { EngineClient, startSimulator, type EngineEvent, type SimulatorHandle } from "../../src/index.js";

async function collect(stream: AsyncIterable<EngineEvent>): Promise<EngineEvent[]> {
  const events: EngineEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

const prompt = Array.from({ length: 20 }, (_, i) => (i * 7919) % 150_000);

describe("simulator: data-parallel rank and kv_transfer_params", () => {
  let sim: SimulatorHandle | null = null;
  let client: EngineClient | null = null;

  afterEach(async () => {
    await client?.close();
    await sim?.close();
  });

  it("serves only its own data-parallel rank, and answers a prefill request with where its blocks are held", async () => {
    sim = await startSimulator({ kvEventsEndpoint: null, engineId: "sim-a" });
    client = new EngineClient(sim.url);
    const info = await client.connect();
    expect(info).toMatchObject({ dataParallelStartRank: 0, dataParallelLocalSize: 1 });
    const done = await collect(client.generate({ promptTokenIds: prompt, sampling: { maxTokens: 1 }, dataParallelRank: 0, kvTransferParams: { do_remote_decode: true } }));
    // 20 prompt tokens and one output token: two blocks of 16, held until a decode engine pulls them.
    expect(done.at(-1)).toMatchObject({
      type: "finish",
      finishReason: "length",
      kvTransferParams: { do_remote_prefill: true, do_remote_decode: false, remote_engine_id: "sim-a", remote_host: "127.0.0.1", remote_port: sim.kvTransfer!.port },
    });
    const held = (done.at(-1) as unknown as { kvTransferParams: { remote_block_ids: number[]; remote_request_id: string } }).kvTransferParams;
    expect(held.remote_block_ids).toHaveLength(2);
    expect(sim.core.heldBlocks(Number(held.remote_request_id))).toBe(2);
    const plain = await collect(client.generate({ promptTokenIds: prompt, sampling: { maxTokens: 1 } }));
    expect(plain.at(-1)).not.toHaveProperty("kvTransferParams");
    const refused = await collect(client.generate({ promptTokenIds: prompt, dataParallelRank: 1 }));
    expect(refused).toEqual([
      { type: "error", code: "invalid_request", message: "data_parallel_rank 1 is not served by this engine, which serves ranks 0 to 0", tokensProduced: 0 },
    ]);
    expect(sim.metrics().requestsAdded).toBe(2);
  });
});
