// The router's EngineClient against both real engines, each in its own process: the simulator and the
// Python vLLM worker (on a fake AsyncLLM, since vLLM needs a GPU).
import { afterEach, describe, expect, it } from "vitest";
import { EngineClient, EngineConnectError, type EngineDisconnect, type EngineEvent } from "../../src/index.js";
import { PYTHON, RawConnection, startSimProcess, startWorkerProcess, workerUnavailable, type RunningEngine } from "./engines.js";

function prompt(n: number, salt = 0): number[] {
  return Array.from({ length: n }, (_, i) => (i * 7919 + salt * 104_729) % 150_000);
}

async function collect(stream: AsyncIterable<EngineEvent>, onEvent?: (event: EngineEvent, index: number) => void): Promise<EngineEvent[]> {
  const events: EngineEvent[] = [];
  for await (const event of stream) {
    events.push(event);
    onEvent?.(event, events.length - 1);
  }
  return events;
}

// The worker needs a Python with msgpack (or msgspec): without one these tests are skipped, saying why,
// unless KVROUTE_REQUIRE_PYTHON=1 (as CI sets) makes that a failure.
const workerMissing = workerUnavailable();
if (workerMissing !== null) {
  if (process.env.KVROUTE_REQUIRE_PYTHON === "1") throw new Error(`KVROUTE_REQUIRE_PYTHON=1, but ${workerMissing}`);
  console.warn(`skipping the vLLM worker's engine-protocol tests: ${workerMissing} (install python3-msgpack, or set KVROUTE_PYTHON)`);
}

const engines: Array<[string, (extra?: string[]) => Promise<RunningEngine>, boolean]> = [
  ["simulator (kvroute sim)", startSimProcess, false],
  [`vLLM worker (${PYTHON} -m kvroute_vllm, fake AsyncLLM)`, startWorkerProcess, workerMissing !== null],
];

