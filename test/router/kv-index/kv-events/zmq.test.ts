// KV events over real ZMQ sockets into the KV-event thread, read back through an attached index. The test
// publishes from an XPUB socket (a PUB that also reports subscriptions, so the test can wait for the
// subscriber instead of sleeping) and serves replays from a ROUTER socket, as vLLM's publisher does.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Packr } from "msgpackr";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { Router, XPublisher } from "zeromq";
import {
  createBlockHasher,
  decodeKvEventBatch,
  KvEventThread,
  PrefixIndex,
  rootSeed,
  type BlockHasher,
  type BlockStoredEvent,
  type KvEventThreadStats,
} from "../../../../src/index.js";
import { packageRoot } from "../../../../src/util/package-root.js";

const MODEL = "Qwen/Qwen3-0.6B";
const FIXTURES = join(packageRoot(), "test", "fixtures", "vllm-kv-events");
const LAYOUTS = ["v1", "v2", "v3", "v4", "v4b"];
const packr = new Packr({ useRecords: false, variableMapSize: true });
const golden = (layout: string): Buffer => readFileSync(join(FIXTURES, `batch-${layout}.msgpack`));

let hasher: BlockHasher;
let promptA: BigUint64Array; // event 1's three blocks
let promptB: BigUint64Array; // event 1's first two blocks, then event 2's block
const closers: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  hasher = await createBlockHasher();
  const [first, second] = decodeKvEventBatch(golden("v1")).events as BlockStoredEvent[];
  const seed = rootSeed({ model: MODEL });
  promptA = hasher.hashBlocks(first!.tokenIds, 16, seed);
  promptB = hasher.hashBlocks(Uint32Array.from([...first!.tokenIds.subarray(0, 32), ...second!.tokenIds]), 16, seed);
});

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

function seqFrame(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(BigInt(n));
  return b;
}

/** The golden scenario's first three events (no AllBlocksCleared), in the newest layout. */
function scenarioWithoutClear(): Buffer {
  const { events } = decodeKvEventBatch(golden("v4"));
  const encoded = events.slice(0, 3).map((e) =>
    e.type === "BlockStored"
      ? { type: e.type, block_hashes: Array.from(e.blockHashes), parent_block_hash: e.parentBlockHash, token_ids: Array.from(e.tokenIds), block_size: 16, lora_id: null, medium: "GPU", lora_name: null }
      : e.type === "BlockRemoved"
        ? { type: e.type, block_hashes: Array.from(e.blockHashes), medium: "GPU" }
        : e,
  );
  return packr.pack([1.0, encoded, 0]);
}

/** A batch storing one fresh parentless block. */
function freshBlock(engineHash: bigint, token: number): Buffer {
  const tokens = Array.from({ length: 16 }, (_, i) => token + i);
  return packr.pack([2.0, [["BlockStored", [engineHash], null, tokens, 16, null, "GPU", null]], 0]);
}

function freshBlockHash(token: number): BigUint64Array {
  return hasher.hashBlocks(Uint32Array.from({ length: 16 }, (_, i) => token + i), 16, rootSeed({ model: MODEL }));
}

interface Publisher {
  endpoint: string;
  port: number;
  send(seq: number, payload: Uint8Array): Promise<void>;
  subscribed(): Promise<void>;
  close(): void;
}

async function publisher(port = 0): Promise<Publisher> {
  const socket = new XPublisher({ linger: 0 });
  await socket.bind(`tcp://127.0.0.1:${port === 0 ? "*" : port}`);
  const endpoint = socket.lastEndpoint!;
  const p: Publisher = {
    endpoint,
    port: Number(endpoint.split(":").pop()),
    send: (seq, payload) => socket.send([Buffer.alloc(0), seqFrame(seq), payload]),
    // The first message an XPUB receives is the subscriber's subscription.
    subscribed: async () => void (await socket.receive()),
    close: () => socket.close(),
  };
  closers.push(() => p.close());
  return p;
}

