// The HTTP frontend against clients no library would be: raw sockets on 127.0.0.1 to a real uWebSockets.js
// server, with a small in-process backend. Timeouts are short here; slow-upload.test.ts shows the defaults.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Frontend } from "../../../src/router/http/server.js";
import { fakeBackend } from "./fake-backend.js";
import { exchange, get, openSocket, post, raw, sleep } from "./raw-http.js";

const MAX_BODY = 64 * 1024;
const IDLE_MS = 400;
const DISCARD_MAX_BYTES = 1024 * 1024;

const backend = fakeBackend();
const given = backend.given;

let frontend: Frontend;
let port: number;

beforeAll(async () => {
  frontend = new Frontend(backend, {
    host: "127.0.0.1",
    port: 0,
    maxBodyBytes: MAX_BODY,
    bodyIdleTimeoutMs: IDLE_MS,
    discardMaxBytes: DISCARD_MAX_BYTES,
    discardMaxMs: 3_000,
  });
  port = await frontend.listen();
});

afterAll(() => frontend.close());

const completion = JSON.stringify({ model: "m", prompt: "hello", max_tokens: 1 });

describe("HEAD", () => {
  it("answers HEAD wherever GET is, with the GET's headers and no body", async () => {
    const full = await raw(port, get("/health"), { responses: 1 });
    // A body after the HEAD answer would be read as the start of the next response, and break it.
    const r = await raw(port, get("/health", "HEAD") + get("/v1/models", "HEAD") + get("/health"), { responses: 3, bodyless: [0, 1] });
    expect(r.responses.map((x) => x.status)).toEqual([200, 200, 200]);
    expect(r.responses[0]!.headers["content-length"]).toBe(String(Buffer.byteLength(full.responses[0]!.body)));
    expect(r.responses[0]!.headers["content-type"]).toBe("application/json");
    expect(r.responses[0]!.body).toBe("");
    expect(JSON.parse(r.responses[2]!.body)).toEqual(JSON.parse(full.responses[0]!.body));
  });

  it("lists HEAD beside GET when refusing a method", async () => {
    const r = await raw(port, get("/health", "DELETE"), { responses: 1 });
    expect(r.responses[0]!.status).toBe(405);
    expect(r.responses[0]!.headers.allow).toBe("GET, HEAD");
    const p = await raw(port, get("/v1/completions", "HEAD"), { responses: 1, bodyless: [0] });
    expect(p.responses[0]!.status).toBe(405);
    expect(p.responses[0]!.headers.allow).toBe("POST");
  });
});

