// npm run bench:replicas: one router against two replicas, on the same trace and the same simulated engines,
// with NATS and without it, in event mode (the routers follow the engines' KV events) and in approximate mode
// (the routers are given kv=none and predict the caches from their own decisions). Every row starts fresh
// engines (empty caches) and fresh routers, then replays the first BENCH_REQUESTS requests of the trace with
// `kvroute replay`, spread over the routers in turn (--target URL1,URL2), and reads its summary.
//
// Needs Debian's nats-server (on PATH or in /usr/sbin). The trace is the first argument (or BENCH_TRACE);
// BENCH_REQUESTS (default 600), BENCH_SPEEDUP (trace and engines, default 4), BENCH_ENGINES (default 4),
// BENCH_BLOCKS (KV blocks per engine, default 27,648: an H100 serving an 8B model, as `kvroute simulate`
// assumes; the simulator's own default of 8,192 turns the caches over so fast that little but the trace's
// shared first block hits, whatever the routing).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { startSimulatorThread } from "../src/mock-engine/index.js";
import type { ReplaySummary } from "../src/tools/replay/index.js";
import { distFile } from "../src/util/package-root.js";
import { freePort, listening } from "./lib/net.js";
import { fixed, machineLine, printTable } from "./lib/report.js";

const TRACE = process.env.BENCH_TRACE;
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 600);
const SPEEDUP = Number(process.env.BENCH_SPEEDUP ?? 4);
const ENGINES = Number(process.env.BENCH_ENGINES ?? 4);
const BLOCKS = Number(process.env.BENCH_BLOCKS ?? 27_648);
const MAIN = distFile("src/cli/main.js");

type Mode = "events" | "approx";
interface Setup {
  routers: 1 | 2;
  nats: boolean;
}

