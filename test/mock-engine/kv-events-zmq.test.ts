import { afterEach, describe, expect, it } from "vitest";
import { Dealer, Subscriber } from "zeromq";
import { EngineClient, startSimulator, type EngineEvent, type KvEventsLayout, type ReplayFormat, type SimulatorHandle } from "../../src/index.js";
import { decodeBatch, EventState } from "./kv-event-test-decoder.js";

function prompt(n: number, salt: number): number[] {
  return Array.from({ length: n }, (_, i) => (Math.imul(i + 1 + salt * 7919, 2654435761) >>> 0) % 150_000);
}

async function run(stream: AsyncIterable<EngineEvent>): Promise<EngineEvent> {
  let last: EngineEvent | undefined;
  for await (const event of stream) last = event;
  if (!last) throw new Error("empty stream");
  return last;
}

const seqOf = (frame: Buffer): number => Number(frame.readBigInt64BE());

/** Everything the replay socket holds from `from` on, as seq → payload, until its end marker. */
async function replay(endpoint: string, from: number, format: ReplayFormat, topic: string): Promise<Map<number, Buffer>> {
  const dealer = new Dealer({ receiveTimeout: 5000, linger: 0 });
  dealer.connect(endpoint);
  try {
    const start = Buffer.alloc(8);
    start.writeBigUInt64BE(BigInt(from));
    await dealer.send([Buffer.alloc(0), start]);
    const got = new Map<number, Buffer>();
    for (let i = 0; i < 100_000; i++) {
      const frames = await dealer.receive();
      expect(frames[0]!.length).toBe(0);
      const [seqFrame, payload] = format === "topic" ? [frames[2]!, frames[3]!] : [frames[1]!, frames[2]!];
      if (format === "topic") expect(frames).toHaveLength(4);
      else expect(frames).toHaveLength(3);
      const seq = seqOf(seqFrame);
      if (seq === -1) {
        expect(payload.length).toBe(0);
        return got;
      }
      if (format === "topic") expect(frames[1]!.toString()).toBe(topic);
      got.set(seq, payload);
    }
    throw new Error("the replay did not end");
  } finally {
    dealer.close();
  }
}

describe("the simulator's KV events on ZMQ", () => {
  let sim: SimulatorHandle | null = null;
  let client: EngineClient | null = null;
  let sub: Subscriber | null = null;

  afterEach(async () => {
    sub?.close();
    await client?.close();
    await sim?.close();
    sub = null;
    client = null;
    sim = null;
  });

  const cases: Array<[KvEventsLayout, ReplayFormat, string]> = [
    ["array", "topic", ""],
    ["map", "legacy", "kv@sim"],
  ];
  for (const [layout, format, topic] of cases) {
    it(`publish a ${layout}-layout stream (replay: ${format}) that decodes to the engine's own block pool`, async () => {
      sim = await startSimulator({ numBlocks: 64, maxModelLen: 1024, kvEventsLayout: layout, replayFormat: format, kvEventsTopic: topic });
      sub = new Subscriber({ receiveTimeout: 5000, linger: 0 });
      sub.connect(sim.kvEventsEndpoint!);
      sub.subscribe(topic);
      client = new EngineClient(sim.url);
      await client.connect();

      // A subscriber misses what is published before its subscription reaches the publisher: probe until
      // one batch arrives, then everything after it must arrive in order.
      const received = new Map<number, Buffer>();
      let probe = 0;
      for (; received.size === 0 && probe < 100; probe++) {
        await run(client.generate({ promptTokenIds: prompt(40, 1000 + probe), sampling: { maxTokens: 1 } }));
        try {
          sub.receiveTimeout = 50;
          const [t, seq, payload] = await sub.receive();
          expect(t!.toString()).toBe(topic);
          received.set(seqOf(seq!), payload!);
        } catch {
          // nothing yet; probe again
        }
      }
      expect(received.size).toBe(1);
      sub.receiveTimeout = 5000;

      // Twelve 300-token prompts through a 64-block cache: later ones must evict earlier ones.
      for (let i = 0; i < 12; i++) await run(client.generate({ promptTokenIds: prompt(300, i), sampling: { maxTokens: 8 } }));
      const last = sim.metrics().kvEventBatches - 1;
      while (!received.has(last)) {
        const [, seq, payload] = await sub.receive();
        received.set(seqOf(seq!), payload!);
      }
      const seqs = [...received.keys()];
      expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));

      // The replay socket fills the gap before the subscription, and agrees with what was published.
      const replayed = await replay(sim.replayEndpoint!, 0, format, topic);
      expect([...replayed.keys()]).toEqual(Array.from({ length: last + 1 }, (_, i) => i));
      for (const [seq, payload] of received) expect(Buffer.compare(payload, replayed.get(seq)!)).toBe(0);
      const partial = await replay(sim.replayEndpoint!, last - 2, format, topic);
      expect([...partial.keys()]).toEqual([last - 2, last - 1, last]);

      const state = new EventState();
      let removed = 0;
      for (let seq = 0; seq <= last; seq++) {
        const batch = decodeBatch(replayed.get(seq)!);
        expect(batch.dataParallelRank).toBe(0);
        removed += batch.events.filter((e) => e.type === "BlockRemoved").length;
        for (const e of batch.events) if (e.type !== "AllBlocksCleared") expect(e.medium).toBe("GPU");
        state.apply(batch.events);
      }
      expect(removed).toBeGreaterThan(0);
      expect(state.orphans).toBe(0);
      expect(state.blocks).toEqual(sim.core.cachedBlockHashes());

      // A prefix-cache reset is published as AllBlocksCleared.
      expect(sim.resetPrefixCache()).toBe(true);
      const [, seq, payload] = await sub.receive();
      expect(seqOf(seq!)).toBe(last + 1);
      expect(decodeBatch(payload!).events).toEqual([{ type: "AllBlocksCleared" }]);
    });
  }
});
