import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { openTrace, parseAzureTimestamp, readAll, TraceError, type BadLine } from "../../../src/index.js";
import { packageRoot } from "../../../src/util/package-root.js";

const fixture = (name: string) => join(packageRoot(), "test", "fixtures", "traces", name);
const scratch = mkdtempSync(join(tmpdir(), "kvroute-trace-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function scratchFile(name: string, content: string | Buffer): string {
  const path = join(scratch, name);
  writeFileSync(path, content);
  return path;
}

describe("Mooncake JSONL", () => {
  it("reads every field, makes timestamps relative, keeps hash ids", async () => {
    const trace = await openTrace(fixture("mooncake-good.jsonl"));
    expect(trace.format).toBe("mooncake");
    expect(trace.blockSize).toBe(512);
    const records = await readAll(trace);
    expect(records).toEqual([
      { line: 1, timestampMs: 0, inputLength: 1000, outputLength: 10, hashIds: [0, 1] },
      { line: 2, timestampMs: 0, inputLength: 1024, outputLength: 20, hashIds: [0, 2] },
      { line: 3, timestampMs: 250, inputLength: 1500, outputLength: 5, hashIds: [0, 2, 3] },
      { line: 4, timestampMs: 1000, inputLength: 7, outputLength: 0, hashIds: [4] },
      { line: 5, timestampMs: 1500.5, inputLength: 300, outputLength: 1 },
    ]);
    expect(trace.report).toMatchObject({ records: 5, badLines: 0 });
  });

  it("reports each bad line with its number and reason, skips it, and keeps the good ones", async () => {
    const seen: BadLine[] = [];
    const trace = await openTrace(fixture("mooncake-bad.jsonl"), { onBadLine: (b) => seen.push(b) });
    const records = await readAll(trace);
    expect(records.map((r) => r.line)).toEqual([1, 2, 11]);
    expect(trace.report.records).toBe(3);
    expect(trace.report.badLines).toBe(7);
    expect(trace.report.byKind).toEqual({ malformed: 2, "invalid-field": 3, "out-of-order": 1, "hash-ids-mismatch": 1 });
    expect(seen).toEqual(trace.report.firstBadLines);
    const byLine = new Map(seen.map((b) => [b.line, b]));
    expect(byLine.get(3)).toMatchObject({ kind: "malformed", reason: expect.stringMatching(/not valid JSON/) });
    expect(byLine.get(4)).toMatchObject({ kind: "invalid-field", reason: expect.stringMatching(/input_length must be an integer of at least 1, got -3/) });
    expect(byLine.get(6)).toMatchObject({ kind: "out-of-order", reason: expect.stringMatching(/1 ms earlier than that of line 2/) });
    expect(byLine.get(7)).toMatchObject({ kind: "hash-ids-mismatch", reason: expect.stringMatching(/has 2 ids.*ceil\(1025 \/ 512\) = 3/) });
    expect(byLine.get(8)).toMatchObject({ kind: "malformed", reason: expect.stringMatching(/expected a JSON object/) });
    expect(byLine.get(9)).toMatchObject({ kind: "invalid-field", reason: expect.stringMatching(/output_length/) });
    expect(byLine.get(10)).toMatchObject({ kind: "invalid-field", reason: expect.stringMatching(/hash_ids\[0\]/) });
    expect(byLine.has(5)).toBe(false); // a blank line is not a record and not an error
  });

  it("--strict stops on the first bad line with its number", async () => {
    const trace = await openTrace(fixture("mooncake-bad.jsonl"), { strict: true });
    const got: number[] = [];
    const error = await (async () => {
      for await (const r of trace) got.push(r.line);
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TraceError);
    expect((error as TraceError).bad).toMatchObject({ line: 3, kind: "malformed" });
    expect((error as TraceError).message).toMatch(/mooncake-bad\.jsonl:3: not valid JSON/);
    expect(got).toEqual([1, 2]);
  });

  it("checks hash ids against the block size given", async () => {
    // 1000 tokens at block size 16 need 63 ids: the first three lines disagree; 7 tokens still need 1.
    const trace = await openTrace(fixture("mooncake-good.jsonl"), { blockSize: 16 });
    const records = await readAll(trace);
    expect(records.map((r) => r.line)).toEqual([4, 5]);
    expect(trace.report.byKind).toEqual({ "hash-ids-mismatch": 3 });
  });

  it("reads the first 200 lines of the real conversation trace", async () => {
    const trace = await openTrace(fixture("mooncake-conversation-200.jsonl"));
    const records = await readAll(trace);
    expect(records).toHaveLength(200);
    expect(trace.report.badLines).toBe(0);
    for (const r of records) expect(r.hashIds).toHaveLength(Math.ceil(r.inputLength / 512));
    const raw = readFileSync(fixture("mooncake-conversation-200.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { timestamp: number; input_length: number });
    expect(records.map((r) => r.timestampMs)).toEqual(raw.map((r) => r.timestamp - raw[0]!.timestamp));
    expect(records.map((r) => r.inputLength)).toEqual(raw.map((r) => r.input_length));
  });
});

describe("Azure CSV", () => {
  it("reads the 2023 layout (CRLF, 7 fraction digits)", async () => {
    const trace = await openTrace(fixture("azure-conv-2023-head.csv"));
    expect(trace.format).toBe("azure");
    expect(trace.blockSize).toBeUndefined();
    const records = await readAll(trace);
    expect(records.map((r) => [r.line, r.inputLength, r.outputLength])).toEqual([
      [2, 374, 44],
      [3, 396, 109],
      [4, 879, 55],
      [5, 91, 16],
      [6, 91, 16],
    ]);
    expect(records[0]!.timestampMs).toBe(0);
    // 18:15:50.9951690 - 18:15:46.6805900
    expect(records[1]!.timestampMs).toBeCloseTo(4314.579, 3);
    expect(records.every((r) => r.hashIds === undefined)).toBe(true);
  });

  it("reads the 2024 layout (zones, whole seconds)", async () => {
    const records = await readAll(await openTrace(fixture("azure-code-2024.csv")));
    const times = records.map((r) => r.timestampMs);
    expect(times[0]).toBe(0);
    expect(times[1]).toBeCloseTo(40.52, 3);
    expect(times[2]).toBeCloseTo(998.837, 3);
    expect(times[3]).toBeCloseTo(1498.837, 3); // 02:00:01.5+02:00 is 00:00:01.5 UTC
  });

  it("reports bad rows with line numbers", async () => {
    const trace = await openTrace(fixture("azure-bad.csv"));
    const records = await readAll(trace);
    expect(records.map((r) => r.line)).toEqual([2, 3, 10]);
    expect(records[2]!.outputLength).toBe(0);
    expect(trace.report.byKind).toEqual({ malformed: 1, "invalid-field": 4, "out-of-order": 1 });
    expect(trace.report.firstBadLines.map((b) => b.line)).toEqual([4, 5, 6, 7, 8, 9]);
    expect(trace.report.firstBadLines[1]!.reason).toMatch(/TIMESTAMP must look like/);
  });

  it("parses both timestamp layouts and rejects others", () => {
    expect(parseAzureTimestamp("2023-11-16 18:15:46.6805900")).toBeCloseTo(Date.UTC(2023, 10, 16, 18, 15, 46) + 680.59, 3);
    expect(parseAzureTimestamp("2024-05-12 00:00:00+00:00")).toBe(Date.UTC(2024, 4, 12));
    expect(parseAzureTimestamp("2024-05-12T00:00:00.5Z")).toBe(Date.UTC(2024, 4, 12) + 500);
    expect(parseAzureTimestamp("2024-05-12 00:00:00-01:30")).toBe(Date.UTC(2024, 4, 12, 1, 30));
    for (const bad of ["", "2024-13-01 00:00:00", "2024-05-12", "12:00:00", "2024-05-12 00:00:00 +00:00"]) {
      expect(parseAzureTimestamp(bad)).toBeUndefined();
    }
  });

  it("takes a headerless file in the default column order when the format is given", async () => {
    const path = scratchFile("headerless.csv", "2023-11-16 18:15:46.5,10,2\n2023-11-16 18:15:47.5,20,3\n");
    await expect(openTrace(path)).rejects.toThrow(/unknown trace format/);
    const records = await readAll(await openTrace(path, { format: "azure" }));
    expect(records.map((r) => [r.line, r.timestampMs, r.inputLength])).toEqual([
      [1, 0, 10],
      [2, 1000, 20],
    ]);
  });
});

describe("streaming", () => {
  it("reads gzip-compressed traces", async () => {
    const path = scratchFile("trace.jsonl.gz", gzipSync(readFileSync(fixture("mooncake-conversation-200.jsonl"))));
    const trace = await openTrace(path);
    expect(trace.format).toBe("mooncake");
    expect(await readAll(trace)).toEqual(await readAll(await openTrace(fixture("mooncake-conversation-200.jsonl"))));
    expect(trace.progress()).toBe(1);
  });

  it("reports a line over the length limit without buffering it, and reads on", async () => {
    const long = `{"timestamp": 1, "input_length": 1, "output_length": 1, "pad": "${"x".repeat(5000)}"}`;
    const path = scratchFile("long.jsonl", `{"timestamp": 0, "input_length": 1, "output_length": 1}\n${long}\n{"timestamp": 2, "input_length": 2, "output_length": 1}`);
    const trace = await openTrace(path, { maxLineBytes: 1000 });
    const records = await readAll(trace);
    expect(records.map((r) => r.line)).toEqual([1, 3]);
    expect(trace.report.firstBadLines).toEqual([{ line: 2, kind: "too-long", reason: "line longer than 1000 bytes" }]);
  });

  it("strips a byte-order mark and reads a last line without a newline", async () => {
    const path = scratchFile("bom.csv", "\ufeffTIMESTAMP,ContextTokens,GeneratedTokens\r\n2024-05-12 00:00:00+00:00,5,1");
    const records = await readAll(await openTrace(path));
    expect(records).toEqual([{ line: 2, timestampMs: 0, inputLength: 5, outputLength: 1 }]);
  });

  it("starts a new pass on every iteration, with a fresh report", async () => {
    const trace = await openTrace(fixture("mooncake-bad.jsonl"));
    const first = await readAll(trace);
    const second = await readAll(trace);
    expect(second).toEqual(first);
    expect(trace.report.badLines).toBe(7);
  });

  it("stops reading when the consumer stops", async () => {
    const trace = await openTrace(fixture("mooncake-conversation-200.jsonl"));
    let n = 0;
    for await (const _ of trace) if (++n === 3) break;
    expect(trace.report.records).toBe(3);
  });

  it("explains an unknown format and an empty file", async () => {
    await expect(openTrace(scratchFile("odd.txt", "hello,world\n"))).rejects.toThrow(/unknown trace format \(first line starts "hello,world"\)/);
    await expect(openTrace(scratchFile("empty.jsonl", "\n\n"))).rejects.toThrow(/the trace is empty/);
    await expect(openTrace(join(scratch, "missing.jsonl"))).rejects.toThrow(/ENOENT/);
  });
});
