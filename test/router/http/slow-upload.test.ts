// Slow clients against the frontend's default timeouts, which are also uWebSockets.js's own: uWS drops a
// connection whose body arrives at under 16 KB/s after about 10 s, unanswered, unless the frontend keeps
// re-arming it. The three clients run at once; the test takes about 16 s.
import { afterAll, beforeAll, expect, it } from "vitest";
import { DEFAULT_BODY_IDLE_TIMEOUT_MS, Frontend } from "../../../src/router/http/server.js";
import { fakeBackend } from "./fake-backend.js";
import { exchange, openSocket, sleep, type RawResult } from "./raw-http.js";

let frontend: Frontend;
let port: number;

beforeAll(async () => {
  frontend = new Frontend(fakeBackend(), { host: "127.0.0.1", port: 0, maxBodyBytes: 1 << 20 });
  port = await frontend.listen();
});

afterAll(() => frontend.close());

/** A 160 KB completion body sent at 10 KB/s: 1 KB every 100 ms, for 16 s. */
async function steadyUpload(): Promise<RawResult> {
  const prefix = '{"model": "m", "max_tokens": 1, "prompt": "';
  const body = Buffer.from(prefix + "word ".repeat((160 * 1024 - prefix.length - 2) / 5) + '"}');
  const socket = await openSocket(port);
  try {
    return await exchange(
      socket,
      async (s) => {
        s.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
        for (let at = 0; at < body.length && !s.destroyed; at += 1024) {
          await sleep(100);
          s.write(body.subarray(at, at + 1024));
        }
      },
      { responses: 1, timeoutMs: 30_000 },
    );
  } finally {
    socket.destroy();
  }
}

/** Headers one byte every 500 ms, never finished (slowloris). */
async function slowHeaders(): Promise<RawResult> {
  const head = `POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Padding: ${"a".repeat(100)}`;
  const socket = await openSocket(port);
  try {
    return await exchange(
      socket,
      async (s) => {
        for (let i = 0; i < head.length && !s.destroyed; i++) {
          s.write(head[i]!);
          await sleep(500);
        }
      },
      { timeoutMs: 30_000 },
    );
  } finally {
    socket.destroy();
  }
}

/** Headers and the start of a body, then nothing. */
async function stalledBody(): Promise<RawResult> {
  const socket = await openSocket(port);
  try {
    return await exchange(socket, (s) => void s.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"model"'), { timeoutMs: 30_000 });
  } finally {
    socket.destroy();
  }
}

it("takes a body arriving at 10 KB/s for 16 s, answers a stalled body 408, and cuts off slow headers", async () => {
  const [steady, slowloris, stalled] = await Promise.all([steadyUpload(), slowHeaders(), stalledBody()]);

  expect(steady.elapsedMs).toBeGreaterThan(16_000);
  expect(steady.responses.map((r) => r.status)).toEqual([200]);
  expect(JSON.parse(steady.responses[0]!.body).choices[0].text).toBe("ok");

  // uWS's header deadline: 10 s, on 4 s ticks; the client never got to send a whole request line of headers.
  expect(slowloris.closed).toBe(true);
  expect(slowloris.responses).toEqual([]);
  expect(slowloris.elapsedMs).toBeGreaterThan(7_000);
  expect(slowloris.elapsedMs).toBeLessThan(14_000);

  expect(stalled.closed).toBe(true);
  expect(stalled.responses.map((r) => [r.status, JSON.parse(r.body).error.code])).toEqual([[408, "request_timeout"]]);
  expect(stalled.elapsedMs).toBeGreaterThanOrEqual(DEFAULT_BODY_IDLE_TIMEOUT_MS);
  expect(stalled.elapsedMs).toBeLessThan(DEFAULT_BODY_IDLE_TIMEOUT_MS + 1_500);
}, 40_000);
