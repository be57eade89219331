// The HTTP frontend against clients no library would be: raw sockets on 127.0.0.1 to a real uWebSockets.js
// server, with a small in-process backend.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Frontend } from "../../../src/router/http/server.js";
import { fakeBackend } from "./fake-backend.js";
import { openSocket, post, raw, sleep } from "./raw-http.js";

const MAX_BODY = 64 * 1024;

const backend = fakeBackend();
const given = backend.given;

let frontend: Frontend;
let port: number;

beforeAll(async () => {
  frontend = new Frontend(backend, {
    host: "127.0.0.1",
    port: 0,
    maxBodyBytes: MAX_BODY,
  });
  port = await frontend.listen();
});

afterAll(() => frontend.close());

const completion = JSON.stringify({ model: "m", prompt: "hello", max_tokens: 1 });

describe("completions batches", () => {
  it("gives each prompt of a batch its own signal: one listener each, no MaxListenersExceededWarning", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      given.length = 0;
      const body = JSON.stringify({ model: "m", prompt: Array.from({ length: 12 }, (_, i) => `prompt ${i}`), max_tokens: 1 });
      const r = await raw(port, post("/v1/completions", body), { responses: 1 });
      expect(r.responses[0]!.status).toBe(200);
      expect(JSON.parse(r.responses[0]!.body).choices).toHaveLength(12);
      await sleep(50); // warnings are emitted on the next tick
      expect(given).toHaveLength(12);
      expect(new Set(given.map((g) => g.signal)).size).toBe(12);
      expect(given.map((g) => g.listeners)).toEqual(Array(12).fill(1));
      expect(warnings.filter((w) => w.name === "MaxListenersExceededWarning")).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("still aborts every prompt of a batch when its client leaves", async () => {
    given.length = 0;
    const body = JSON.stringify({ model: "m", prompt: Array.from({ length: 12 }, () => "wait"), max_tokens: 1 });
    const socket = await openSocket(port);
    socket.write(post("/v1/completions", body));
    for (let i = 0; i < 100 && given.length < 12; i++) await sleep(10);
    expect(given).toHaveLength(12);
    expect(given.some((g) => g.signal.aborted)).toBe(false);
    socket.destroy();
    for (let i = 0; i < 100 && !given.every((g) => g.signal.aborted); i++) await sleep(10);
    expect(given.every((g) => g.signal.aborted)).toBe(true);
  });
});
