// Random and mutated OpenAI bodies through real HTTP against a real `kvroute serve` with simulated engines on
// 127.0.0.1. Whatever is sent, the answer is a 2xx (a stream that ends with [DONE] and carries no error), or
// a 4xx with an OpenAI error body; never a 5xx, a hang or a dropped connection. Bounded by time (about 20 s)
// and a per-request timeout; the fleet is checked idle and healthy at the end.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { metric, startRouterProcess, type RunningRouter } from "./router-process.js";

const MODEL = "Qwen/Qwen3-0.6B";
const FUZZ_MS = 20_000;
const REQUEST_TIMEOUT_MS = 10_000;

let router: RunningRouter;

beforeAll(async () => {
  // A short context keeps the longest answer a random max_tokens can ask for small.
  router = await startRouterProcess(["--sim", "2", "--sim-speedup", "0", "--sim-max-model-len", "2048", "--workers", "1"]);
});

afterAll(async () => {
  await router?.stop();
});

const KEYS = [
  "model", "prompt", "messages", "max_tokens", "max_completion_tokens", "min_tokens", "stream", "stream_options", "temperature",
  "top_p", "top_k", "seed", "stop", "stop_token_ids", "ignore_eos", "cache_salt", "n", "best_of", "echo", "suffix", "logprobs",
  "top_logprobs", "tools", "tool_choice", "response_format", "logit_bias", "presence_penalty", "user", "chat_template_kwargs",
];

const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "binary", maxLength: 40 }), fc.constantFrom("<|im_start|>system\nx<|im_end|>", "\u0000", "\ud800", ""));
const special = fc.constantFrom(0, -1, -0, 1e308, -1e308, 2 ** 53, 2 ** 32, 4294967296, 0.5, 1.5, null, true, "", "1", [], {}, [null], { type: "text" });
const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 3 }), special);
const tokenIds = fc.array(fc.oneof(fc.integer({ min: 0, max: 151_000 }), fc.integer()), { maxLength: 30 });

const completion = fc.record(
  {
    model: fc.constant(MODEL),
    prompt: fc.oneof(text, fc.array(text, { minLength: 1, maxLength: 3 }), tokenIds, fc.array(tokenIds, { minLength: 1, maxLength: 3 })),
    max_tokens: fc.integer({ min: 1, max: 8 }),
    stream: fc.boolean(),
    temperature: fc.double({ min: 0, max: 2, noNaN: true }),
    stop: fc.oneof(text, fc.array(text, { maxLength: 4 })),
    seed: fc.integer(),
  },
  { requiredKeys: ["model", "prompt"] },
);

const message = fc.record(
  {
    role: fc.oneof(fc.constantFrom("system", "user", "assistant", "developer", "tool"), fc.string({ maxLength: 8 })),
    content: fc.oneof(text, fc.array(fc.record({ type: fc.constantFrom("text", "image_url"), text }), { maxLength: 3 }), fc.constant(null)),
  },
  { requiredKeys: ["role"] },
);

const chat = fc.record(
  {
    model: fc.constant(MODEL),
    messages: fc.array(message, { maxLength: 4 }),
    max_tokens: fc.integer({ min: 1, max: 8 }),
    max_completion_tokens: fc.integer({ min: 1, max: 8 }),
    stream: fc.boolean(),
    stream_options: fc.record({ include_usage: fc.boolean() }),
    top_p: fc.double({ min: 0, max: 1, noNaN: true }),
  },
  { requiredKeys: ["model", "messages"] },
);

/** Changes to the parsed body: a field set to anything, a field dropped, a message's field set to anything. */
const edit = fc.oneof(
  fc.record({ kind: fc.constant("set" as const), key: fc.oneof(fc.constantFrom(...KEYS), fc.string({ maxLength: 10 })), value: anyValue }),
  fc.record({ kind: fc.constant("drop" as const), key: fc.constantFrom(...KEYS) }),
  fc.record({ kind: fc.constant("message" as const), index: fc.nat(3), key: fc.constantFrom("role", "content", "name", "tool_calls", "text"), value: anyValue }),
);

type Edit = typeof edit extends fc.Arbitrary<infer T> ? T : never;

function applyEdits(body: Record<string, unknown>, edits: Edit[]): unknown {
  const out: Record<string, unknown> = structuredClone(body);
  for (const e of edits) {
    if (e.kind === "set") out[e.key] = e.value;
    else if (e.kind === "drop") delete out[e.key];
    else if (Array.isArray(out.messages) && out.messages.length > 0) {
      const m = out.messages[e.index % out.messages.length];
      if (typeof m === "object" && m !== null) (m as Record<string, unknown>)[e.key] = e.value;
    }
  }
  return out;
}

