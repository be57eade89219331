import { describe, expect, it } from "vitest";
import { meetsSlo, parseSlo, renderReport, ReplayStats, Timeline, type RequestResult, type RunInfo } from "../../../src/index.js";

function result(overrides: Partial<RequestResult> = {}): RequestResult {
  return {
    index: 0,
    line: 1,
    scheduledMs: 0,
    sentMs: 0,
    promptTokens: 1000,
    outputTokens: 10,
    maxTokens: 10,
    ttftMs: 50,
    e2eMs: 200,
    itlMeanMs: 15,
    itlMaxMs: 30,
    cachedTokens: 500,
    cachedTokensSource: "engine",
    engine: "e0",
    status: 200,
    ok: true,
    errorKind: null,
    error: null,
    ...overrides,
  };
}

const run = (overrides: Partial<RunInfo> = {}): RunInfo => ({
  tool: "kvroute replay",
  startedAt: "2025-01-01T00:00:00.000Z",
  target: "http://127.0.0.1:1/v1",
  model: "m",
  trace: { name: "trace.jsonl", blockSize: 512, report: { format: "mooncake", records: 4, badLines: 0, byKind: {}, firstBadLines: [] } },
  settings: { speedup: 1 },
  stopped: "trace-end",
  durationMs: 2000,
  sent: 4,
  ...overrides,
});

describe("SLOs", () => {
  it("parses ttft, itl and e2e in milliseconds and rejects anything else", () => {
    expect(parseSlo("ttft=500,itl=50")).toEqual({ ttftMs: 500, itlMs: 50 });
    expect(parseSlo("E2E=2000")).toEqual({ e2eMs: 2000 });
    for (const bad of ["", "ttft", "ttft=0", "ttft=-5", "ttft=abc", "tpot=5"]) expect(() => parseSlo(bad)).toThrow(/--slo/);
  });

  it("a request is good when it succeeded and meets every objective given", () => {
    const slo = { ttftMs: 100, itlMs: 20 };
    expect(meetsSlo(result(), slo)).toBe(true);
    expect(meetsSlo(result({ ttftMs: 101 }), slo)).toBe(false);
    expect(meetsSlo(result({ itlMeanMs: 21 }), slo)).toBe(false);
    expect(meetsSlo(result({ itlMeanMs: null }), slo)).toBe(true); // one token: no inter-token latency to miss
    expect(meetsSlo(result({ ok: false }), slo)).toBe(false);
    expect(meetsSlo(result({ e2eMs: 5000 }), { e2eMs: 1000 })).toBe(false);
  });
});

describe("Timeline", () => {
  it("doubles its bucket width instead of growing past its limit, keeping every total", () => {
    const t = new Timeline(100, 10);
    for (let s = 0; s < 50; s++) t.at(s * 100).succeeded++;
    expect(t.widthMs).toBe(800); // 50 buckets of 100 ms -> 7 of 800 ms
    const points = t.points();
    expect(points.length).toBeLessThanOrEqual(10);
    expect(points.reduce((n, p) => n + p.requestsPerSec * p.widthSec, 0)).toBeCloseTo(50, 9);
    expect(points[0]).toMatchObject({ startSec: 0, widthSec: 0.8, requestsPerSec: 10 });
  });
});

describe("ReplayStats", () => {
  it("sums the cache-hit ratio over the requests that reported cached tokens, overall and per interval", () => {
    const stats = new ReplayStats({ ttftMs: 100 });
    stats.add(result({ index: 0, engine: "e0", cachedTokens: 0, promptTokens: 1000, sentMs: 0, e2eMs: 100 }), [10, 20]);
    stats.add(result({ index: 1, engine: "e1", cachedTokens: 900, promptTokens: 1000, sentMs: 1000, e2eMs: 100, ttftMs: 150 }), [5]);
    stats.add(result({ index: 2, engine: null, cachedTokens: null, cachedTokensSource: null, promptTokens: 5000 }));
    stats.add(result({ index: 3, ok: false, errorKind: "http", error: "HTTP 503: busy", status: 503, engine: null }));
    const s = stats.summary(run());
    expect(s.cache).toEqual({ hitRatio: 0.45, cachedTokens: 900, promptTokens: 2000, requestsReporting: 2, sources: { engine: 2, unreported: 1 } });
    expect(s.requests).toMatchObject({ sent: 4, completed: 4, succeeded: 3, failed: 1, errorsByKind: { http: 1 } });
    expect(s.requests.firstErrors).toEqual([{ index: 3, line: 1, kind: "http", message: "HTTP 503: busy" }]);
    expect(s.engines).toEqual({ e0: 1, e1: 1, unknown: 2 });
    expect(s.tokens).toEqual({ prompt: 7000, output: 30 });
    expect(s.throughput).toEqual({ requestsPerSec: 1.5, inputTokensPerSec: 3500, outputTokensPerSec: 15 });
    expect(s.goodput).toEqual({ slo: { ttftMs: 100 }, goodRequests: 2, fractionOfCompleted: 0.5, requestsPerSec: 1 });
    expect(s.latency.itl.count).toBe(3);
    expect(s.latency.ttft.count).toBe(3);
    const ratios = s.timeline.filter((p) => p.hitRatio !== null).map((p) => p.hitRatio);
    expect(ratios).toEqual([0, 0.9]);
  });
});

describe("HTML report", () => {
  it("renders every plot, escapes what it shows, and says when a plot has no data", () => {
    const stats = new ReplayStats();
    const html = renderReport(stats.summary(run({ trace: { name: '<img src=x onerror="alert(1)">', blockSize: null, report: { format: "azure", records: 0, badLines: 0, byKind: {}, firstBadLines: [] } } })));
    expect(html).toContain("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;");
    expect(html).not.toContain("<img");
    expect(html.match(/<svg /g)).toHaveLength(6);
    expect(html.match(/>no data</g)).toHaveLength(6);
  });
});
