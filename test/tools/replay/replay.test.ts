import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  createPromptSynthesizer,
  openTrace,
  readAll,
  ReplayStats,
  runReplay,
  TraceError,
  type ReplayOptions,
  type RequestResult,
  type TraceRecord,
} from "../../../src/index.js";
import { packageRoot } from "../../../src/util/package-root.js";
import { startFakeOpenAI, type FakeServer, type FakeOptions } from "./fake-openai.js";

const fixture = (name: string) => join(packageRoot(), "test", "fixtures", "traces", name);
const synthesize = createPromptSynthesizer({ blockSize: 512 });

let servers: FakeServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

async function fake(options: FakeOptions = {}): Promise<FakeServer> {
  const server = await startFakeOpenAI(options);
  servers.push(server);
  return server;
}

async function* records(list: TraceRecord[]): AsyncGenerator<TraceRecord> {
  yield* list;
}

const at = (timestampMs: number, line: number, outputLength = 3): TraceRecord => ({ line, timestampMs, inputLength: 20, outputLength });

async function replay(options: Partial<ReplayOptions> & Pick<ReplayOptions, "base" | "trace">) {
  const results: RequestResult[] = [];
  const gaps = new Map<number, number[]>();
  const stats = new ReplayStats({ ttftMs: 10_000 });
  const run = await runReplay({
    model: "fake-model",
    synthesize,
    speedup: 1e6,
    ...options,
    onResult: (r, g) => {
      results.push(r);
      gaps.set(r.index, [...g]);
      stats.add(r, g);
    },
  });
  results.sort((a, b) => a.index - b.index);
  return { run, results, gaps, stats };
}

