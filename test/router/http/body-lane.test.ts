// The body lane: a real worker thread that parses big bodies and tokenizes their prompts. What it gives
// back must be what the main thread's path (parseRequest, then the preparation pool) would have made of
// the same body: the same request, the same token ids, the same errors.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BodyLane } from "../../../src/router/http/body-lane.js";
import { Frontend } from "../../../src/router/http/server.js";
import { fakeBackend } from "./fake-backend.js";
import { ApiError } from "../../../src/router/http/errors.js";
import { parseRequest, type ApiRequest } from "../../../src/router/http/request.js";
import { loadTokenizer, type TextTokenizer } from "../../../src/router/prepare/tokenize/index.js";

const MODEL = "served-model";
const SERVED = { model: MODEL, maxModelLen: 1 << 20 };
let served: { model: string | null; maxModelLen: number | null } = SERVED;
let lane: BodyLane;
let tokenizer: TextTokenizer;

beforeAll(async () => {
  lane = await BodyLane.start({ tokenizerDir: null, specialTokensInContent: "parse", served: () => served });
  tokenizer = await loadTokenizer(undefined, { cacheBytes: 0 });
}, 60_000);
afterAll(async () => {
  await lane.close();
});
afterEach(() => {
  served = SERVED;
});

const body = (value: unknown) => Buffer.from(JSON.stringify(value));
const live = () => new AbortController().signal;

async function parsed(value: unknown, endpoint: "chat" | "completions"): Promise<ApiRequest> {
  const result = await lane.parse(body(value), endpoint, live());
  if (result.kind !== "request") throw new Error(`expected a request, got ${result.kind}`);
  return result.request;
}

