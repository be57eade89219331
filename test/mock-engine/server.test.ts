// The simulator's answers to the protocol fields it has no machinery for yet: one data-parallel rank, and
// kv_transfer_params handed back unread.
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

  it("serves only its own data-parallel rank and echoes kv_transfer_params in the finish", async () => {
    sim = await startSimulator({ kvEventsEndpoint: null });
    client = new EngineClient(sim.url);
    const info = await client.connect();
    expect(info).toMatchObject({ dataParallelStartRank: 0, dataParallelLocalSize: 1 });
    const kv = { do_remote_decode: true, remote_block_ids: [1, 2], remote_host: "10.0.0.1" };
    const done = await collect(client.generate({ promptTokenIds: prompt, sampling: { maxTokens: 2 }, dataParallelRank: 0, kvTransferParams: kv }));
    expect(done.at(-1)).toMatchObject({ type: "finish", finishReason: "length", kvTransferParams: kv });
    const plain = await collect(client.generate({ promptTokenIds: prompt, sampling: { maxTokens: 1 } }));
    expect(plain.at(-1)).not.toHaveProperty("kvTransferParams");
    const refused = await collect(client.generate({ promptTokenIds: prompt, dataParallelRank: 1 }));
    expect(refused).toEqual([
      { type: "error", code: "invalid_request", message: "data_parallel_rank 1 is not served by this engine, which serves ranks 0 to 0", tokensProduced: 0 },
    ]);
    expect(sim.metrics().requestsAdded).toBe(2);
  });
});
