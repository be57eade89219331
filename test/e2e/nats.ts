// Starts Debian's nats-server on 127.0.0.1 for the replica tests, and stops and restarts it on the same
// port. Tests that need it skip, saying why, when it is not installed; KVROUTE_REQUIRE_NATS=1 (set by
// .ci/run, which installs it) makes that a failure.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { freePort } from "./engines.js";

/** nats-server on PATH, else where Debian's package puts it (/usr/sbin is not on a normal user's PATH). */
const NATS_SERVER = ["nats-server", "/usr/sbin/nats-server"].find((command) => {
  const probe = spawnSync(command, ["--version"], { encoding: "utf8" });
  return probe.error === undefined && probe.status === 0;
});

/** Why nats-server cannot be run here, or null when it can. Throws when it is required. */
export function natsMissing(): string | null {
  if (NATS_SERVER !== undefined) return null;
  const reason = "nats-server is not installed (neither on PATH nor /usr/sbin/nats-server; install Debian's nats-server)";
  if (process.env.KVROUTE_REQUIRE_NATS === "1") throw new Error(`KVROUTE_REQUIRE_NATS=1, but ${reason}`);
  return reason;
}

export interface RunningNats {
  url: string;
  port: number;
  /** SIGKILL: the server vanishes without closing anything cleanly. */
  kill(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startNats(): Promise<RunningNats> {
  const port = await freePort();
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  const start = async () => {
    let stderr = "";
    if (NATS_SERVER === undefined) throw new Error("nats-server is not installed");
    const c = spawn(NATS_SERVER, ["-a", "127.0.0.1", "-p", String(port)], { stdio: ["ignore", "ignore", "pipe"] });
    c.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    exited = new Promise((resolve) => c.once("exit", () => resolve()));
    child = c;
    // Ready once it accepts a connection (bounded: 10 s).
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`nats-server exited (${c.exitCode}): ${stderr}`);
      if (await accepts(port)) return;
      if (Date.now() > deadline) throw new Error(`nats-server did not start within 10 s: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const signal = async (sig: NodeJS.Signals) => {
    const c = child as ChildProcess | null;
    if (c !== null && c.exitCode === null && c.signalCode === null) c.kill(sig);
    await exited;
    child = null;
  };
  await start();
  return { url: `nats://127.0.0.1:${port}`, port, start, kill: () => signal("SIGKILL"), stop: () => signal("SIGTERM") };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
