// Unusual and hostile HTTP clients against `kvroute serve --sim 2`, over real sockets on 127.0.0.1; and, with
// nginx in front as docs/operations.md recommends, the requests uWebSockets.js 20.30 cannot take itself.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import { get, post, raw, sleep } from "../router/http/raw-http.js";
import { proxyMissing, startHaproxy, startNginx, type RunningProxy } from "./proxies.js";
import { startRouterProcess, type RunningRouter } from "./router-process.js";

const MODEL = "Qwen/Qwen3-0.6B";
const completion = JSON.stringify({ model: MODEL, prompt: "Hello there", max_tokens: 2 });

let router: RunningRouter;
let port: number;

beforeAll(async () => {
  router = await startRouterProcess(["--sim", "2", "--sim-speedup", "0", "--workers", "1"]);
  port = Number(new URL(router.url).port);
});

afterAll(async () => {
  await router?.stop();
});

describe("kvroute serve", () => {
  it("gives a client still sending 64 MiB over --max-body-bytes its 413 (Node's fetch)", async () => {
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${router.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: new Uint8Array(64 << 20) });
      expect(res.status).toBe(413);
      expect(await res.json()).toEqual({
        error: { message: "the request body is larger than the limit of 16777216 bytes", type: "invalid_request_error", param: "body", code: "body_too_large" },
      });
    }
  }, 60_000);

  it("answers a completions batch of 12 prompts without MaxListenersExceededWarning", async () => {
    const prompt = Array.from({ length: 12 }, (_, i) => `Batch prompt number ${i}`);
    const res = await fetch(`${router.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: MODEL, prompt, max_tokens: 2 }) });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { choices: unknown[] }).choices).toHaveLength(12);
    await new Promise((resolve) => setTimeout(resolve, 200)); // a warning would be on stderr by now
    expect(router.stderr()).not.toContain("MaxListenersExceededWarning");
  });

  it("refuses chat tools given as a string with the error a tools array gets", async () => {
    const ask = async (tools: unknown) => {
      const res = await fetch(`${router.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], tools }),
      });
      return { status: res.status, body: await res.json() };
    };
    const asString = await ask("x");
    expect(asString).toEqual(await ask([{ type: "function", function: { name: "f", parameters: {} } }]));
    expect(asString).toMatchObject({ status: 400, body: { error: { param: "tools", code: "unsupported_value" } } });
  });

  it("answers HEAD /health with headers only, and two different Content-Length headers with a 400", async () => {
    const r = await raw(port, get("/health", "HEAD") + get("/health"), { responses: 2, bodyless: [0] });
    expect(r.responses.map((x) => x.status)).toEqual([200, 200]);
    expect(r.responses[0]!.headers["content-length"]).toBe(String(Buffer.byteLength(r.responses[1]!.body)));
    const dup = await raw(port, `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: ${completion.length}\r\n\r\n${completion}`);
    expect(dup.closed).toBe(true);
    expect(dup.responses.map((x) => [x.status, JSON.parse(x.body).error.code])).toEqual([[400, "invalid_content_length"]]);
  });

  it("tells a kept-alive client its idle timeout, so that Node's fetch closes an idle connection before the router does", async () => {
    const streamed = JSON.stringify({ model: MODEL, prompt: "Hello there", max_tokens: 2, stream: true });
    // One request a connection: uWebSockets.js 20.30 does not answer pipelined ones.
    const answers = await Promise.all([get("/health"), post("/v1/completions", completion), post("/v1/completions", streamed)].map((payload) => raw(port, payload, { responses: 1 })));
    expect(answers.map((r) => [r.responses[0]?.status, r.responses[0]?.headers["keep-alive"]])).toEqual([[200, "timeout=8"], [200, "timeout=8"], [200, "timeout=8"]]);
    expect(answers[2]!.responses[0]!.headers["content-type"]).toBe("text/event-stream");
    // An answer that closes the connection offers no keep-alive.
    const dup = await raw(port, `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}`);
    expect(dup.closed).toBe(true);
    expect(dup.responses[0]!.headers["keep-alive"]).toBeUndefined();

    // Told to keep idle connections 30 s, undici keeps one 6 s (the hint less its 2 s margin), well inside
    // the 10 s after which uWebSockets.js closes it: no request can race that close.
    const agent = new Agent({ keepAliveTimeout: 30_000 });
    try {
      const res = await request(`${router.url}/health`, { dispatcher: agent });
      await res.body.text();
      expect(Object.values(agent.stats).map((s) => Number(s.connected))).toEqual([1]);
      await sleep(7_000);
      expect(Object.values(agent.stats).reduce((n, s) => n + Number(s.connected), 0)).toBe(0);
    } finally {
      await agent.close();
    }
  }, 20_000);
});

