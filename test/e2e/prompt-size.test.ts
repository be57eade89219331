// Prompts of 15.6 MB against a real `kvroute serve` over real HTTP: refused at the context length without
// being tokenized whole, never holding up small chats for long (they go through the body lane, off the
// main thread), dropped when their clients leave, and leaving the router's resident memory where it was.
//
// Two routers, each with one pool thread (as on a 2-core machine): "short" with the simulated engines'
// default context (32,768 tokens), where a huge prompt is refused once tokenizing passes it; and "long"
// with a context of 16 Mi tokens, where a 15.6 MB prompt (about 3.4 million tokens) is tokenized in full
// and refused afterwards for its max_tokens, which is the most work one request can ask of a pool thread.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MODEL, hugeText, jsonBody, metric, percentile, post, probeWhile, rssMb, rssUnavailable, startRouter, type Answer, type RouterProcess } from "../../bench/lib/router-load.js";

const HUGE_CHARS = 15_600_000;
const LONG_CONTEXT = 1 << 24;

/**
 * The worst small chat allowed while a huge prompt is in flight. A body that big is parsed and tokenized in
 * the body lane's thread, and the main thread only copies its bytes in as they arrive: on a quiet 2-core
 * machine the worst small chat waits about 50 ms (`npm run bench:big-prompt` measures it beside the
 * main-thread path). What is left is sharing two cores with that thread, so on a busy build machine the
 * wait grows with the load; the bound leaves room for that, and is still far below what a small chat waited
 * when huge prompts were tokenized whole (6.4 s).
 */
const SMALL_CHAT_BOUND_MS = 2500;
/**
 * Resident memory counts as back at its baseline within this many MB. What stays is the pool thread's
 * tokenization cache filling (up to 32 MiB) and V8's heaps, grown to hold a 3.4-million-token prompt,
 * shrinking only as the collector gets to them: on this project's build machine the long-context router
 * ended 30 to 100 MB above its baseline. What the bound is for is what the router did before: 1.0-1.3 GB
 * after three such prompts, against about 220 MB before them. The routers run with glibc's mmap threshold
 * fixed, as docs/operations.md recommends (startRouter's default).
 */
const RSS_SLACK_MB = 160;

let short: RouterProcess;
let long: RouterProcess;
const baseline = new Map<RouterProcess, number>();

async function warm(router: RouterProcess): Promise<void> {
  for (let i = 0; i < 20; i++) expect((await post(router.url, "/v1/chat/completions", jsonBody({ model: MODEL, messages: [{ role: "user", content: `warm up ${i}` }], max_tokens: 1 })))!.status).toBe(200);
}

beforeAll(async () => {
  const common = ["--sim", "1", "--sim-speedup", "0", "--workers", "1", "--log-level", "warn"];
  [short, long] = await Promise.all([startRouter(common), startRouter([...common, "--sim-max-model-len", String(LONG_CONTEXT), "--sim-blocks", String(LONG_CONTEXT / 16)])]);
  await Promise.all([warm(short), warm(long)]);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  for (const r of [short, long]) {
    const rss = rssMb(r.child.pid!);
    if (rss !== null) baseline.set(r, rss);
  }
}, 120_000);

afterAll(async () => {
  await Promise.all([short?.stop(), long?.stop()]);
});

function summary(huge: Answer, small: Answer[]): string {
  const ms = small.map((a) => a.ms);
  return `huge prompt answered in ${huge.ms.toFixed(0)} ms; ${small.length} small chats meanwhile: p50 ${percentile(ms, 50).toFixed(0)} ms, max ${Math.max(...ms).toFixed(0)} ms`;
}

/** The preparation pool's tasks, and the bodies in the body lane. */
async function prepareTasks(router: RouterProcess): Promise<{ running: number; waiting: number; big: number; lane: number }> {
  const text = await (await fetch(`${router.url}/metrics`)).text();
  return {
    running: metric(text, "kvroute_prepare_tasks", { state: "running" }),
    big: metric(text, "kvroute_prepare_tasks", { state: "big" }),
    waiting: metric(text, "kvroute_prepare_tasks", { state: "waiting" }),
    lane: metric(text, "kvroute_body_lane_tasks"),
  };
}

