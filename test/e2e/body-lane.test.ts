// Big bodies through a real `kvroute serve`: one over --body-lane-bytes is parsed and tokenized in the
// body lane's thread, and its client gets exactly the answer the same request gets on the main thread.
// The same JSON is sent twice, once as it is and once padded with whitespace past the threshold (JSON
// allows it), so the two paths see the same request.
import { spawn } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { distFile } from "../../src/util/package-root.js";
import { MODEL, jsonBody, metric, post, startRouter, type RouterProcess } from "../../bench/lib/router-load.js";

const LANE_BYTES = 4096;
let router: RouterProcess;

beforeAll(async () => {
  router = await startRouter(["--sim", "2", "--sim-speedup", "0", "--workers", "1", "--log-level", "warn", "--body-lane-bytes", String(LANE_BYTES), "--sim-max-model-len", "512"]);
}, 60_000);
afterAll(async () => {
  await router?.stop();
});

const padded = (body: Buffer) => Buffer.concat([body, Buffer.alloc(LANE_BYTES + 1 - body.length, " ")]);

async function tokenizedOnMain(): Promise<number> {
  return metric(await (await fetch(`${router.url}/metrics`)).text(), "kvroute_router_overhead_seconds_count", { stage: "tokenize" });
}

/** The answer's parts that do not change from one request to the next. */
function stable(body: unknown): unknown {
  const b = body as { error?: unknown; usage?: { prompt_tokens: number }; choices?: { finish_reason: string }[] };
  return b.error !== undefined ? { error: b.error } : { prompt_tokens: b.usage?.prompt_tokens, finish: b.choices?.map((c) => c.finish_reason) };
}

const CASES: [string, string, unknown][] = [
  ["a text prompt", "/v1/completions", { model: MODEL, prompt: "The router hashes blocks of sixteen tokens. ".repeat(20), max_tokens: 2 }],
  ["a batch of text and token ids", "/v1/completions", { model: MODEL, prompt: ["first prompt", [11, 12, 13, 14], "third prompt"], max_tokens: 1 }],
  ["a chat", "/v1/chat/completions", { model: MODEL, messages: [{ role: "system", content: "Be brief. ".repeat(50) }, { role: "user", content: "Hi" }], max_tokens: 3 }],
  ["a prompt too long for the context", "/v1/completions", { model: MODEL, prompt: "word ".repeat(700), max_tokens: 1 }],
  ["a refused field", "/v1/chat/completions", { model: MODEL, messages: [{ role: "user", content: "x" }], tools: "x" }],
  ["a model not served", "/v1/completions", { model: "other-model", prompt: "x" }],
  ["an out-of-vocabulary token id", "/v1/completions", { model: MODEL, prompt: [1, 2, 4_000_000_000] }],
];

for (const [what, path, value] of CASES) {
  it(`${what}: the same answer on either path`, async () => {
    const body = jsonBody(value);
    expect(body.length).toBeLessThanOrEqual(LANE_BYTES);
    const main = (await post(router.url, path, body))!;
    const lane = (await post(router.url, path, padded(body)))!;
    expect(lane.status).toBe(main.status);
    expect(stable(lane.body)).toEqual(stable(main.body));
  });
}

it("tokenizes a big body's text prompt in the lane, not on the main thread's path", async () => {
  const body = jsonBody({ model: MODEL, prompt: "counted where? ".repeat(10), max_tokens: 1 });
  const before = await tokenizedOnMain();
  expect((await post(router.url, "/v1/completions", padded(body)))!.status).toBe(200);
  expect(await tokenizedOnMain()).toBe(before);
  expect((await post(router.url, "/v1/completions", body))!.status).toBe(200);
  expect(await tokenizedOnMain()).toBe(before + 1);
});

it("answers a big body that is not JSON with the usual 400", async () => {
  const answer = (await post(router.url, "/v1/completions", padded(Buffer.from('{"model": "x", "prompt": '))))!;
  expect(answer.status).toBe(400);
  expect(answer.body).toMatchObject({ error: { param: "body", code: "invalid_json" } });
});

it("with a tokenizer that cannot load, the router exits at once naming it (the pool's and the lane's threads both fail)", async () => {
  const started = performance.now();
  const child = spawn(process.execPath, [distFile("src/cli/main.js"), "serve", "--port", "0", "--sim", "1", "--tokenizer", "/nonexistent-model-folder"], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  expect(code).toBe(1);
  expect(output).toContain("cannot read /nonexistent-model-folder/tokenizer.json");
  // Nothing left running (the lane's thread included) keeps it alive.
  expect(performance.now() - started).toBeLessThan(20_000);
}, 30_000);