const nginxMissing = proxyMissing("nginx", "nginx-light");
if (nginxMissing) console.warn(`skipping the tests of kvroute behind nginx: ${nginxMissing}`);

describe.skipIf(nginxMissing !== null)("kvroute serve behind nginx (the documented setting for HTTP/1.0, pipelining, chunk extensions)", () => {
  let nginx: RunningProxy;

  beforeAll(async () => {
    nginx = await startNginx(port);
  });

  afterAll(async () => {
    await nginx?.stop();
  });

  it("answers an HTTP/1.0 health check (HAProxy's httpchk, curl --http1.0)", async () => {
    const r = await raw(nginx.port, "GET /health HTTP/1.0\r\n\r\n");
    expect(r.closed).toBe(true);
    expect(r.responses.map((x) => x.status)).toEqual([200]);
    expect(JSON.parse(r.responses[0]!.body)).toMatchObject({ status: "ok" });
  });

  it("answers a POST and a request pipelined behind it, in order", async () => {
    const r = await raw(nginx.port, post("/v1/completions", completion) + get("/v1/models"), { responses: 2 });
    expect(r.responses.map((x) => x.status)).toEqual([200, 200]);
    expect(JSON.parse(r.responses[0]!.body)).toMatchObject({ object: "text_completion", usage: { completion_tokens: 2 } });
    expect(JSON.parse(r.responses[1]!.body)).toMatchObject({ object: "list", data: [{ id: MODEL }] });
  });

  it("takes a chunked body with a chunk extension", async () => {
    const chunked = `5;ext=1\r\n${completion.slice(0, 5)}\r\n${(completion.length - 5).toString(16)}\r\n${completion.slice(5)}\r\n0\r\n\r\n`;
    const r = await raw(nginx.port, `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunked}`, { responses: 1 });
    expect(r.responses.map((x) => x.status)).toEqual([200]);
    expect(JSON.parse(r.responses[0]!.body)).toMatchObject({ object: "text_completion" });
  });
});

const haproxyMissing = proxyMissing("haproxy", "haproxy");
if (haproxyMissing) console.warn(`skipping the test of HAProxy's health check on kvroute: ${haproxyMissing}`);

describe.skipIf(haproxyMissing !== null)("HAProxy's health check on kvroute serve", () => {
  it("fails with option httpchk's HTTP/1.0 request, and passes with the documented HTTP/1.1 check", async () => {
    const haproxy = await startHaproxy(port);
    try {
      // Checks every 200 ms, a timeout of 1 s: both have settled after a few seconds.
      let checks = await haproxy.checks();
      for (let i = 0; i < 100 && !(checks.documented?.check === "L7OK" && checks.default?.status === "DOWN"); i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        checks = await haproxy.checks();
      }
      expect(checks.documented).toEqual({ status: "UP", check: "L7OK" });
      expect(checks.default!.status).toBe("DOWN");
      expect(checks.default!.check).toBe("L7TOUT");
      const res = await fetch(`http://127.0.0.1:${haproxy.port}/v1/models`);
      expect(res.status).toBe(200);
    } finally {
      await haproxy.stop();
    }
  }, 30_000);
});
