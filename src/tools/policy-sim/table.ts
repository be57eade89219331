// The side-by-side table `kvroute simulate` prints.
import { int } from "../replay/index.js";
import type { SimulationReport } from "./report.js";

const pct = (v: number | null) => (v === null ? "n/a" : `${(v * 100).toFixed(2)}%`);
const ms = (v: number) => int(v);
const x = (v: number) => `${v.toFixed(2)}x`;

/** "8 engines", or "2 prefill + 6 decode engines (disaggregated, 400 Gb/s)". */
function fleet(r: SimulationReport): string {
  const s = r.settings;
  return s.mode === "disaggregated" ? `${s.prefill_engines} prefill + ${s.decode_engines} decode engines (disaggregated, ${s.kv_transfer_gbps} Gb/s links)` : `${s.engines} engines`;
}

function align(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((row, i) => {
      const line = row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ");
      return i === 0 ? `${line}\n${widths.map((w) => "-".repeat(w)).join("  ")}` : line;
    })
    .join("\n");
}

/** The runs of a sweep over one setting, in one table: each value's policies side by side. */
export function sweepTable(key: string, runs: readonly { value: string; report: SimulationReport }[]): string {
  const header = [key, "policy", "hit ratio", "of fleet bound", "TTFT mean", "TTFT p50", "TTFT p99", "ITL mean", "ITL p99", "E2E p50", "busy max/mean"];
  const rows = runs.flatMap(({ value, report }) =>
    report.policies.map((p) => [
      value,
      p.policy,
      pct(p.hit_ratio),
      p.hit_ratio === null || !report.fleet_bound.hit_ratio ? "n/a" : pct(p.hit_ratio / report.fleet_bound.hit_ratio),
      ms(p.ttft_ms.mean),
      ms(p.ttft_ms.p50),
      ms(p.ttft_ms.p99),
      p.itl_ms.mean.toFixed(1),
      p.itl_ms.p99.toFixed(1),
      ms(p.e2e_ms.p50),
      x(p.balance.busy_time),
    ]),
  );
  const first = runs[0]!.report;
  return [
    `kvroute simulate: ${first.trace.name}, ${int(first.trace.records)} records, sweeping ${key}; latencies in ms of virtual time`,
    "",
    align([header, ...rows]),
    "",
    ...runs.map(({ value, report }) => `${key}=${value}: bound ${pct(report.bound.hit_ratio)} unbounded, ${pct(report.fleet_bound.hit_ratio)} at the fleet's capacity`),
    "",
  ].join("\n");
}

/** Where the index's knowledge came from in a run. */
function indexSource(r: SimulationReport): string {
  return r.settings.kv_events === "none" ? `no KV events (approximate mode, TTL ${r.settings.approx_ttl_sec} s)` : "index from KV events";
}

export function reportTable(r: SimulationReport): string {
  const header = ["policy", "hit ratio", "TTFT mean", "TTFT p50", "TTFT p99", "TTFT err", "ITL mean", "ITL p99", "E2E p50", "E2E p99", "req/s", "out tok/s", "busy max/mean", "req max/mean", "failed", "wall s", "virtual s/wall s"];
  const rows = r.policies.map((p) => [
    p.policy,
    pct(p.hit_ratio),
    ms(p.ttft_ms.mean),
    ms(p.ttft_ms.p50),
    ms(p.ttft_ms.p99),
    p.ttft_prediction.mean_abs_error_ms === null ? "n/a" : ms(p.ttft_prediction.mean_abs_error_ms),
    p.itl_ms.mean.toFixed(1),
    p.itl_ms.p99.toFixed(1),
    ms(p.e2e_ms.p50),
    ms(p.e2e_ms.p99),
    p.throughput.requests_per_sec.toFixed(2),
    int(p.throughput.output_tokens_per_sec),
    x(p.balance.busy_time),
    x(p.balance.requests),
    int(p.requests.failed),
    p.wall_sec.toFixed(1),
    int(p.speed),
  ]);
  const b = r.bound;
  const f = r.fleet_bound;
  return [
    `kvroute simulate: ${r.trace.name}, ${int(r.trace.records)} records (${int(r.trace.bad_lines)} bad lines skipped), ${fleet(r)}, ${indexSource(r)}; latencies in ms of virtual time`,
    "",
    align([header, ...rows]),
    "",
    `bound        ${pct(b.hit_ratio)} hit ratio for one unbounded cache shared by all engines (${b.block_size}-token blocks, ${int(b.cached_tokens)} of ${int(b.prompt_tokens)} prompt tokens)`,
    `fleet bound  ${pct(f.hit_ratio)} hit ratio for one LRU cache of the fleet's ${int(f.capacity_blocks ?? 0)} blocks (${int(f.cached_tokens)} prompt tokens)`,
    `wall time    ${r.wall_sec.toFixed(1)} s in all`,
    "",
  ].join("\n");
}
