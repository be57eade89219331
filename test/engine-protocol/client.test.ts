import { createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  decodeBody,
  encodeFrame,
  EngineClient,
  FrameDecoder,
  startSimulator,
  type EngineDisconnect,
  type EngineEvent,
  type Welcome,
  type SimulatorHandle,
  type SimulatorOptions,
} from "../../src/index.js";

function prompt(n: number, salt = 0): number[] {
  return Array.from({ length: n }, (_, i) => (i * 7919 + salt * 104_729) % 150_000);
}

async function collect(stream: AsyncIterable<EngineEvent>): Promise<EngineEvent[]> {
  const events: EngineEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

function once<T>(emitter: EngineClient, event: "connect" | "disconnect"): Promise<T> {
  return new Promise((resolve) => emitter.once(event, (value: unknown) => resolve(value as T)));
}

/** A port nothing listens on (it was free a moment ago). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("EngineClient", () => {
  const sims: SimulatorHandle[] = [];
  const clients: EngineClient[] = [];
  const servers: Server[] = [];

  const sim = async (options: SimulatorOptions = {}): Promise<SimulatorHandle> => {
    const s = await startSimulator({ kvEventsEndpoint: null, ...options });
    sims.push(s);
    return s;
  };
  const client = (url: string, options: ConstructorParameters<typeof EngineClient>[1] = {}): EngineClient => {
    const c = new EngineClient(url, options);
    clients.push(c);
    return c;
  };

  /**
   * An engine on 127.0.0.1 that answers the handshake and hands each generate to `onGenerate`, which writes
   * what the test needs; resolves with its tcp:// URL.
   */
  const scriptedEngine = async (onGenerate: (socket: Socket, id: number) => void): Promise<string> => {
    const scripted = createServer((socket) => {
      const decoder = new FrameDecoder();
      socket.on("data", (chunk: Buffer) => {
        for (const frame of decoder.push(chunk)) {
          const message = decodeBody(frame) as { type: string; id: number };
          if (message.type === "hello") {
            socket.write(encodeFrame({ type: "welcome", protocol: 1, engine_id: "e", engine: "test", model: "m", block_size: 16, num_blocks: 10, max_model_len: 100, max_frame_bytes: 1024, kv_events: null }));
          } else if (message.type === "generate") {
            onGenerate(socket, message.id);
          }
        }
      });
    });
    servers.push(scripted);
    await new Promise<void>((resolve) => scripted.listen(0, "127.0.0.1", resolve));
    return `tcp://127.0.0.1:${(scripted.address() as { port: number }).port}`;
  };

  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    for (const s of sims.splice(0)) await s.close();
    for (const server of servers.splice(0)) await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("reconnects with backoff after the engine restarts, failing what was in flight", async () => {
    const first = await sim({ speedup: 0.2 });
    const port = first.port;
    const c = client(first.url, { reconnect: { initialDelayMs: 20, maxDelayMs: 100 } });
    const connects: Welcome[] = [];
    c.on("connect", (info) => connects.push(info));
    await c.connect();
    const running = collect(c.generate({ promptTokenIds: prompt(20), sampling: { maxTokens: 10_000 } }));
    const dropped = once<EngineDisconnect>(c, "disconnect");
    await first.close();
    expect(await dropped).toMatchObject({ failedRequests: 1, willReconnect: true });
    expect((await running).at(-1)).toMatchObject({ type: "error", code: "engine_disconnected" });

    const back = once<Welcome>(c, "connect");
    await sim({ port });
    expect((await back).blockSize).toBe(16);
    expect(connects).toHaveLength(2);
    expect(c.connected).toBe(true);
    expect((await collect(c.generate({ promptTokenIds: prompt(20), sampling: { maxTokens: 2 } }))).at(-1)?.type).toBe("finish");
  });

  it("keeps trying the first connect when asked to, until the engine appears", async () => {
    const port = await freePort();
    const c = client(`tcp://127.0.0.1:${port}`, { retryInitialConnect: true, reconnect: { initialDelayMs: 20, maxDelayMs: 50 } });
    const connecting = c.connect();
    const failFast = client(`tcp://127.0.0.1:${port}`);
    await expect(failFast.connect()).rejects.toMatchObject({ code: "connect_failed" });
    await sim({ port });
    expect((await connecting).engineId).toContain(String(port));
  });

  it("drops a connection on which nothing arrives for the heartbeat timeout", async () => {
    // An engine that handshakes and then goes silent, answering no heartbeat.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => {
      sockets.push(socket);
      socket.once("data", () =>
        socket.write(
          encodeFrame({ type: "welcome", protocol: 1, engine_id: "silent", engine: "test", model: "m", block_size: 16, num_blocks: 10, max_model_len: 100, max_frame_bytes: 1024, kv_events: null }),
        ),
      );
    });
    servers.push(silent);
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as { port: number };
    const logged: string[] = [];
    const c = client(`tcp://127.0.0.1:${port}`, { heartbeatIntervalMs: 20, heartbeatTimeoutMs: 100, reconnect: false, log: (_, m) => logged.push(m) });
    const dropped = once<EngineDisconnect>(c, "disconnect");
    await c.connect();
    const pending = collect(c.generate({ promptTokenIds: [1, 2, 3] }));
    expect((await dropped).reason).toMatch(/heartbeat timeout/);
    expect(logged.join("\n")).toMatch(/nothing received for \d+ ms/);
    expect((await pending).at(-1)).toMatchObject({ code: "engine_disconnected", tokensProduced: 0 });
    for (const socket of sockets) socket.destroy();
  });

  it("delivers every event in order to a slow consumer while it holds reading back", async () => {
    const s = await sim();
    const c = client(s.url, { maxBufferedEvents: 4 });
    await c.connect();
    const slow = (async () => {
      const tokens: number[] = [];
      for await (const event of c.generate({ promptTokenIds: prompt(30), sampling: { maxTokens: 300 } })) {
        if (event.type === "delta") tokens.push(...event.tokenIds);
        await new Promise((resolve) => setImmediate(resolve));
      }
      return tokens;
    })();
    const fast = collect(c.generate({ promptTokenIds: prompt(30, 1), sampling: { maxTokens: 50 } }));
    const reference = await sim();
    const r = client(reference.url);
    await r.connect();
    const expected = (await collect(r.generate({ promptTokenIds: prompt(30), sampling: { maxTokens: 300 } }))).flatMap((e) => (e.type === "delta" ? e.tokenIds : []));
    expect(await slow).toEqual(expected);
    expect((await fast).at(-1)).toMatchObject({ type: "finish", usage: { completionTokens: 50 } });
  });

  it("keeps a connection whose reading is paused for a stalled consumer alive on both sides", async () => {
    const s = await sim();
    const c = client(s.url, { maxBufferedEvents: 2, heartbeatIntervalMs: 20, heartbeatTimeoutMs: 100 });
    await c.connect();
    const events: EngineEvent[] = [];
    for await (const event of c.generate({ promptTokenIds: prompt(30), sampling: { maxTokens: 100 } })) {
      events.push(event);
      // Stalls far past both the client's timeout and the engine's (three heartbeat intervals).
      if (events.length === 1) await new Promise((resolve) => setTimeout(resolve, 400));
    }
    expect(events.at(-1)).toMatchObject({ type: "finish", usage: { completionTokens: 100 } });
    // The engine would have closed a connection silent for three heartbeat intervals.
    expect(s.metrics().connections).toBe(1);
    expect((await collect(c.generate({ promptTokenIds: prompt(30, 1), sampling: { maxTokens: 1 } }))).at(-1)?.type).toBe("finish");
  });

  it("fails a request too large for the engine's frame limit without sending it", async () => {
    const s = await sim({ maxFrameBytes: 1024 });
    const c = client(s.url);
    await c.connect();
    expect(c.info?.maxFrameBytes).toBe(1024);
    const events = await collect(c.generate({ promptTokenIds: prompt(2000) }));
    expect(events).toEqual([{ type: "error", code: "frame_too_large", message: expect.stringMatching(/at most 1024/), tokensProduced: 0 }]);
    expect(s.metrics().framesIn).toBe(1);
    expect((await collect(c.generate({ promptTokenIds: prompt(10), sampling: { maxTokens: 1 } }))).at(-1)?.type).toBe("finish");
  });

  it("ends nothing early for an already aborted signal, and says engine_unavailable before connect", async () => {
    const s = await sim();
    const c = client(s.url);
    expect(await collect(c.generate({ promptTokenIds: [1] }))).toMatchObject([{ type: "error", code: "engine_unavailable" }]);
    await c.connect();
    expect(await collect(c.generate({ promptTokenIds: [1] }, { signal: AbortSignal.abort() }))).toEqual([]);
    expect(s.metrics().requestsAdded).toBe(0);
  });

  it("aborting frees the request on the engine", async () => {
    const s = await sim({ speedup: 0.2 });
    const c = client(s.url);
    await c.connect();
    for await (const event of c.generate({ promptTokenIds: prompt(50), sampling: { maxTokens: 10_000 } })) {
      expect(event.type).toBe("delta");
      break;
    }
    for (let i = 0; i < 200 && s.metrics().requestsAborted === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(s.metrics()).toMatchObject({ requestsAborted: 1, running: 0, blocksUsed: 0 });
  });

  it("delivers nothing after an abort, not even events that had already arrived", async () => {
    // An engine that answers with three deltas in one write: the client has them all queued at once.
    const c = client(
      await scriptedEngine((socket, id) => socket.write(Buffer.concat([1, 2, 3].map((t) => encodeFrame({ type: "delta", id, token_ids: [t], text: "a" }))))),
    );
    await c.connect();
    const controller = new AbortController();
    const seen: EngineEvent[] = [];
    for await (const event of c.generate({ promptTokenIds: [1] }, { signal: controller.signal })) {
      seen.push(event);
      controller.abort();
    }
    expect(seen).toHaveLength(1);
    expect(c.inFlight).toBe(0);
  });

  it("close() ends streams in flight with client_closed", async () => {
    const s = await sim({ speedup: 0.2 });
    const c = client(s.url);
    await c.connect();
    const running = collect(c.generate({ promptTokenIds: prompt(20), sampling: { maxTokens: 10_000 } }));
    await c.close();
    expect((await running).at(-1)).toMatchObject({ type: "error", code: "client_closed" });
    await expect(c.connect()).rejects.toMatchObject({ code: "closed" });
  });

  it("refuses a malformed engine URL", () => {
    expect(() => new EngineClient("localhost:8000")).toThrow(/tcp:\/\/HOST:PORT/);
  });

  it("turns a finish with reason \"error\" into an engine_error that counts the tokens already produced", async () => {
    // An engine that ends request 1 with "error" at once, and request 2 after one token.
    const usage = { prompt_tokens: 1, completion_tokens: 0, cached_tokens: 0 };
    const url = await scriptedEngine((socket, id) => {
      if (id === 1) {
        socket.write(encodeFrame({ type: "finish", id: 1, finish_reason: "error", stop_reason: null, usage }));
      } else {
        socket.write(encodeFrame({ type: "delta", id, token_ids: [7], text: "a" }));
        socket.write(encodeFrame({ type: "finish", id, finish_reason: "error", stop_reason: null, usage: { ...usage, completion_tokens: 1 } }));
      }
    });
    const c = client(url, { reconnect: false });
    await c.connect();
    const first = await collect(c.generate({ promptTokenIds: [1] }));
    expect(first).toEqual([{ type: "error", code: "engine_error", message: expect.stringMatching(/finish reason "error"/), tokensProduced: 0 }]);
    const second = await collect(c.generate({ promptTokenIds: [1] }));
    expect(second.map((e) => e.type)).toEqual(["delta", "error"]);
    expect(second[1]).toMatchObject({ code: "engine_error", tokensProduced: 1 });
  });
});
