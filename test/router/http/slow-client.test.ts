// A client that stops reading a stream: the server stops pulling from the engine (memory stays bounded),
// drops the client after the drain timeout, releases the request, and keeps serving others.
import { connect } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Backend, GenerationEvent } from "../../../src/router/types.js";
import { Frontend } from "../../../src/router/http/server.js";

let pulled = 0;
let released = false;

async function* endless(): AsyncGenerator<GenerationEvent> {
  try {
    yield { type: "start", engine: "fake", overlapBlocks: 0, promptTokens: 1, cachedTokensSource: "engine" };
    for (;;) {
      pulled++;
      yield { type: "delta", text: "x".repeat(200), tokenCount: 1 };
      if (pulled % 256 === 0) await new Promise((r) => setImmediate(r));
    }
  } finally {
    released = true;
  }
}

const backend: Backend = {
  models: () => [],
  checkModel: () => undefined,
  health: () => ({ ready: true, engines: [] }),
  route: () => Promise.reject(new Error("unused")),
  generate: () => Promise.resolve(endless()),
  metrics: () => Promise.resolve({ contentType: "text/plain", body: "" }),
};

let frontend: Frontend;
let port: number;

beforeAll(async () => {
  frontend = new Frontend(backend, { host: "127.0.0.1", port: 0, maxBodyBytes: 1 << 20, drainTimeoutMs: 1500 });
  port = await frontend.listen();
});

afterAll(() => frontend.close());

async function stalled(): Promise<number> {
  // Wait until the count stops moving for a while: the server is waiting for the client to drain.
  let last = -1;
  for (let i = 0; i < 200; i++) {
    await new Promise((r) => setTimeout(r, 100));
    if (pulled === last && pulled > 0) return pulled;
    last = pulled;
  }
  throw new Error("the server never stopped pulling from the engine");
}

it("stops pulling from the engine while the client does not read, then drops the client", async () => {
  const body = JSON.stringify({ model: "m", prompt: "p", stream: true });
  const socket = connect(port, "127.0.0.1");
  await new Promise<void>((r) => socket.once("connect", () => r()));
  socket.pause(); // never read
  socket.on("error", () => undefined);
  socket.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);

  const plateau = await stalled();
  // Bounded by the socket buffers, not by the answer's length: a few megabytes of 200-byte frames at most.
  expect(plateau).toBeLessThan(100_000);
  expect(released).toBe(false);

  // The drain timeout gives up on the client and the request is released, without one more pull.
  for (let i = 0; i < 100 && !released; i++) await new Promise((r) => setTimeout(r, 100));
  expect(released).toBe(true);
  expect(pulled).toBeLessThanOrEqual(plateau + 1);
  socket.destroy();

  const health = await fetch(`http://127.0.0.1:${port}/health`);
  expect(health.status).toBe(200);
}, 60_000);
