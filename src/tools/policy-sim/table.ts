// The side-by-side table `kvroute simulate` prints.
import { int } from "../replay/format.js";
import type { SimulationReport } from "./report.js";

const pct = (v: number | null) => (v === null ? "n/a" : `${(v * 100).toFixed(2)}%`);
const ms = (v: number) => int(v);
const x = (v: number) => `${v.toFixed(2)}x`;

function align(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows
    .map((row, i) => {
      const line = row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ");
      return i === 0 ? `${line}\n${widths.map((w) => "-".repeat(w)).join("  ")}` : line;
    })
    .join("\n");
}

export function reportTable(r: SimulationReport): string {
  const header = ["policy", "hit ratio", "TTFT mean", "TTFT p50", "TTFT p99", "E2E p50", "E2E p99", "req/s", "out tok/s", "busy max/mean", "req max/mean", "failed", "wall s", "virtual s/wall s"];
  const rows = r.policies.map((p) => [
    p.policy,
    pct(p.hit_ratio),
    ms(p.ttft_ms.mean),
    ms(p.ttft_ms.p50),
    ms(p.ttft_ms.p99),
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
  return [
    `kvroute simulate: ${r.trace.name}, ${int(r.trace.records)} records (${int(r.trace.bad_lines)} bad lines skipped), ${r.settings.engines} engines; latencies in ms of virtual time`,
    "",
    align([header, ...rows]),
    "",
    `bound        ${pct(b.hit_ratio)} hit ratio for one unbounded cache shared by all engines (${b.block_size}-token blocks, ${int(b.cached_tokens)} of ${int(b.prompt_tokens)} prompt tokens)`,
    `wall time    ${r.wall_sec.toFixed(1)} s in all`,
    "",
  ].join("\n");
}
