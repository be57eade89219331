// Printing helpers shared by the benchmarks: one aligned table per benchmark, ratios computed from
// rows measured in the same run.
import type { Bench, Task } from "tinybench";

/** Mean milliseconds per call of a finished tinybench task. */
export function msPerOp(task: Task | undefined): number {
  const result = task?.result;
  if (!result || !("period" in result)) {
    const why = result && "error" in result ? `: ${result.error.message}` : "";
    throw new Error(`benchmark task ${task?.name ?? "?"} did not complete${why}`);
  }
  return result.period;
}

export function taskByName(bench: Bench, name: string): Task {
  const task = bench.getTask(name);
  if (!task) throw new Error(`no benchmark task named ${name}`);
  return task;
}

export function printTable(title: string, header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? "").length)));
  console.log(`\n${title}`);
  cells.forEach((row, i) => {
    console.log(row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  "));
    if (i === 0) console.log(widths.map((w) => "-".repeat(w)).join("  "));
  });
}

export function fixed(value: number, digits = 1): string {
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function ratio(value: number): string {
  return `${fixed(value, 2)}x`;
}

export function machineLine(): string {
  return `node ${process.version}, ${process.platform}/${process.arch}`;
}