/** A replay server answering from `buffer`, in the older ([b"", seq, payload]) or newer (with topic) form. */
async function replayServer(buffer: Map<number, Uint8Array>, withTopic: boolean): Promise<{ endpoint: string; requests: number[] }> {
  const socket = new Router({ linger: 0 });
  await socket.bind("tcp://127.0.0.1:*");
  const requests: number[] = [];
  void (async () => {
    for await (const [identity, , start] of socket) {
      const from = Number(start!.readBigInt64BE(0));
      requests.push(from);
      const topic = withTopic ? [Buffer.alloc(0)] : [];
      for (const seq of [...buffer.keys()].sort((a, b) => a - b)) {
        if (seq >= from) await socket.send([identity!, Buffer.alloc(0), ...topic, seqFrame(seq), buffer.get(seq)!]);
      }
      await socket.send([identity!, Buffer.alloc(0), ...topic, seqFrame(-1), Buffer.alloc(0)]);
    }
  })().catch(() => undefined);
  closers.push(() => socket.close());
  return { endpoint: socket.lastEndpoint!, requests };
}

async function startWriter(): Promise<{ writer: KvEventThread; index: PrefixIndex }> {
  const writer = await KvEventThread.start({ capacity: 4096, maxEngines: 8, reconnectIntervalMs: 50, reconnectMaxIntervalMs: 200, replayTimeoutMs: 2000 });
  closers.push(() => writer.close());
  return { writer, index: PrefixIndex.attach(writer.shared) };
}