describe("Content-Length", () => {
  it("refuses two different Content-Length headers with a 400, and closes the connection", async () => {
    const body = '{"model":"m"}';
    const r = await raw(port, `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    expect(r.closed).toBe(true);
    expect(r.responses).toHaveLength(1);
    expect(r.responses[0]!.status).toBe(400);
    expect(JSON.parse(r.responses[0]!.body)).toEqual({
      error: { message: `the request has conflicting Content-Length headers ("5" and "${body.length}")`, type: "invalid_request_error", param: null, code: "invalid_content_length" },
    });
  });

  it("refuses them in either order, and on any path", async () => {
    const r = await raw(port, "POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nContent-Length: 2\r\n\r\nab");
    expect(r.closed).toBe(true);
    expect(r.responses.map((x) => [x.status, JSON.parse(x.body).error.code])).toEqual([[400, "invalid_content_length"]]);
  });

  it("lets no request with a length that is not a plain number through (uWS closes the connection itself)", async () => {
    for (const value of ["2, 2", "-2", "+2", "0x2", "2 2"]) {
      const r = await raw(port, `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ${value}\r\n\r\nab`);
      expect(r.closed).toBe(true);
      expect(r.responses).toEqual([]);
    }
  });

  it("never answers a request hidden behind the shorter of two lengths (request smuggling)", async () => {
    const hidden = get("/v1/models");
    const r = await raw(port, `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`);
    expect(r.closed).toBe(true);
    // uWS parses the hidden request while the 400 is still unanswered, and closes the connection: no answer
    // at all, and above all not the hidden request's.
    expect(r.responses.filter((x) => x.status === 200)).toEqual([]);
    expect(r.responses.map((x) => x.status)).toEqual(r.responses.length ? [400] : []);
  });

  it("takes a repeated Content-Length of the same value", async () => {
    const r = await raw(port, post("/v1/completions", completion, `Content-Length: ${completion.length}\r\n`), { responses: 1 });
    expect(r.responses[0]!.status).toBe(200);
    expect(JSON.parse(r.responses[0]!.body).choices[0].text).toBe("ok");
  });
});

describe("HTTP/1.0", () => {
  it("documented limit: an HTTP/1.0 request gets no answer (uWS waits for its header deadline, about 10 s)", async () => {
    const r = await raw(port, "GET /health HTTP/1.0\r\n\r\n", { timeoutMs: 1_000 });
    expect(r.closed).toBe(false);
    expect(r.responses).toEqual([]);
  });
});

describe("pipelining", () => {
  it("answers requests pipelined behind synchronous answers, in order", async () => {
    const r = await raw(port, get("/health") + get("/v1/models") + get("/nowhere"), { responses: 3 });
    expect(r.responses.map((x) => x.status)).toEqual([200, 200, 404]);
    expect(JSON.parse(r.responses[1]!.body).data[0].id).toBe("m");
  });

  it("answers a request pipelined behind a POST refused before any engine is asked, in order", async () => {
    const r = await raw(port, post("/v1/completions", '{"model": "m", "prompt": 5}') + get("/health"), { responses: 2 });
    expect(r.responses.map((x) => x.status)).toEqual([400, 200]);
    expect(JSON.parse(r.responses[0]!.body).error.param).toBe("prompt");
  });

  it("documented limit: a request pipelined behind a POST still being answered closes the connection unanswered", async () => {
    // uWebSockets.js closes a connection on which a request arrives while the previous one is unanswered.
    // docs/operations.md gives the proxy setting that avoids it; test/e2e/http-proxy.test.ts tests that.
    const r = await raw(port, post("/v1/completions", completion) + get("/health"));
    expect(r.closed).toBe(true);
    expect(r.responses).toEqual([]);
  });
});

describe("chunked bodies", () => {
  it("reads a chunked body", async () => {
    const half = completion.length >> 1;
    const chunked = `${half.toString(16)}\r\n${completion.slice(0, half)}\r\n${(completion.length - half).toString(16)}\r\n${completion.slice(half)}\r\n0\r\n\r\n`;
    const r = await raw(port, `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`, { responses: 1 });
    expect(r.responses[0]!.status).toBe(200);
  });

  it("reads a body of many chunks into one buffer that grows, byte for byte", async () => {
    const text = Array.from({ length: 6000 }, (_, i) => `w${i}`).join(" "); // about 34 KB, past the first 16 KB
    const body = JSON.stringify({ model: "m", prompt: text, max_tokens: 1 });
    let chunked = "";
    for (let at = 0; at < body.length; at += 1000) chunked += `${Math.min(1000, body.length - at).toString(16)}\r\n${body.slice(at, at + 1000)}\r\n`;
    const r = await raw(port, `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}0\r\n\r\n`, { responses: 1 });
    expect(r.responses[0]!.status).toBe(200);
    expect(backend.prompts.at(-1)).toEqual({ kind: "text", text });
  });

  it("documented limit: a chunk extension closes the connection unanswered", async () => {
    const r = await raw(port, `POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${completion.length.toString(16)};ext=1\r\n${completion}\r\n0\r\n\r\n`);
    expect(r.closed).toBe(true);
    expect(r.responses).toEqual([]);
  });
});

describe("slow bodies", () => {
  it("takes a body that keeps arriving, however long it takes in all", async () => {
    const socket = await openSocket(port);
    const body = Buffer.from(completion);
    const r = await exchange(
      socket,
      async (s) => {
        s.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
        // A piece every IDLE_MS / 2: the whole body takes six idle timeouts.
        const pieces = 12;
        const size = Math.ceil(body.length / pieces);
        for (let i = 0; i < pieces; i++) {
          await sleep(IDLE_MS / 2);
          s.write(body.subarray(i * size, (i + 1) * size));
        }
      },
      { responses: 1, timeoutMs: 60_000 },
    );
    socket.destroy();
    expect(r.elapsedMs).toBeGreaterThan(4 * IDLE_MS);
    expect(r.responses[0]!.status).toBe(200);
  });

  it("answers a body that stops arriving with a 408 and an OpenAI error, then closes", async () => {
    const r = await raw(port, `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model":`);
    expect(r.closed).toBe(true);
    expect(r.responses).toHaveLength(1);
    expect(r.responses[0]!.status).toBe(408);
    expect(JSON.parse(r.responses[0]!.body)).toEqual({
      error: { message: `no part of the request body arrived for ${IDLE_MS} ms; send the body without pausing`, type: "invalid_request_error", param: "body", code: "request_timeout" },
    });
    expect(r.elapsedMs).toBeGreaterThanOrEqual(IDLE_MS);
    expect(r.elapsedMs).toBeLessThan(IDLE_MS + 1_000);
  });

  it("gives a client that sent headers and no body at all its 408", async () => {
    const r = await raw(port, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n");
    expect(r.responses.map((x) => x.status)).toEqual([408]);
    expect(r.closed).toBe(true);
  });
});

describe("bodies over the limit", () => {
  const tooLarge = { error: { message: `the request body is larger than the limit of ${MAX_BODY} bytes`, type: "invalid_request_error", param: "body", code: "body_too_large" } };

  it("reads and drops a declared body over the limit, answers 413, and keeps the connection", async () => {
    const size = 4 * MAX_BODY;
    const r = await raw(port, Buffer.concat([Buffer.from(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`), Buffer.alloc(size, 0x20), Buffer.from(get("/health"))]), { responses: 2 });
    expect(r.responses.map((x) => x.status)).toEqual([413, 200]);
    expect(JSON.parse(r.responses[0]!.body)).toEqual(tooLarge);
  });

  it("does the same for a chunked body that goes over the limit part-way", async () => {
    const chunk = "x".repeat(16 * 1024);
    const chunks = Array.from({ length: 6 }, () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join("");
    const r = await raw(port, `POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunks}0\r\n\r\n${get("/health")}`, { responses: 2 });
    expect(r.responses.map((x) => x.status)).toEqual([413, 200]);
  });

  it("stops reading past the discard bound and closes the connection, the 413 sent first", async () => {
    const socket = await openSocket(port);
    let sent = 0;
    const r = await exchange(socket, async (s) => {
      s.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ${64 * DISCARD_MAX_BYTES}\r\n\r\n`);
      const block = Buffer.alloc(64 * 1024);
      while (!s.destroyed && sent < 16 * DISCARD_MAX_BYTES) {
        sent += block.length;
        if (!s.write(block)) await new Promise((resolve) => s.once("drain", resolve));
      }
    });
    socket.destroy();
    expect(r.closed).toBe(true);
    // Closing on a client that is still sending resets the connection, which may discard the 413 before
    // the client reads it: that part is best effort, as in nginx once its lingering time is over.
    expect(r.responses.map((x) => x.status)).toEqual(r.responses.length ? [413] : []);
    expect(sent).toBeLessThan(16 * DISCARD_MAX_BYTES);
  });

  it("gives a refused body that stops arriving its 413, not a 408", async () => {
    const r = await raw(port, `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: ${2 * MAX_BODY}\r\n\r\nabc`);
    expect(r.closed).toBe(true);
    expect(r.responses.map((x) => x.status)).toEqual([413]);
  });
});

describe("completions batches", () => {
  it("gives each prompt of a batch its own signal, with one listener each", async () => {
    given.length = 0;
    const body = JSON.stringify({ model: "m", prompt: Array.from({ length: 12 }, (_, i) => `prompt ${i}`), max_tokens: 1 });
    const r = await raw(port, post("/v1/completions", body), { responses: 1 });
    expect(r.responses[0]!.status).toBe(200);
    expect(JSON.parse(r.responses[0]!.body).choices).toHaveLength(12);
    expect(given).toHaveLength(12);
    expect(new Set(given.map((g) => g.signal)).size).toBe(12);
    expect(given.map((g) => g.listeners)).toEqual(Array(12).fill(1));
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