async function refusal(bytes: Buffer, endpoint: "chat" | "completions", signal = live()): Promise<ApiError> {
  const err = await lane.parse(bytes, endpoint, signal).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

/** Text of about `chars` characters, mixing words, numbers, CJK and emoji. */
function text(chars: number, tag: string): string {
  const parts: string[] = [];
  for (let i = 0, n = 0; n < chars; i++) {
    const word = i % 11 === 0 ? `缓存${i}` : i % 13 === 0 ? "🚀" : `${tag}${(i * 7919) % 10007}`;
    parts.push(word);
    n += word.length + 1;
  }
  return parts.join(" ");
}

describe("a body it parses", () => {
  it("is the request parseRequest makes, with text prompts turned into the tokenizer's ids", async () => {
    const value = { model: MODEL, prompt: [text(3000, "a"), text(200, "b"), [1, 2, 3]], max_tokens: 7, temperature: 0.5, stop: ["\n"] };
    const request = await parsed(value, "completions");
    const want = parseRequest("completions", value);
    expect({ ...request, prompts: [] }).toEqual({ ...want, prompts: [] });
    expect(request.prompts).toEqual([
      { kind: "tokens", tokens: tokenizer.encode(value.prompt[0] as string) },
      { kind: "tokens", tokens: tokenizer.encode(value.prompt[1] as string) },
      { kind: "tokens", tokens: Uint32Array.from([1, 2, 3]) },
    ]);
  });

  it("turns a chat into the ids of its rendered template", async () => {
    const messages = [
      { role: "system", content: text(5000, "s") },
      { role: "user", content: "and <|im_start|> inside" },
    ];
    const request = await parsed({ model: MODEL, messages, chat_template_kwargs: { enable_thinking: false } }, "chat");
    expect(request.endpoint).toBe("chat");
    expect(request.prompts).toEqual([{ kind: "tokens", tokens: tokenizer.encodeChat(messages, { enable_thinking: false }) }]);
  });

  it("reads a body that is a view into a bigger buffer", async () => {
    const inner = body({ model: MODEL, prompt: "hello there" });
    const outer = Buffer.concat([Buffer.from("xxxx"), inner, Buffer.from("yyyy")]);
    const request = (await lane.parse(outer.subarray(4, 4 + inner.length), "completions", live())) as { request: ApiRequest };
    expect(request.request.prompts).toEqual([{ kind: "tokens", tokens: tokenizer.encode("hello there") }]);
  });
});

describe("a body it refuses gets the main thread's error", () => {
  it("invalid JSON", async () => {
    const err = await refusal(Buffer.from('{"model": "served-model", "prompt": "x"'), "completions");
    expect(err.status).toBe(400);
    expect(err.toBody().error).toMatchObject({ param: "body", code: "invalid_json" });
    expect(err.message).toMatch(/^the request body is not valid JSON: /);
  });

  it("a bad field, by name", async () => {
    const value = { model: MODEL, prompt: "x", tools: "x" };
    const err = await refusal(body(value), "completions");
    let want: unknown;
    try {
      parseRequest("completions", value);
    } catch (e) {
      want = (e as ApiError).toBody();
    }
    expect(err.toBody()).toEqual(want);
    expect(err.status).toBe(400);
  });

  it("a prompt longer than the context, found without tokenizing all of it", async () => {
    served = { model: MODEL, maxModelLen: 1000 };
    const err = await refusal(body({ model: MODEL, prompt: text(2_000_000, "c") }), "completions");
    expect(err.status).toBe(400);
    expect(err.toBody().error).toMatchObject({ param: "prompt", code: "context_length_exceeded" });
    expect(err.message).toContain("the prompt has at least 1000 tokens (tokenizing stopped there)");
  });
});

it("leaves a model it does not serve to the caller, without tokenizing", async () => {
  expect(await lane.parse(body({ model: "other", prompt: text(500_000, "d") }), "completions", live())).toEqual({ kind: "unserved", model: "other" });
  served = { model: null, maxModelLen: null };
  expect(await lane.parse(body({ model: MODEL, prompt: "x" }), "completions", live())).toEqual({ kind: "unserved", model: MODEL });
});

it("stops tokenizing at its next slice once the client has left", async () => {
  served = { model: MODEL, maxModelLen: 1 << 24 };
  const big = body({ model: MODEL, prompt: text(3_000_000, "e") });
  // The full tokenization, for comparison.
  const t0 = performance.now();
  await parsed(JSON.parse(big.toString()) as unknown, "completions");
  const fullMs = performance.now() - t0;
  const left = new AbortController();
  const pending = refusal(big, "completions", left.signal);
  // Once the thread has the body and is tokenizing it.
  while (lane.tasks === 0) await new Promise((resolve) => setTimeout(resolve, 1));
  const leftAt = performance.now();
  setTimeout(() => left.abort(), 100);
  const err = await pending;
  const stoppedMs = performance.now() - leftAt;
  expect(err.status).toBe(499);
  expect(lane.tasks).toBe(0);
  expect(stoppedMs).toBeLessThan(fullMs);
}, 60_000);

it("does not even parse a body whose client left while it waited for the thread", async () => {
  served = { model: MODEL, maxModelLen: 1 << 24 };
  // The thread takes four bodies at a time: four long ones keep it busy while a fifth waits.
  const busy = Array.from({ length: 4 }, (_, i) => lane.parse(body({ model: MODEL, prompt: text(500_000, `f${i}`) }), "completions", live()));
  const left = new AbortController();
  // Not JSON: had it been parsed, its answer would be a 400.
  const waiting = refusal(Buffer.from('{"model": "served-model", "prompt": '), "completions", left.signal);
  left.abort();
  expect((await waiting).status).toBe(499);
  await Promise.all(busy);
  const gone = new AbortController();
  gone.abort();
  expect((await refusal(body({ model: MODEL, prompt: "x" }), "completions", gone.signal)).status).toBe(499);
}, 60_000);

describe("behind the frontend", () => {
  const backend = fakeBackend();
  let frontend: Frontend;
  let url: string;
  beforeAll(async () => {
    // Every body through the lane; the fake backend serves any model name.
    const everyBody = await BodyLane.start({ tokenizerDir: null, specialTokensInContent: "parse", minBytes: 0, served: () => served });
    frontend = new Frontend(backend, { host: "127.0.0.1", port: 0, maxBodyBytes: 1 << 20, bodyLane: everyBody });
    url = `http://127.0.0.1:${await frontend.listen()}`;
    return async () => {
      frontend.close();
      await everyBody.close();
    };
  }, 60_000);

  const send = (value: unknown) => fetch(`${url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(value) });

  it("hands the backend the lane's token ids", async () => {
    const answer = await send({ model: MODEL, prompt: "from the lane", max_tokens: 1 });
    expect(answer.status).toBe(200);
    expect(backend.prompts.at(-1)).toEqual({ kind: "tokens", tokens: tokenizer.encode("from the lane") });
  });

  it("answers 503 when the model became served only after the body was read (its prompts were not tokenized for it)", async () => {
    served = { model: null, maxModelLen: null };
    const answer = await send({ model: MODEL, prompt: "too early", max_tokens: 1 });
    expect(answer.status).toBe(503);
    expect(await answer.json()).toMatchObject({ error: { type: "service_unavailable_error", param: "model", code: "model_not_ready" } });
  });
});