/** Polls the writer's stats until `done` holds; fails after 10 s with the last stats. */
async function until(writer: KvEventThread, done: (s: KvEventThreadStats) => boolean): Promise<KvEventThreadStats> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const stats = await writer.stats();
    if (done(stats)) return stats;
    if (Date.now() > deadline) throw new Error(`timed out; last stats: ${JSON.stringify(stats)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("KV events over ZMQ into the KV-event thread", () => {
  it("every golden layout, then the scenario without its clear: the index ends holding it", async () => {
    const { writer, index } = await startWriter();
    const pub = await publisher();
    await writer.addEngine({ id: 2, model: MODEL, blockSize: 16, endpoint: pub.endpoint });
    await pub.subscribed();
    for (const [seq, layout] of LAYOUTS.entries()) await pub.send(seq, golden(layout));
    await pub.send(LAYOUTS.length, scenarioWithoutClear());
    const stats = await until(writer, (s) => s.batchesApplied === LAYOUTS.length + 1);
    expect(stats).toMatchObject({ eventsBlockStored: 12, eventsBlockRemoved: 6, eventsAllBlocksCleared: 5, unknownParent: 0, unknownBlock: 0, payloadsRejected: 0, sequenceGaps: 0 });
    expect(index.overlaps(promptA)[2]).toBe(2);
    expect(index.overlaps(promptB)[2]).toBe(3);
    expect(index.size).toBe(3);
    expect(stats.engines[0]).toMatchObject({ id: 2, indexBlocks: 3, ranks: [{ state: "connected", lastSequence: LAYOUTS.length, media: { GPU: 3 } }] });
  });

  it("a skipped sequence number without a replay socket drops the engine's entries, which refill", async () => {
    const { writer, index } = await startWriter();
    const pub = await publisher();
    await writer.addEngine({ id: 1, model: MODEL, blockSize: 16, endpoint: pub.endpoint });
    await pub.subscribed();
    await pub.send(0, scenarioWithoutClear());
    await until(writer, (s) => s.batchesApplied === 1);
    expect(index.overlaps(promptB)[1]).toBe(3);
    await pub.send(2, freshBlock(77n, 500)); // 1 is skipped
    const stats = await until(writer, (s) => s.batchesApplied === 2);
    expect(stats).toMatchObject({ sequenceGaps: 1, replaysRequested: 0, dropsByReason: { gap: 1 } });
    expect(index.overlaps(promptB)[1]).toBe(0);
    expect(index.overlaps(freshBlockHash(500))[1]).toBe(1);
  });

  for (const withTopic of [false, true]) {
    it(`a skipped sequence number is repaired from the replay socket (${withTopic ? "newer" : "older"} reply form)`, async () => {
      const { writer, index } = await startWriter();
      const pub = await publisher();
      const sent = new Map<number, Uint8Array>();
      const replay = await replayServer(sent, withTopic);
      await writer.addEngine({ id: 3, model: MODEL, blockSize: 16, endpoint: pub.endpoint, replayEndpoint: replay.endpoint });
      await pub.subscribed();
      const batches = [scenarioWithoutClear(), freshBlock(80n, 800), freshBlock(81n, 810), freshBlock(82n, 820)];
      for (const [seq, payload] of batches.entries()) {
        sent.set(seq, payload);
        if (seq !== 2) await pub.send(seq, payload); // the publisher "loses" batch 2 on the way
      }
      const stats = await until(writer, (s) => s.batchesApplied === 4);
      expect(replay.requests).toEqual([2]);
      expect(stats).toMatchObject({ sequenceGaps: 1, replaysRequested: 1, replaysSucceeded: 1, replaysFailed: 0, drops: 0 });
      for (const token of [800, 810, 820]) expect(index.overlaps(freshBlockHash(token))[3]).toBe(1);
      expect(index.overlaps(promptB)[3]).toBe(3);
    });
  }

  it("a replay that cannot cover the gap drops the engine instead", async () => {
    const { writer, index } = await startWriter();
    const pub = await publisher();
    const sent = new Map<number, Uint8Array>();
    const replay = await replayServer(sent, true);
    await writer.addEngine({ id: 3, model: MODEL, blockSize: 16, endpoint: pub.endpoint, replayEndpoint: replay.endpoint });
    await pub.subscribed();
    sent.set(0, scenarioWithoutClear());
    await pub.send(0, sent.get(0)!);
    await until(writer, (s) => s.batchesApplied === 1);
    // Batch 1 is neither delivered nor buffered: the replay answers with nothing below 2.
    sent.set(2, freshBlock(90n, 900));
    await pub.send(2, sent.get(2)!);
    const stats = await until(writer, (s) => s.batchesApplied === 2);
    expect(stats).toMatchObject({ replaysRequested: 1, replaysFailed: 1, dropsByReason: { "replay-failed": 1 } });
    expect(index.overlaps(promptB)[3]).toBe(0);
    expect(index.overlaps(freshBlockHash(900))[3]).toBe(1);
  });

  it("a router that joins late replays what the publisher still buffers", async () => {
    const { writer, index } = await startWriter();
    const pub = await publisher();
    const sent = new Map<number, Uint8Array>([[0, scenarioWithoutClear()], [1, freshBlock(60n, 600)]]);
    const replay = await replayServer(sent, false);
    await writer.addEngine({ id: 4, model: MODEL, blockSize: 16, endpoint: pub.endpoint, replayEndpoint: replay.endpoint });
    await pub.subscribed();
    sent.set(2, freshBlock(61n, 610));
    await pub.send(2, sent.get(2)!);
    const stats = await until(writer, (s) => s.batchesApplied === 3);
    expect(replay.requests).toEqual([0]);
    expect(stats).toMatchObject({ replaysSucceeded: 1, sequenceGaps: 0, drops: 0 });
    expect(index.overlaps(promptB)[4]).toBe(3);
    expect(index.overlaps(freshBlockHash(610))[4]).toBe(1);
  });

  it("a malformed payload is counted and skipped; the stream goes on", async () => {
    const { writer, index } = await startWriter();
    const pub = await publisher();
    await writer.addEngine({ id: 0, model: MODEL, blockSize: 16, endpoint: pub.endpoint });
    await pub.subscribed();
    await pub.send(0, Buffer.from([0x93, 0x01]));
    await pub.send(1, packr.pack([1.0, [["BlockStored", ["not a hash"], null, [], 16, null]]]));
    await pub.send(2, freshBlock(5n, 50));
    const stats = await until(writer, (s) => s.batchesApplied === 1 && s.payloadsRejected === 2);
    expect(stats.engines[0]!.ranks[0]!.lastError).toMatch(/batch 1: .*events\[0\]\.block_hashes\[0\]: expected a block hash/);
    expect(stats).toMatchObject({ sequenceGaps: 0, drops: 0 });
    expect(index.overlaps(freshBlockHash(50))[0]).toBe(1);
  });

  it("a publisher that goes away and comes back (numbering from 0) is reconnected; the old entries are dropped", async () => {
    const { writer, index } = await startWriter();
    const first = await publisher();
    await writer.addEngine({ id: 5, model: MODEL, blockSize: 16, endpoint: first.endpoint });
    await first.subscribed();
    await first.send(0, scenarioWithoutClear());
    await first.send(1, freshBlock(70n, 700));
    await until(writer, (s) => s.batchesApplied === 2);
    first.close();
    await until(writer, (s) => s.engines[0]!.ranks[0]!.state === "disconnected");
    expect(index.overlaps(promptB)[5]).toBe(0);
    const second = await publisher(first.port);
    await second.subscribed();
    await second.send(0, freshBlock(71n, 710));
    const stats = await until(writer, (s) => s.batchesApplied === 3);
    expect(stats.engines[0]!.ranks[0]).toMatchObject({ state: "connected", connects: 2, disconnects: 1, lastSequence: 0 });
    expect(stats.dropsByReason.disconnect).toBe(1);
    expect(index.overlaps(freshBlockHash(700))[5]).toBe(0);
    expect(index.overlaps(freshBlockHash(710))[5]).toBe(1);
  });

  it("data-parallel ranks publish on port + rank into one engine; removing the engine drops everything", async () => {
    const { writer, index } = await startWriter();
    // Two adjacent free ports: bind rank 0 anywhere, then try the next port, a few times if taken.
    let rank0: Publisher | undefined;
    let rank1: Publisher | undefined;
    for (let attempt = 0; attempt < 20 && rank1 === undefined; attempt++) {
      const candidate = await publisher();
      try {
        rank1 = await publisher(candidate.port + 1);
        rank0 = candidate;
      } catch {
        candidate.close();
      }
    }
    expect(rank1).toBeDefined();
    await writer.addEngine({ id: 6, model: MODEL, blockSize: 16, endpoint: rank0!.endpoint, dataParallelSize: 2 });
    await Promise.all([rank0!.subscribed(), rank1!.subscribed()]);
    await rank0!.send(0, scenarioWithoutClear());
    await rank1!.send(0, freshBlock(33n, 330));
    const stats = await until(writer, (s) => s.batchesApplied === 2);
    expect(stats.engines[0]!.ranks.map((r) => r.endpoint)).toEqual([rank0!.endpoint, rank1!.endpoint]);
    expect(index.overlaps(promptB)[6]).toBe(3);
    expect(index.overlaps(freshBlockHash(330))[6]).toBe(1);
    await writer.removeEngine(6);
    expect(index.size).toBe(0);
    expect((await writer.stats()).engines).toEqual([]);
  });

  it("events at another block size are counted and skipped, and the main thread is told once per engine", async () => {
    const { writer, index } = await startWriter();
    const notices: unknown[] = [];
    writer.onNotice((n) => notices.push(n));
    const pub = await publisher();
    await writer.addEngine({ id: 3, model: MODEL, blockSize: 32, endpoint: pub.endpoint });
    await pub.subscribed();
    await pub.send(0, freshBlock(11n, 100));
    await pub.send(1, freshBlock(12n, 200));
    const stats = await until(writer, (s) => s.blockSizeMismatch === 2);
    expect(stats.blocksStored).toBe(0);
    expect(index.overlaps(freshBlockHash(100))[3]).toBe(0);
    expect(notices).toEqual([{ kind: "block_size_mismatch", engine: 3, eventBlockSize: 16, engineBlockSize: 32 }]);
    // Removed and added again, the engine is reported again. Batches are sent until the new subscription
    // has received one (a subscriber that has just connected misses what was sent before), bounded.
    await writer.removeEngine(3);
    await writer.addEngine({ id: 3, model: MODEL, blockSize: 32, endpoint: pub.endpoint });
    for (let seq = 0; seq < 200 && notices.length < 2; seq++) {
      await pub.send(seq, freshBlock(BigInt(20 + seq), 300 + seq));
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(notices).toHaveLength(2);
    expect(notices[1]).toEqual(notices[0]);
  });

  it("rejects a bad engine config with a message, and keeps working", async () => {
    const { writer } = await startWriter();
    await expect(writer.addEngine({ id: 1, model: MODEL, blockSize: 16, endpoint: "localhost:5557" })).rejects.toThrow(/endpoint must be a ZMQ endpoint/);
    await expect(writer.addEngine({ id: 9, model: MODEL, blockSize: 16, endpoint: "tcp://127.0.0.1:1" })).rejects.toThrow(/engine must be an integer from 0 to 7/);
    await expect(writer.addEngine({ id: 1, model: MODEL, blockSize: 16, endpoint: "ipc://kv-events.sock", dataParallelSize: 2 })).rejects.toThrow(/need a tcp:\/\/host:port endpoint/);
    await expect(KvEventThread.start({ capacity: 0 })).rejects.toThrow(/capacity must be/);
    expect((await writer.stats()).engines).toEqual([]);
  });
});
