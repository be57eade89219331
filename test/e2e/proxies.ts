// Starts nginx (Debian's nginx-light) and HAProxy (Debian's haproxy) in front of a port on 127.0.0.1, with
// the settings docs/operations.md gives for kvroute. Tests that need one skip, saying why, when it is not
// installed; KVROUTE_REQUIRE_PROXIES=1 (set by .ci/run, which installs both) makes that a failure.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./engines.js";

export interface RunningProxy {
  port: number;
  stop(): Promise<void>;
}

/** The command on PATH, else where Debian puts it (/usr/sbin is not on a normal user's PATH); null if neither runs. */
function locate(command: "nginx" | "haproxy"): string | null {
  return [command, `/usr/sbin/${command}`].find((c) => spawnSync(c, ["-v"]).error === undefined) ?? null;
}

const NGINX = locate("nginx");
const HAPROXY = locate("haproxy");

/** Why `command` (from Debian's `pkg`) cannot be run here, or null when it can. Throws when it is required. */
export function proxyMissing(command: "nginx" | "haproxy", pkg: string): string | null {
  if ((command === "nginx" ? NGINX : HAPROXY) !== null) return null;
  const reason = `${command} is not installed (neither on PATH nor /usr/sbin/${command}; install ${pkg})`;
  if (process.env.KVROUTE_REQUIRE_PROXIES === "1") throw new Error(`KVROUTE_REQUIRE_PROXIES=1, but ${reason}`);
  return reason;
}

export async function startNginx(upstreamPort: number): Promise<RunningProxy> {
  const dir = mkdtempSync(join(tmpdir(), "kvroute-nginx-"));
  const port = await freePort();
  const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((kind) => `  ${kind}_temp_path ${join(dir, kind)};`).join("\n");
  writeFileSync(
    join(dir, "nginx.conf"),
    `${process.getuid?.() === 0 ? "user root;\n" : ""}worker_processes 1;
daemon off;
pid ${join(dir, "nginx.pid")};
error_log ${join(dir, "error.log")} warn;
events { worker_connections 256; }
http {
  access_log off;
${temp}
  upstream kvroute {
    server 127.0.0.1:${upstreamPort};
    keepalive 16;
    keepalive_timeout 8s;
  }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 16m;
    location / {
      proxy_pass http://kvroute;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`,
  );
  return run(NGINX!, ["-p", dir, "-c", join(dir, "nginx.conf")], dir, port, () => fetch(`http://127.0.0.1:${port}/health`).then(() => true));
}

/**
 * HAProxy with two backends on the same kvroute port, each health-checked every 200 ms: `documented`
 * with the check docs/operations.md gives (HTTP/1.1), `default` with `option httpchk`'s own (HTTP/1.0).
 * `checks()` reads each server's check status from HAProxy's stats socket.
 */
export async function startHaproxy(upstreamPort: number): Promise<RunningProxy & { checks(): Promise<Record<string, { status: string; check: string }>> }> {
  const dir = mkdtempSync(join(tmpdir(), "kvroute-haproxy-"));
  const port = await freePort();
  const socket = join(dir, "admin.sock");
  writeFileSync(
    join(dir, "haproxy.cfg"),
    `global
  stats socket ${socket} mode 600 level admin
defaults
  mode http
  timeout connect 1s
  timeout client 10s
  timeout server 10s
  timeout check 1s
frontend front
  bind 127.0.0.1:${port}
  default_backend documented
backend documented
  option httpchk
  http-check send meth GET uri /health ver HTTP/1.1 hdr Host kvroute
  server kvroute 127.0.0.1:${upstreamPort} check inter 200ms fall 1 rise 1
backend default
  option httpchk GET /health
  server kvroute 127.0.0.1:${upstreamPort} check inter 200ms fall 1 rise 1
`,
  );
  const running = await run(HAPROXY!, ["-db", "-f", join(dir, "haproxy.cfg")], dir, port, () => showStat(socket).then(() => true));
  return {
    ...running,
    async checks() {
      const rows = await showStat(socket);
      const out: Record<string, { status: string; check: string }> = {};
      for (const row of rows) if (row.svname === "kvroute") out[row.pxname!] = { status: row.status!, check: row.check_status! };
      return out;
    },
  };
}

/** HAProxy's `show stat`, one record per proxy or server. */
function showStat(socket: string): Promise<Record<string, string>[]> {
  return new Promise((resolve, reject) => {
    const conn = connect(socket);
    let text = "";
    conn.on("data", (chunk: Buffer) => (text += chunk.toString()));
    conn.on("error", reject);
    conn.on("end", () => {
      const [header, ...lines] = text.trim().split("\n");
      const names = header!.replace(/^# /, "").split(",");
      resolve(lines.map((line) => Object.fromEntries(line.split(",").map((v, i) => [names[i], v]))));
    });
    conn.end("show stat\n");
  });
}

async function run(command: string, args: string[], dir: string, port: number, ready: () => Promise<boolean>): Promise<RunningProxy> {
  const child: ChildProcess = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // Ready once it answers (bounded: 10 s).
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${command} exited (${child.exitCode}): ${stderr}`);
    if (await ready().catch(() => false)) break;
    if (Date.now() > deadline) throw new Error(`${command} did not start within 10 s: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
