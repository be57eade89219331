// Load generators for bench:serve. Peak load: wrk where installed (one thread, in C: it leaves more of
// the two cores to the servers than a Node.js client would), else autocannon. A held rate: autocannon
// (bursts each second, see steady.ts) and steady.ts (evenly paced).
import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import { bodyOf, wrkScript, type Body } from "./loads.js";

export interface Load {
  rps: number;
  p50: number;
  p99: number;
  /** Non-2xx answers and socket errors. */
  errors: number;
}

export function hasWrk(): boolean {
  return spawnSync("wrk", ["--version"]).error === undefined;
}

/** Numbers requests across runs, so that a per-request body is never sent twice in one bench. */
let nextRequest = 1;
/** More than any run sends (wrk -t1 does not reach 10 million requests in a bench row). */
const NUMBERS_PER_RUN = 10_000_000;

export function takeNumbers(): number {
  const first = nextRequest;
  nextRequest += NUMBERS_PER_RUN;
  return first;
}

export function wrk(url: string, body: Body, seconds: number, connections: number): Load {
  const script = join(tmpdir(), `kvroute-bench-${process.pid}.lua`);
  writeFileSync(script, wrkScript(body, takeNumbers()));
  try {
    const out = spawnSync("wrk", ["-t1", `-c${connections}`, `-d${seconds}s`, "--latency", "-s", script, url], { encoding: "utf8" });
    if (out.status !== 0) throw new Error(`wrk failed: ${out.stderr}`);
    return parseWrk(out.stdout);
  } finally {
    rmSync(script, { force: true });
  }
}

function parseWrk(text: string): Load {
  const ms = (label: string) => {
    const m = new RegExp(`^\\s*${label}%\\s+([\\d.]+)(us|ms|s)`, "m").exec(text);
    if (!m) throw new Error(`wrk printed no ${label}% latency:\n${text}`);
    return Number(m[1]) * (m[2] === "us" ? 0.001 : m[2] === "s" ? 1000 : 1);
  };
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  if (!rps) throw new Error(`wrk printed no Requests/sec:\n${text}`);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  return {
    rps: Number(rps[1]),
    p50: ms("50"),
    p99: ms("99"),
    errors: Number(non2xx?.[1] ?? 0) + (socket ? socket.slice(1).reduce((n, v) => n + Number(v), 0) : 0),
  };
}

/** Load with autocannon; with `rate`, held at that many requests per second overall. */
export async function cannon(url: string, body: Body, seconds: number, connections: number, rate?: number): Promise<Load> {
  const first = takeNumbers();
  let n = first;
  const result = await autocannon({
    url,
    method: "POST",
    headers: { "content-type": "application/json" },
    ...(body.kind === "fixed"
      ? { body: body.body }
      : {
          requests: [
            {
              setupRequest: (req: autocannon.Request) => ({ ...req, body: bodyOf(body, n++) }),
            },
          ],
        }),
    connections,
    duration: seconds,
    ...(rate ? { overallRate: rate } : {}),
  });
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.non2xx };
}

/** The most a server answers: wrk where installed, else autocannon. */
export function peak(url: string, body: Body, seconds: number, connections: number): Promise<Load> {
  return hasWrk() ? Promise.resolve(wrk(url, body, seconds, connections)) : cannon(url, body, seconds, connections);
}
