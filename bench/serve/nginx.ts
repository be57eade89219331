// An nginx reverse proxy in front of the bare server, as the yardstick for what a proxy costs: one worker
// process, HTTP/1.1 with kept-alive connections to the upstream, no access log. Its files (configuration,
// pid, temp folders, error log) live in a fresh temporary folder, removed when it stops.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../lib/net.js";

export interface Nginx {
  port: number;
  stop(): void;
}

/** The nginx binary, or null when none is installed (Debian: nginx-light). */
export function findNginx(): string | null {
  for (const bin of ["nginx", "/usr/sbin/nginx"]) {
    if (spawnSync(bin, ["-v"]).error === undefined) return bin;
  }
  return null;
}

export async function startNginx(bin: string, upstreamPort: number): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), "kvroute-bench-nginx-"));
  const port = await freePort();
  const conf = join(dir, "nginx.conf");
  writeFileSync(
    conf,
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  upstream bare {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://bare;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
  );
  // -e: the error log before the configuration is read (Debian's default path may not be writable).
  const child: ChildProcess = spawn(bin, ["-p", dir, "-c", conf, "-e", join(dir, "error.log")], { stdio: ["ignore", "ignore", "inherit"] });
  const stop = () => {
    child.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, child);
  } catch (err) {
    stop();
    throw err;
  }
  return { port, stop };
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  let exited: number | null = null;
  child.once("exit", (code) => (exited = code ?? -1));
  for (let i = 0; i < 100; i++) {
    if (exited !== null) throw new Error(`nginx exited with ${exited} before it listened`);
    const ok = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: "{}" }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not answer on port ${port} within 5 s`);
}
