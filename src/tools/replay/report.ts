// The self-contained HTML report of a run: a pure function of its summary, so it can be made again from
// summary.json, and made the same way for a live replay and a simulation.
import { int } from "./format.js";
import type { LatencySummary } from "./histogram.js";
import type { ReplaySummary } from "./stats.js";
import { barChart, escapeXml as esc, formatNumber, lineChart } from "./svg.js";

const BLUE = "#2563eb";
const ORANGE = "#ea580c";
const GREEN = "#16a34a";
const RED = "#dc2626";

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1f2937;margin:24px auto;max-width:1180px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
.muted{color:#6b7280;fill:#6b7280}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px;margin-top:16px}
.tile{border:1px solid #e5e7eb;border-radius:8px;padding:10px 12px}.tile b{display:block;font-size:20px}.tile span{color:#6b7280;font-size:12px}
table{border-collapse:collapse;margin:6px 0}th,td{padding:4px 12px;text-align:right;border-bottom:1px solid #f0f0f0}th:first-child,td:first-child{text-align:left}
th{font-weight:600;background:#f9fafb}td.t{text-align:left}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:14px}
.chart{margin:0;border:1px solid #e5e7eb;border-radius:8px;padding:6px}.chart svg{width:100%;height:auto;display:block}
svg .title{font-size:14px;font-weight:600;fill:#1f2937}svg .tick{font-size:11px;fill:#4b5563}svg .label{font-size:12px;fill:#374151}
svg .grid{stroke:#eef0f3}svg .axis{stroke:#9ca3af}
code{background:#f3f4f6;padding:1px 4px;border-radius:4px}
`;

const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
const pct = (v: number | null) => (v === null ? "n/a" : `${(v * 100).toFixed(2)}%`);

function tile(value: string, label: string): string {
  return `<div class="tile"><b>${esc(value)}</b><span>${esc(label)}</span></div>`;
}

function table(header: string[], rows: string[][]): string {
  const head = `<tr>${header.map((h) => `<th>${esc(h)}</th>`).join("")}</tr>`;
  // Figures align right, words left.
  const cell = (c: string) => (/^[\d.,/%\s kM]+$|^n\/a$/.test(c) ? `<td>${esc(c)}</td>` : `<td class="t">${esc(c)}</td>`);
  return `<table>${head}${rows.map((r) => `<tr>${r.map(cell).join("")}</tr>`).join("")}</table>`;
}

function latencyRow(name: string, s: LatencySummary): string[] {
  return [name, int(s.count), ms(s.meanMs), ms(s.p50Ms), ms(s.p90Ms), ms(s.p99Ms), ms(s.maxMs)];
}

export function renderReport(s: ReplaySummary): string {
  const t = s.timeline;
  const mid = (p: { startSec: number; widthSec: number }) => p.startSec + p.widthSec / 2;
  const charts = [
    lineChart({ title: "TTFT, cumulative distribution", xLabel: "time to first token (ms)", yLabel: "fraction of requests", series: [{ name: "TTFT", points: s.distributions.ttftMs, color: BLUE }], yMax: 1, yFormat: (v) => `${Math.round(v * 100)}%` }),
    lineChart({ title: "End-to-end latency, cumulative distribution", xLabel: "end-to-end latency (ms)", yLabel: "fraction of requests", series: [{ name: "E2E", points: s.distributions.e2eMs, color: ORANGE }], yMax: 1, yFormat: (v) => `${Math.round(v * 100)}%` }),
    lineChart({
      title: "Requests completed per second",
      xLabel: "time since start (s)",
      yLabel: "requests / s",
      step: true,
      series: [
        { name: "succeeded", points: t.map((p) => [mid(p), p.requestsPerSec]), color: BLUE },
        ...(t.some((p) => p.errors > 0) ? [{ name: "errors", points: t.map((p): [number, number] => [mid(p), p.errors / p.widthSec]), color: RED }] : []),
      ],
    }),
    lineChart({ title: "Output tokens per second", xLabel: "time since start (s)", yLabel: "tokens / s", step: true, series: [{ name: "output tokens", points: t.map((p) => [mid(p), p.outputTokensPerSec]), color: GREEN }] }),
    lineChart({
      title: "Cache-hit ratio over time (cached / prompt tokens)",
      xLabel: "time since start (s)",
      yLabel: "hit ratio",
      step: true,
      yMax: 1,
      yFormat: (v) => `${Math.round(v * 100)}%`,
      series: [{ name: "hit ratio", points: t.filter((p) => p.hitRatio !== null).map((p) => [mid(p), p.hitRatio!]), color: BLUE }],
    }),
    barChart({ title: "Requests per engine", yLabel: "requests", color: ORANGE, bars: Object.entries(s.engines).map(([label, value]) => ({ label, value })) }),
  ];

  const settings = Object.entries(s.settings)
    .filter(([, v]) => v !== null)
    .map(([k, v]) => `<code>${esc(k)}=${esc(String(v))}</code>`)
    .join(" ");
  const errors = Object.entries(s.requests.errorsByKind).map(([kind, n]) => [kind, int(n ?? 0)]);
  const goodput = s.goodput;
  const sloText = goodput ? Object.entries(goodput.slo).map(([k, v]) => `${k.replace(/Ms$/, "")} ≤ ${v} ms`).join(", ") : "";

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(s.tool)} report: ${esc(s.trace.name)}</title><style>${STYLE}</style></head><body>
<h1>${esc(s.tool)} report</h1>
<div class="muted">${esc(s.startedAt)} · target <code>${esc(s.target)}</code> · model <code>${esc(s.model)}</code></div>
<div class="muted">trace <code>${esc(s.trace.name)}</code> (${esc(s.trace.format)}${s.trace.blockSize !== null ? `, block size ${s.trace.blockSize}` : ""}) · stopped: ${esc(s.stopped)}</div>
<div class="muted">${settings}</div>
<div class="tiles">
${tile(`${int(s.requests.succeeded)} / ${int(s.requests.sent)}`, "requests succeeded / sent")}
${tile(`${s.durationSec.toFixed(1)} s`, "duration")}
${tile(`${s.throughput.requestsPerSec.toFixed(2)}/s`, "request throughput")}
${tile(`${formatNumber(s.throughput.outputTokensPerSec)}/s`, "output token throughput")}
${tile(`${ms(s.latency.ttft.p50Ms)} / ${ms(s.latency.ttft.p99Ms)} ms`, "TTFT p50 / p99")}
${tile(`${ms(s.latency.itl.p50Ms)} / ${ms(s.latency.itl.p99Ms)} ms`, "ITL p50 / p99")}
${tile(pct(s.cache.hitRatio), "fleet cache-hit ratio")}
${goodput ? tile(`${goodput.requestsPerSec.toFixed(2)}/s`, `goodput (${pct(goodput.fractionOfCompleted)} of requests)`) : ""}
${tile(int(s.requests.failed), "failed requests")}
</div>
<h2>Latency (ms)</h2>
${table(["", "count", "mean", "p50", "p90", "p99", "max"], [
  latencyRow("time to first token", s.latency.ttft),
  latencyRow("inter-token latency", s.latency.itl),
  latencyRow("end-to-end", s.latency.e2e),
  latencyRow("send lag (sent − scheduled)", s.latency.sendLag),
])}
<h2>Plots</h2>
<div class="charts">${charts.join("\n")}</div>
<h2>Throughput and cache</h2>
${table(["", "value"], [
  ["prompt tokens (succeeded requests)", int(s.tokens.prompt)],
  ["output tokens (succeeded requests)", int(s.tokens.output)],
  ["input tokens / s", formatNumber(s.throughput.inputTokensPerSec)],
  ["output tokens / s", formatNumber(s.throughput.outputTokensPerSec)],
  ["cached tokens / prompt tokens (reporting requests)", `${int(s.cache.cachedTokens)} / ${int(s.cache.promptTokens)}`],
  ["requests reporting cached_tokens", int(s.cache.requestsReporting)],
  ...Object.entries(s.cache.sources).map(([k, v]) => [`cached_tokens source: ${k}`, int(v)]),
  ...(goodput ? [[`good requests (${sloText})`, `${int(goodput.goodRequests)} of ${int(s.requests.completed)}`]] : []),
])}
<h2>Errors</h2>
${errors.length === 0 ? "<p>None.</p>" : table(["kind", "requests"], errors)}
${s.requests.firstErrors.length > 0 ? table(["request", "trace line", "kind", "message"], s.requests.firstErrors.map((e) => [String(e.index), String(e.line), e.kind, e.message])) : ""}
<h2>Trace</h2>
${table(["", "value"], [
  ["records read", int(s.trace.records)],
  ["bad lines skipped", int(s.trace.badLines)],
  ...Object.entries(s.trace.badByKind).map(([k, v]) => [`  ${k}`, int(v ?? 0)]),
])}
${s.trace.firstBadLines.length > 0 ? table(["line", "kind", "reason"], s.trace.firstBadLines.map((b) => [String(b.line), b.kind, b.reason])) : ""}
</body></html>
`;
}