async function router(engines: string[], mode: Mode, nats: string | null): Promise<{ url: string; child: ChildProcess }> {
  const specs = engines.flatMap((url, i) => ["--engine", `${url},name=sim-${i}${mode === "approx" ? ",kv=none" : ""}`]);
  const child = spawn(process.execPath, [MAIN, "serve", "--port", "0", "--workers", "1", "--log-level", "warn", ...specs, ...(nats ? ["--nats", nats] : [])], { stdio: ["ignore", "pipe", "pipe"] });
  let url = "";
  // At --log-level warn the "listening" line is not logged; the welcome text on stderr has the URL.
  await new Promise<void>((resolve, reject) => {
    let stderr = "";
    child.stderr!.on("data", (c: Buffer) => {
      stderr += c.toString();
      const m = /serving .* at (http:\/\/[^\s]+)/.exec(stderr);
      if (m && url === "") {
        url = m[1]!;
        resolve();
      }
    });
    child.stdout!.resume();
    child.once("exit", (code) => reject(new Error(`kvroute serve exited with ${code}: ${stderr}`)));
  });
  // Serving once every engine is up.
  for (const deadline = Date.now() + 30_000; ; ) {
    const health = (await (await fetch(`${url}/health`)).json()) as { engines: { state: string }[]; replication?: { peers: unknown[] } };
    if (health.engines.every((e) => e.state === "up")) break;
    if (Date.now() > deadline) throw new Error(`${url}: engines not up within 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, child };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

async function row(trace: string, mode: Mode, setup: Setup, nats: string | null): Promise<{ summary: ReplaySummary; load: number }> {
  const sims = await startSimulatorThread(ENGINES, { speedup: SPEEDUP, numBlocks: BLOCKS });
  const engines = sims.engines.map((e) => e.url);
  const routers = await Promise.all(Array.from({ length: setup.routers }, () => router(engines, mode, setup.nats ? nats : null)));
  if (setup.nats) {
    // Replicas that have heard from each other.
    for (const r of routers) {
      for (const deadline = Date.now() + 15_000; ; ) {
        const h = (await (await fetch(`${r.url}/health`)).json()) as { replication: { peers: unknown[] } };
        if (h.replication.peers.length === setup.routers - 1) break;
        if (Date.now() > deadline) throw new Error("replicas did not find each other within 15 s");
        await new Promise((res) => setTimeout(res, 100));
      }
    }
  }
  const out = mkdtempSync(join(tmpdir(), "kvroute-bench-replicas-"));
  const before = loadavg()[0]!;
  const replay = spawnSync(
    process.execPath,
    [MAIN, "replay", "--trace", trace, "--target", routers.map((r) => r.url).join(","), "--speedup", String(SPEEDUP), "--max-requests", String(REQUESTS), "--json", "--quiet", "--out", out],
    { encoding: "utf8", maxBuffer: 64 << 20 },
  );
  const load = (before + loadavg()[0]!) / 2;
  await Promise.all(routers.map((r) => stop(r.child)));
  await sims.close();
  if (replay.status !== 0) throw new Error(`kvroute replay failed (${replay.status}): ${replay.stderr}`);
  const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8")) as ReplaySummary;
  rmSync(out, { recursive: true, force: true });
  // Refusals (HTTP 400 for prompts beyond the engines' context) are expected; anything else is shown.
  for (const e of summary.requests.firstErrors.filter((e) => e.kind !== "http")) console.error(`request ${e.index}: ${e.kind}: ${e.message}`);
  return { summary, load };
}

async function main(): Promise<void> {
  const trace = TRACE ?? process.argv[2];
  if (!trace) throw new Error("give the trace: BENCH_TRACE=FILE npm run bench:replicas (the Mooncake conversation trace)");
  // /usr/sbin, where Debian puts it, is not on a normal user's PATH.
  const natsServer = ["nats-server", "/usr/sbin/nats-server"].find((c) => spawnSync(c, ["--version"]).error === undefined);
  if (natsServer === undefined) throw new Error("nats-server is not installed (Debian: apt-get install nats-server)");
  const port = await freePort();
  const natsChild = spawn(natsServer, ["-a", "127.0.0.1", "-p", String(port)], { stdio: "ignore" });
  await listening(port);
  const nats = `nats://127.0.0.1:${port}`;
  console.log(machineLine());
  console.log(`${REQUESTS} requests of ${trace} at ${SPEEDUP}x, ${ENGINES} simulated engines (${BLOCKS} blocks each, other settings default) at ${SPEEDUP}x; one row at a time\n`);
  const setups: [string, Setup][] = [
    ["one router", { routers: 1, nats: false }],
    ["two replicas, no NATS", { routers: 2, nats: false }],
    ["two replicas, NATS", { routers: 2, nats: true }],
  ];
  const rows: string[][] = [];
  try {
    for (const mode of ["events", "approx"] as Mode[]) {
      for (const [name, setup] of setups) {
        const { summary: s, load } = await row(trace, mode, setup, nats);
        const perEngine = Object.values(s.engines);
        const mean = perEngine.reduce((a, b) => a + b, 0) / Math.max(1, perEngine.length);
        rows.push([
          mode === "events" ? "KV events" : "approximate",
          name,
          `${s.requests.succeeded} / ${s.requests.failed}`,
          Object.entries(s.requests.errorsByKind).map(([kind, n]) => `${n} ${kind}`).join(", ") || "-",
          s.cache.hitRatio === null ? "n/a" : `${fixed(s.cache.hitRatio * 100, 2)}%`,
          fixed(s.latency.ttft.p50Ms, 0),
          fixed(s.latency.ttft.meanMs, 0),
          fixed(s.latency.ttft.p99Ms, 0),
          `${fixed(Math.max(...perEngine) / mean, 2)}x`,
          fixed(load, 1),
        ]);
        console.error(`done: ${mode}, ${name}`);
      }
    }
  } finally {
    natsChild.kill("SIGTERM");
  }
  printTable("one router against two replicas (TTFT in ms of wall time; load avg: the machine's 1-minute load average during the row)", ["index", "routers", "ok / failed", "errors", "hit ratio", "TTFT p50", "TTFT mean", "TTFT p99", "req max/mean", "load avg"], rows);
}

await main();