for (const [name, startEngine, skip] of engines) {
  describe.skipIf(skip)(`engine protocol: ${name}`, () => {
    let engine: RunningEngine | null = null;
    const clients: EngineClient[] = [];
    const raws: RawConnection[] = [];

    const client = async (options: ConstructorParameters<typeof EngineClient>[1] = {}): Promise<EngineClient> => {
      engine ??= await startEngine();
      const c = new EngineClient(engine.url, { expectedBlockSize: 16, ...options });
      clients.push(c);
      await c.connect();
      return c;
    };

    const raw = async (): Promise<RawConnection> => {
      engine ??= await startEngine();
      const r = await RawConnection.open(engine.port);
      raws.push(r);
      return r;
    };

    afterEach(async () => {
      for (const r of raws.splice(0)) r.close();
      for (const c of clients.splice(0)) await c.close();
      await engine?.stop();
      engine = null;
    });

    it("streams deltas then a finish, and reports the engine's cached tokens on a repeated prompt", async () => {
      const c = await client();
      expect(c.info).toMatchObject({ protocolVersion: 1, blockSize: 16, maxModelLen: 32768 });
      const p = prompt(100);
      const first = await collect(c.generate({ promptTokenIds: p, sampling: { maxTokens: 5 }, overlapBlocks: 0 }));
      const second = await collect(c.generate({ promptTokenIds: p, sampling: { maxTokens: 5 }, overlapBlocks: 6 }));
      expect(first.map((e) => e.type)).toEqual(["delta", "delta", "delta", "delta", "delta", "finish"]);
      expect(first.at(-1)).toEqual({ type: "finish", finishReason: "length", stopReason: null, usage: { promptTokens: 100, completionTokens: 5, cachedTokens: 0 } });
      expect(second.at(-1)).toMatchObject({ type: "finish", usage: { promptTokens: 100, completionTokens: 5, cachedTokens: 96 } });
      const tokens = first.flatMap((e) => (e.type === "delta" ? e.tokenIds : []));
      expect(tokens).toHaveLength(5);
    });

    it("multiplexes concurrent requests on one connection", async () => {
      const c = await client();
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => collect(c.generate({ promptTokenIds: prompt(30, i), sampling: { maxTokens: 1 + (i % 7) } }))),
      );
      results.forEach((events, i) => {
        expect(events.at(-1)).toMatchObject({ type: "finish", usage: { completionTokens: 1 + (i % 7) } });
        expect(events.filter((e) => e.type === "delta").flatMap((e) => (e.type === "delta" ? e.tokenIds : []))).toHaveLength(1 + (i % 7));
      });
      expect(c.inFlight).toBe(0);
    });

    it("aborts mid-stream through the signal or by leaving the loop, and the connection carries on", async () => {
      const c = await client();
      const controller = new AbortController();
      const events = await collect(c.generate({ promptTokenIds: prompt(40), sampling: { maxTokens: 20_000 } }, { signal: controller.signal }), (_, i) => {
        if (i === 1) controller.abort();
      });
      expect(events.map((e) => e.type)).toEqual(["delta", "delta"]);
      let seen = 0;
      for await (const event of c.generate({ promptTokenIds: prompt(40, 1), sampling: { maxTokens: 20_000 } })) {
        expect(event.type).toBe("delta");
        if (++seen === 3) break;
      }
      expect(c.inFlight).toBe(0);
      const after = await collect(c.generate({ promptTokenIds: prompt(40, 2), sampling: { maxTokens: 2 } }));
      expect(after.at(-1)).toMatchObject({ type: "finish", usage: { completionTokens: 2 } });
    });

    it("ends every in-flight stream with engine_disconnected when the engine is killed mid-stream", async () => {
      const c = await client({ reconnect: false });
      const disconnects: EngineDisconnect[] = [];
      c.on("disconnect", (d) => disconnects.push(d));
      const streams = [0, 1, 2].map((i) => collect(c.generate({ promptTokenIds: prompt(40, i), sampling: { maxTokens: 20_000 } }), (_, index) => {
        if (i === 0 && index === 2) void engine!.stop("SIGKILL");
      }));
      const results = await Promise.all(streams);
      for (const events of results) {
        const last = events.at(-1)!;
        expect(last.type).toBe("error");
        if (last.type !== "error") continue;
        expect(last.code).toBe("engine_disconnected");
        expect(last.message).toMatch(/disconnected .* after \d+ output tokens?/);
        expect(last.tokensProduced).toBe(events.filter((e) => e.type === "delta").reduce((n, e) => n + (e.type === "delta" ? e.tokenIds.length : 0), 0));
      }
      expect(results[0]!.at(-1)).toMatchObject({ tokensProduced: expect.any(Number) });
      expect((results[0]!.at(-1) as { tokensProduced: number }).tokensProduced).toBeGreaterThanOrEqual(3);
      expect(disconnects).toEqual([{ reason: expect.any(String), failedRequests: 3, willReconnect: false }]);
      expect(c.connected).toBe(false);
      const late = await collect(c.generate({ promptTokenIds: prompt(10) }));
      expect(late).toEqual([{ type: "error", code: "engine_unavailable", message: expect.stringContaining("not connected"), tokensProduced: 0 }]);
    });

    it("closes a connection that sends an oversize frame or garbage, and only that one", async () => {
      const c = await client();
      const big = await raw();
      big.send({ type: "hello", protocol: 1 });
      await big.waitFor((f) => f.type === "welcome");
      const header = Buffer.alloc(4);
      header.writeUInt32BE(16 * 1024 * 1024 + 1);
      big.sendRaw(header);
      expect(await big.waitFor((f) => f.type === "error")).toMatchObject({ id: null, code: "frame_too_large" });
      await big.closed;

      const http = await raw();
      http.sendRaw(Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
      expect(await http.waitFor((f) => f.type === "error")).toMatchObject({ code: "frame_too_large" });
      await http.closed;

      const garbage = await raw();
      garbage.send({ type: "hello", protocol: 1 });
      garbage.sendRaw(Buffer.from([0, 0, 0, 3, 0x93, 0x01, 0xc1]));
      expect(await garbage.waitFor((f) => f.type === "error")).toMatchObject({ code: "bad_frame" });
      await garbage.closed;

      const events = await collect(c.generate({ promptTokenIds: prompt(20), sampling: { maxTokens: 1 } }));
      expect(events.at(-1)?.type).toBe("finish");
    });

    it("answers unknown message types and bad requests with errors and keeps the connection", async () => {
      const r = await raw();
      r.send({ type: "hello", protocol: 1, block_size: 16 });
      await r.waitFor((f) => f.type === "welcome");
      r.send({ type: "warp_drive", id: 77 });
      expect(await r.waitFor((f) => f.type === "error")).toMatchObject({ id: 77, code: "unknown_type" });
      r.send({ type: "generate", id: 78, prompt_token_ids: "not tokens" });
      expect(await r.waitFor((f) => f.id === 78)).toMatchObject({ type: "error", code: "invalid_request", message: expect.stringContaining("prompt_token_ids") });
      r.send({ type: "heartbeat", ts: 12.5 });
      expect(await r.waitFor((f) => f.type === "heartbeat")).toEqual({ type: "heartbeat", ts: 12.5 });
      r.send({ type: "generate", id: 79, prompt_token_ids: [1, 2, 3], sampling: { max_tokens: 1 }, some_future_field: { x: 1 } });
      expect(await r.waitFor((f) => f.type === "finish")).toMatchObject({ id: 79, usage: { prompt_tokens: 3, completion_tokens: 1 } });
    });

    it("refuses another protocol version, and the client refuses another block size", async () => {
      const r = await raw();
      r.send({ type: "hello", protocol: 99 });
      const refusal = await r.waitFor((f) => f.type === "error");
      expect(refusal).toMatchObject({ id: null, code: "version_mismatch" });
      expect(refusal.message).toMatch(/99.*1/);
      await r.closed;

      const wrong = new EngineClient(engine!.url, { expectedBlockSize: 32 });
      clients.push(wrong);
      const error = await wrong.connect().then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(EngineConnectError);
      expect((error as EngineConnectError).code).toBe("block_size_mismatch");
      expect((error as Error).message).toMatch(/32.*16/);
    });
  });
}