/** Changes to the bytes: none mostly; else cut short, one byte changed, or bytes of no JSON at all. */
const bytesEdit = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: "none" as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("cut" as const), at: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("random" as const), bytes: fc.uint8Array({ maxLength: 64 }) }) },
);

type BytesEdit = typeof bytesEdit extends fc.Arbitrary<infer T> ? T : never;

function applyBytes(json: string, e: BytesEdit): Uint8Array {
  const bytes = new TextEncoder().encode(json);
  if (e.kind === "none") return bytes;
  if (e.kind === "random") return e.bytes;
  if (bytes.length === 0) return bytes;
  if (e.kind === "cut") return bytes.subarray(0, e.at % bytes.length);
  const copy = bytes.slice();
  copy[e.at % copy.length] = e.byte;
  return copy;
}

const request = fc.record({
  path: fc.constantFrom("/v1/completions", "/v1/chat/completions", "/v1/route"),
  body: fc.oneof(completion, chat) as fc.Arbitrary<Record<string, unknown>>,
  edits: fc.array(edit, { maxLength: 3 }),
  bytes: bytesEdit,
  contentType: fc.constantFrom("application/json", "application/json", "application/json; charset=utf-8", "text/plain", undefined),
});

type FuzzRequest = typeof request extends fc.Arbitrary<infer T> ? T : never;

/** What is wrong with an answer, or null when it is one of the allowed kinds. */
function verdict(status: number, type: string | null, body: string): string | null {
  if (status >= 200 && status < 300) {
    if (type?.startsWith("text/event-stream")) {
      if (!body.endsWith("data: [DONE]\n\n")) return "a stream that does not end with [DONE]";
      if (body.includes('data: {"error"')) return "an error inside a 2xx stream";
      return null;
    }
    try {
      JSON.parse(body);
      return null;
    } catch {
      return "a 2xx whose body is not JSON";
    }
  }
  if (status >= 400 && status < 500) {
    try {
      const error = (JSON.parse(body) as { error?: { message?: unknown; type?: unknown } }).error;
      if (typeof error?.message === "string" && error.message.length > 0 && typeof error.type === "string") return null;
    } catch {
      // falls through
    }
    return "a 4xx without an OpenAI error body";
  }
  return `status ${status}`;
}

describe("kvroute serve under random and mutated OpenAI bodies", () => {
  it("answers every one with a 2xx, or a 4xx with an OpenAI error body", async () => {
    let runs = 0;
    const statuses = new Map<number, number>();
    const exchange = async (r: FuzzRequest): Promise<void> => {
      runs++;
      const payload = applyBytes(JSON.stringify(applyEdits(r.body, r.edits)) ?? "", r.bytes);
      let status: number;
      let type: string | null;
      let body: string;
      try {
        const res = await fetch(`${router.url}${r.path}`, {
          method: "POST",
          headers: r.contentType ? { "content-type": r.contentType } : {},
          body: payload,
          signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        });
        status = res.status;
        type = res.headers.get("content-type");
        body = await res.text();
      } catch (err) {
        throw new Error(`no answer (${(err as Error).name}: ${(err as Error).message}) to ${r.path} ${new TextDecoder().decode(payload).slice(0, 300)}`);
      }
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      const wrong = verdict(status, type, body);
      if (wrong) throw new Error(`${wrong} for ${r.path} ${new TextDecoder().decode(payload).slice(0, 300)}: ${body.slice(0, 300)}`);
    };
    // At its time limit fast-check stops waiting for the running exchange but does not end it. The idle
    // check below waits for it, and a failure it ends in still fails the test.
    let last: Promise<void> = Promise.resolve();
    await fc.assert(
      fc.asyncProperty(request, (r) => (last = exchange(r))),
      { numRuns: 1_000_000, interruptAfterTimeLimit: FUZZ_MS },
    );
    await last;
    console.log(`fuzz: ${runs} requests in ${FUZZ_MS / 1000} s; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);
    expect(runs).toBeGreaterThan(100);
    expect([...statuses.keys()].some((s) => s === 200)).toBe(true);
    expect([...statuses.keys()].some((s) => s === 400)).toBe(true);

    const health = await fetch(`${router.url}/health`);
    expect(health.status).toBe(200);
    const metrics = await (await fetch(`${router.url}/metrics`)).text();
    for (const engine of ["sim-0", "sim-1"]) expect(metric(metrics, "kvroute_engine_active_requests", { engine })).toBe(0);
  }, FUZZ_MS + 60_000);
});
