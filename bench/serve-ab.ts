// npm run bench:serve-ab -- [DIR…] [--rounds N] [--seconds S] [--rate R] [--warm W]: this checkout's router against
// other built checkouts of kvroute (another commit, say), token-id requests as in bench:serve's row (a), in
// alternating rounds: on a shared machine a row moves between runs by more than most changes do, so a
// change is judged by rounds run side by side, not by two runs of bench:serve. Without --rate the load is
// the peak (wrk); with it, R requests a second evenly paced (steady.ts), for the latency at a given rate.
// With --warm W each router is first held at its peak for W seconds, as bench:serve's router has been when
// its half-peak rows start: V8 has then run full collections in its threads, and a router that has run for
// a while is measured rather than a fresh one. With no DIR it runs rounds of this checkout alone.
//
// Each round starts every checkout's `kvroute serve --sim 4 --sim-speedup 0 --workers 1` in turn (as the
// soak and big-prompt benchmarks start theirs, bench/lib/router-load.ts), warms it up, and holds wrk
// (autocannon where wrk is absent) on it for S seconds. Per round and checkout it prints req/s, p50, p99,
// and the router's main-thread CPU per request and busy share (from /proc, Linux only); then the medians.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { packageRoot } from "../src/util/package-root.js";
import { fixed, machineLine, printTable } from "./lib/report.js";
import { startRouter } from "./lib/router-load.js";
import { peak, type Load } from "./serve/drivers.js";
import { idsBody } from "./serve/loads.js";
import { steady } from "./serve/steady.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { rounds: { type: "string", default: "5" }, seconds: { type: "string", default: "6" }, rate: { type: "string" }, warm: { type: "string", default: "0" } },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const usage = (message: string): never => {
  console.error(`bench:serve-ab: ${message}`);
  process.exit(2);
};
if (!(Number.isInteger(rounds) && rounds > 0)) usage(`--rounds must be a whole number above 0, got ${values.rounds}`);
if (!(seconds > 0)) usage(`--seconds must be a number above 0, got ${values.seconds}`);
const warm = Number(values.warm);
if (!(warm >= 0)) usage(`--warm must be a number of seconds of at least 0, got ${values.warm}`);
const rate = values.rate === undefined ? null : Number(values.rate);
if (rate !== null && !(rate > 0)) usage(`--rate must be a number of requests a second above 0, got ${values.rate}`);
const roots = [packageRoot(), ...positionals.map((p) => resolve(p))];
for (const root of roots) {
  if (!existsSync(`${root}/dist/src/cli/main.js`)) usage(`${root} has no dist/src/cli/main.js: run npm install (or npm run build) there first`);
}

/** CPU ticks (1/100 s) of a process's main thread and of all its threads, from /proc; null off Linux. */
function ticks(pid: number): { main: number; all: number } | null {
  const dir = `/proc/${pid}/task`;
  if (!existsSync(dir)) return null;
  let main = 0;
  let all = 0;
  for (const tid of readdirSync(dir)) {
    // Fields after the command name's closing parenthesis: utime and stime are the 12th and 13th.
    const fields = readFileSync(`${dir}/${tid}/stat`, "utf8").split(") ")[1]!.split(" ");
    const used = Number(fields[11]) + Number(fields[12]);
    all += used;
    if (Number(tid) === pid) main = used;
  }
  return { main, all };
}

interface Sample {
  load: Load;
  /** Main-thread CPU per request (µs) and its busy share (%); null off Linux. */
  mainUs: number | null;
  busy: number | null;
}

const loadName = rate === null ? "peak" : `${rate} req/s evenly paced`;
const warmed = warm > 0 ? `, each router first held at its peak for ${warm} s` : "";
console.log(`bench:serve-ab  ${rounds} rounds of ${seconds} s at ${loadName}${warmed}, 32 connections, 256 token ids, max_tokens 1; ${machineLine()}`);
const samples = new Map<string, Sample[]>(roots.map((r) => [r, []]));
const rows: string[][] = [];
for (let round = 1; round <= rounds; round++) {
  // Each round runs the checkouts in the other order, so that neither always follows the other's load.
  for (const root of round % 2 === 1 ? roots : [...roots].reverse()) {
    const router = await startRouter(["--sim", "4", "--sim-speedup", "0", "--log-level", "warn", "--workers", "1"], {}, root);
    const url = `${router.url}/v1/completions`;
    try {
      await peak(url, idsBody(), Math.min(2, seconds), 32);
      if (warm > 0) await peak(url, idsBody(), warm, 32);
      const before = ticks(router.child.pid!);
      const load = rate === null ? await peak(url, idsBody(), seconds, 32) : await steady(url, idsBody(), seconds, 32, rate);
      const after = ticks(router.child.pid!);
      const used = before && after ? (after.main - before.main) * 10 : null; // ms of main-thread CPU
      const sample: Sample = { load, mainUs: used === null ? null : (used * 1000) / (load.rps * seconds), busy: used === null ? null : used / (10 * seconds) };
      samples.get(root)!.push(sample);
      rows.push([String(round), root, fixed(load.rps, 0), fixed(load.p50, 2), fixed(load.p99, 2), sample.mainUs === null ? "" : fixed(sample.mainUs, 1), sample.busy === null ? "" : `${fixed(sample.busy, 0)}%`]);
    } finally {
      await router.stop();
    }
  }
}
const header = ["round", "checkout", "req/s", "p50", "p99", "main µs/req", "main busy"];
printTable("each round", header, rows);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
printTable(
  "medians",
  header.slice(1),
  roots.map((root) => {
    const s = samples.get(root)!;
    const cpu = s.filter((x) => x.mainUs !== null);
    return [
      root,
      fixed(median(s.map((x) => x.load.rps)), 0),
      fixed(median(s.map((x) => x.load.p50)), 2),
      fixed(median(s.map((x) => x.load.p99)), 2),
      cpu.length ? fixed(median(cpu.map((x) => x.mainUs!)), 1) : "",
      cpu.length ? `${fixed(median(cpu.map((x) => x.busy!)), 0)}%` : "",
    ];
  }),
);