describe("replay against an OpenAI-compatible server", () => {
  it("streams each record as a token-id completion and measures it", async () => {
    const server = await fake({ behaviour: () => ({ tokenDelayMs: 2 }) });
    const trace = await openTrace(fixture("mooncake-good.jsonl"));
    const { run, results, gaps } = await replay({ base: server.base, trace });
    expect(run).toMatchObject({ sent: 5, stopped: "trace-end" });
    const recordsByLine = new Map((await readAll(trace)).map((r) => [r.line, r]));
    expect(server.received).toHaveLength(5);
    for (const got of server.received) {
      expect(got.body).toMatchObject({ model: "fake-model", stream: true, stream_options: { include_usage: true }, ignore_eos: true });
    }
    for (const r of results) {
      const record = recordsByLine.get(r.line)!;
      const body = server.received.find((x) => x.body.prompt.length === record.inputLength && x.body.max_tokens === Math.max(1, record.outputLength))!.body;
      expect(Uint32Array.from(body.prompt)).toEqual(synthesize(record));
      expect(r.ok).toBe(true);
      expect(r.error).toBeNull();
      expect(r.status).toBe(200);
      expect(r.maxTokens).toBe(Math.max(1, record.outputLength));
      expect(r.outputTokens).toBe(r.maxTokens);
      expect(r.promptTokens).toBe(record.inputLength);
      expect(gaps.get(r.index)).toHaveLength(r.maxTokens - 1);
      expect(r.ttftMs).not.toBeNull();
      expect(r.ttftMs!).toBeLessThanOrEqual(r.e2eMs!);
      expect(r.itlMeanMs === null).toBe(r.maxTokens === 1);
      expect(r.cachedTokensSource).toBe("engine");
      expect(r.engine).toMatch(/^engine-[01]$/);
      expect(r.cachedTokens).not.toBeNull();
    }
  });

  it("spreads requests across several targets in turn (router replicas)", async () => {
    const [a, b, c] = await Promise.all([fake(), fake(), fake()]);
    const { run, results } = await replay({ base: [a.base, b.base, c.base], trace: records(Array.from({ length: 7 }, (_, i) => at(0, i + 1))) });
    expect(run.sent).toBe(7);
    expect(results.every((r) => r.ok)).toBe(true);
    expect([a, b, c].map((s) => s.received.length)).toEqual([3, 2, 2]);
    // Request i went to target i mod 3: its prompt is record i's.
    for (const [t, server] of [a, b, c].entries()) {
      const lines = server.received.map((x) => x.body.prompt).map((p) => results.findIndex((r) => Uint32Array.from(p).join() === synthesize(at(0, r.line)).join()));
      expect(lines.every((i) => i % 3 === t)).toBe(true);
    }
  });

  it("works with a plain server: no kvroute headers, no cached_tokens, and without ignore_eos when asked", async () => {
    const server = await fake({ behaviour: () => ({ plain: true, noCachedTokens: true }) });
    const { results, stats } = await replay({ base: server.base, trace: records([at(0, 1), at(0, 2)]), ignoreEos: false });
    expect(server.received.every((r) => !("ignore_eos" in r.body))).toBe(true);
    for (const r of results) expect(r).toMatchObject({ ok: true, engine: null, cachedTokensSource: null, cachedTokens: null });
    const summary = stats.summary(runInfo(2));
    expect(summary.cache).toMatchObject({ hitRatio: null, requestsReporting: 0, sources: { unreported: 2 } });
    expect(summary.engines).toEqual({ unknown: 2 });
  });

  it("reports the cache-hit ratio the trace's own block reuse predicts", async () => {
    const server = await fake({ blockSize: 512 });
    const trace = await openTrace(fixture("mooncake-conversation-200.jsonl"));
    const { run, results, stats } = await replay({ base: server.base, trace, maxConcurrency: 1, maxRequests: 120 });
    expect(run.sent).toBe(120);
    // Expected from the hash ids alone: a leading block is a hit when an earlier request held that id as a
    // full block; a partial last block is never cached.
    const all = (await readAll(await openTrace(fixture("mooncake-conversation-200.jsonl")))).slice(0, 120);
    const full = new Set<number>();
    let cached = 0;
    let prompt = 0;
    for (const r of all) {
      const fullBlocks = Math.floor(r.inputLength / 512);
      let hits = 0;
      while (hits < fullBlocks && full.has(r.hashIds![hits]!)) hits++;
      cached += hits * 512;
      prompt += r.inputLength;
      for (let b = 0; b < fullBlocks; b++) full.add(r.hashIds![b]!);
    }
    expect(cached).toBeGreaterThan(0);
    expect(results.reduce((n, r) => n + r.cachedTokens!, 0)).toBe(cached);
    const summary = stats.summary(runInfo(run.sent));
    expect(summary.cache.cachedTokens).toBe(cached);
    expect(summary.cache.promptTokens).toBe(prompt);
    expect(summary.cache.hitRatio).toBeCloseTo(cached / prompt, 12);
    // The same ratio over time, interval by interval, adds up to the total.
    expect(summary.tokens.prompt).toBe(prompt);
  });

  it("records HTTP errors, broken streams and malformed frames per request, and carries on", async () => {
    const modes = [{ status: 500 }, { status: 400 }, { endWithoutDone: true }, { badFrame: true }, {}];
    const server = await fake({ behaviour: (i) => modes[i]! });
    const trace = records([0, 1, 2, 3, 4].map((i) => at(i * 10, i + 1)));
    const { results, stats } = await replay({ base: server.base, trace, maxConcurrency: 1 });
    expect(results.map((r) => [r.ok, r.errorKind, r.status])).toEqual([
      [false, "http", 500],
      [false, "http", 400],
      [false, "stream", 200],
      [false, "stream", 200],
      [true, null, 200],
    ]);
    expect(results[0]!.error).toBe("HTTP 500: fake failure 500");
    expect(results[2]!.error).toMatch(/ended without data: \[DONE\]/);
    expect(results[2]!.ttftMs).not.toBeNull(); // it did stream tokens before breaking
    expect(results[3]!.error).toMatch(/malformed SSE data frame/);
    const summary = stats.summary(runInfo(5));
    expect(summary.requests).toMatchObject({ completed: 5, succeeded: 1, failed: 4, errorsByKind: { http: 2, stream: 2 } });
    expect(summary.requests.firstErrors.map((e) => e.line)).toEqual([1, 2, 3, 4]);
    expect(summary.latency.ttft.count).toBe(1);
  });

  it("reports a refused connection as a connect error for every request", async () => {
    const server = await fake();
    await server.close();
    servers = [];
    const { results, stats } = await replay({ base: server.base, trace: records([at(0, 1), at(1, 2), at(2, 3)]) });
    expect(results).toHaveLength(3);
    for (const r of results) expect(r).toMatchObject({ ok: false, errorKind: "connect", status: null, error: expect.stringMatching(/connection refused by 127\.0\.0\.1:\d+/) });
    expect(stats.summary(runInfo(3)).throughput.requestsPerSec).toBe(0);
  });

  it("ends a request that outlives its timeout as a timeout", async () => {
    const server = await fake({ behaviour: () => ({ delayMs: 5_000 }) });
    const { results } = await replay({ base: server.base, trace: records([at(0, 1)]), timeoutMs: 100 });
    expect(results[0]).toMatchObject({ ok: false, errorKind: "timeout" });
  });

  it("keeps at most --max-concurrency requests in flight", async () => {
    const burst = Array.from({ length: 12 }, (_, i) => at(0, i + 1));
    const capped = await fake({ behaviour: () => ({ delayMs: 150 }) });
    const { results } = await replay({ base: capped.base, trace: records(burst), maxConcurrency: 3 });
    expect(results.every((r) => r.ok)).toBe(true);
    expect(capped.maxInFlight).toBe(3);
    // On the replay's own clock: whenever a request was sent, at most 2 others were still open.
    for (const r of results) {
      const open = results.filter((o) => o !== r && o.sentMs <= r.sentMs && o.sentMs + o.e2eMs! > r.sentMs);
      expect(open.length).toBeLessThanOrEqual(2);
    }
    const free = await fake({ behaviour: () => ({ delayMs: 150 }) });
    await replay({ base: free.base, trace: records(burst) });
    expect(free.maxInFlight).toBe(12);
  });

  it("stops after --max-requests", async () => {
    const server = await fake();
    const { run, results } = await replay({ base: server.base, trace: await openTrace(fixture("mooncake-conversation-200.jsonl")), maxRequests: 7 });
    expect(run).toMatchObject({ sent: 7, stopped: "max-requests" });
    expect(results).toHaveLength(7);
    expect(server.received).toHaveLength(7);
  });

  it("--duration sends exactly the records scheduled within it (after speed-up)", async () => {
    const server = await fake();
    const trace = records(Array.from({ length: 20 }, (_, i) => at(i * 100, i + 1)));
    const { run, results } = await replay({ base: server.base, trace, speedup: 10, durationSec: 0.095 });
    expect(run.stopped).toBe("duration");
    expect(results.map((r) => r.line)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(results.map((r) => r.scheduledMs)).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90]);
  });

  it("sends on the trace's clock divided by the speed-up, in trace order", async () => {
    const server = await fake();
    const stamps = [0, 0, 500, 1000, 1000, 3000, 3500];
    const trace = records(stamps.map((t, i) => ({ ...at(t, i + 1), inputLength: 10 + i })));
    const { results } = await replay({ base: server.base, trace, speedup: 100 });
    expect(results.map((r) => r.scheduledMs)).toEqual(stamps.map((t) => t / 100));
    for (const [i, r] of results.entries()) {
      expect(r.line).toBe(i + 1);
      expect(r.sentMs).toBeGreaterThanOrEqual(r.scheduledMs - 1); // timers resolve to the millisecond
      if (i > 0) expect(r.sentMs).toBeGreaterThanOrEqual(results[i - 1]!.sentMs);
    }
    // Requests with distinct timestamps reach the server in trace order.
    const arrival = server.received.map((x) => x.body.prompt.length - 10 + 1);
    const distinct = [1, 3, 6, 7];
    expect(arrival.filter((line) => distinct.includes(line))).toEqual(distinct);
  });

  it("stops on a signal, aborting what is in flight and keeping what finished", async () => {
    const server = await fake({ behaviour: (i) => ({ delayMs: i === 0 ? 0 : 10_000 }) });
    const stop = new AbortController();
    const trace = records([at(0, 1), at(0, 2), at(0, 3), at(60_000, 4)]);
    const results: RequestResult[] = [];
    const run = await runReplay({
      base: server.base,
      model: "fake-model",
      trace,
      synthesize,
      signal: stop.signal,
      onResult: (r) => {
        results.push(r);
        if (r.ok) setTimeout(() => stop.abort(), 50);
      },
    });
    expect(run.stopped).toBe("interrupted");
    expect(run.sent).toBe(3);
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results.filter((r) => r.errorKind === "aborted")).toHaveLength(2);
  });

  it("under --strict, stops sending at a bad trace line and still finishes what was sent", async () => {
    const server = await fake();
    const trace = await openTrace(fixture("mooncake-bad.jsonl"), { strict: true });
    const { run, results } = await replay({ base: server.base, trace });
    expect(run.stopped).toBe("trace-error");
    expect(run.error).toBeInstanceOf(TraceError);
    expect((run.error as TraceError).bad.line).toBe(3);
    expect(results.map((r) => [r.line, r.ok])).toEqual([
      [1, true],
      [2, true],
    ]);
  });

  it("discovers the model and sends nothing to a target it cannot reach", async () => {
    const { discoverModel } = await import("../../../src/index.js");
    const { Agent } = await import("undici");
    const server = await fake({ model: "served-model" });
    const agent = new Agent();
    try {
      expect(await discoverModel(server.base, agent, undefined, 5_000)).toBe("served-model");
      await expect(discoverModel(server.base.replace(/\/v1$/, "/nothing/v1"), agent, undefined, 5_000)).rejects.toThrow(/cannot list the models.*pass --model/);
    } finally {
      await agent.close();
    }
  });
});

function runInfo(sent: number) {
  return {
    tool: "test",
    startedAt: new Date(0).toISOString(),
    target: "fake",
    model: "fake-model",
    trace: { name: "t", blockSize: 512, report: { format: "mooncake" as const, records: sent, badLines: 0, byKind: {}, firstBadLines: [] } },
    settings: {},
    stopped: "trace-end" as const,
    durationMs: 1000,
    sent,
  };
}