describe("a 15.6 MB prompt", () => {
  let fullTokenizationMs = 0;

  it("is refused with the context-length error once tokenizing passes the context, while small chats go on", async () => {
    const body = jsonBody({ model: MODEL, prompt: hugeText(HUGE_CHARS, 1), max_tokens: 1 });
    const huge = post(short.url, "/v1/completions", body);
    const small = await probeWhile(short.url, huge, 25);
    const answer = (await huge)!;
    console.log(`short context: ${summary(answer, small)}`);
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: { type: "invalid_request_error", param: "prompt", code: "context_length_exceeded" } });
    expect((answer.body as { error: { message: string } }).error.message).toContain("the prompt has at least 32768 tokens (tokenizing stopped there)");
    expect(small.every((a) => a.status === 200)).toBe(true);
    expect(Math.max(...small.map((a) => a.ms))).toBeLessThan(SMALL_CHAT_BOUND_MS);
  }, 60_000);

  it("tokenized in full, lets small chats through between its slices", async () => {
    const body = jsonBody({ model: MODEL, prompt: hugeText(HUGE_CHARS, 2), max_tokens: LONG_CONTEXT });
    const huge = post(long.url, "/v1/completions", body);
    const small = await probeWhile(long.url, huge, 25);
    const answer = (await huge)!;
    fullTokenizationMs = answer.ms;
    console.log(`long context: ${summary(answer, small)}`);
    expect(answer.status).toBe(400);
    expect((answer.body as { error: { code: string; message: string } }).error).toMatchObject({ code: "context_length_exceeded", message: expect.stringMatching(/you requested \d+ tokens \(\d{7} in the prompt/) });
    const during = small.filter((a) => a.status === 200);
    expect(during.length).toBe(small.length);
    // Answered while the big one was still being tokenized, each far quicker than it.
    expect(during.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...during.map((a) => a.ms))).toBeLessThan(Math.min(SMALL_CHAT_BOUND_MS, answer.ms));
  }, 60_000);

  it("is dropped when its client leaves: three of them stop at once, and the next small chat is quick", async () => {
    const bodies = [3, 4, 5].map((seed) => jsonBody({ model: MODEL, prompt: hugeText(HUGE_CHARS, seed), max_tokens: LONG_CONTEXT }));
    const leave = new AbortController();
    const huge = bodies.map((b) => post(long.url, "/v1/completions", b, leave.signal));
    // Wait until the body lane has them (it parses and tokenizes bodies this big), then all three clients go.
    for (let i = 0; i < 600 && (await prepareTasks(long)).lane < 3; i++) await new Promise((resolve) => setTimeout(resolve, 25));
    expect((await prepareTasks(long)).lane).toBe(3);
    const leftAt = performance.now();
    leave.abort();
    expect(await Promise.all(huge)).toEqual([null, null, null]);
    let tasks = await prepareTasks(long);
    while ((tasks.running > 0 || tasks.waiting > 0 || tasks.lane > 0) && performance.now() - leftAt < 30_000) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      tasks = await prepareTasks(long);
    }
    const stoppedMs = performance.now() - leftAt;
    console.log(`clients left: the pool and the body lane were idle ${stoppedMs.toFixed(0)} ms later (one such prompt takes ${fullTokenizationMs.toFixed(0)} ms to tokenize in full)`);
    expect(tasks).toEqual({ running: 0, big: 0, waiting: 0, lane: 0 });
    // Their work would have taken three times one full tokenization.
    expect(stoppedMs).toBeLessThan(fullTokenizationMs);
    const next = (await post(long.url, "/v1/chat/completions", jsonBody({ model: MODEL, messages: [{ role: "user", content: "and now?" }], max_tokens: 1 })))!;
    expect(next.status).toBe(200);
    expect(next.ms).toBeLessThan(SMALL_CHAT_BOUND_MS);
  }, 90_000);
});

const noRss = rssUnavailable();
if (noRss) console.warn(`skipping the resident-memory check: ${noRss}`);

describe.skipIf(noRss !== null)("resident memory", () => {
  it("comes back near its baseline after the huge prompts", async () => {
    // V8 gives memory back when it collects garbage, which an idle process does within seconds.
    const settle = async (r: RouterProcess): Promise<number> => {
      const limit = baseline.get(r)! + RSS_SLACK_MB;
      let rss = rssMb(r.child.pid!)!;
      for (let i = 0; i < 120 && rss > limit; i++) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        rss = rssMb(r.child.pid!)!;
      }
      return rss;
    };
    const [shortRss, longRss] = await Promise.all([settle(short), settle(long)]);
    console.log(`resident memory: short context ${baseline.get(short)!.toFixed(0)} MB before, ${shortRss.toFixed(0)} MB after; long context ${baseline.get(long)!.toFixed(0)} MB before, ${longRss.toFixed(0)} MB after`);
    expect(shortRss).toBeLessThanOrEqual(baseline.get(short)! + RSS_SLACK_MB);
    expect(longRss).toBeLessThanOrEqual(baseline.get(long)! + RSS_SLACK_MB);
  }, 60_000);
});
