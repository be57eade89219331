// Starts the two real engines as child processes: the simulator through the CLI, and the Python vLLM
// worker (on its fake AsyncLLM) through KVROUTE_PYTHON, by default Debian's python3, which has
// python3-msgpack.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { decodeBody, encodeFrame, FrameDecoder, type WireMessage } from "../../src/index.js";
import { distFile, packageRoot } from "../../src/util/package-root.js";

/** The interpreter that runs the worker: KVROUTE_PYTHON, else /usr/bin/python3 where it exists, else python3. */
export const PYTHON = process.env.KVROUTE_PYTHON || (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");

function workerPythonPath(): string {
  const python = join(packageRoot(), "python");
  return `${python}:${join(python, "tests", "fake_vllm")}`;
}

/**
 * Null when PYTHON can import what the worker needs to run on the fake AsyncLLM, else why not, naming
 * the missing module (the last line of the import's traceback, or the interpreter that is not there).
 */
export function workerUnavailable(): string | null {
  const probe = spawnSync(PYTHON, ["-c", "import kvroute_vllm.main, kvroute_vllm.server, kvroute_vllm.vllm_engine, vllm"], {
    env: { ...process.env, PYTHONPATH: workerPythonPath() },
    encoding: "utf8",
    timeout: 30_000,
  });
  if (probe.error) return `${PYTHON} cannot be run: ${probe.error.message}`;
  if (probe.status === 0) return null;
  const lines = probe.stderr.trim().split("\n");
  return `${PYTHON} cannot import the worker's modules: ${lines[lines.length - 1] ?? `exit status ${probe.status}`}`;
}

export interface RunningEngine {
  url: string;
  port: number;
  /** The KV-event publisher's endpoint, when the engine has one. */
  kvEvents: string | null;
  replay: string | null;
  child: ChildProcess;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

async function start(command: string, args: string[], env: NodeJS.ProcessEnv, scheme: "tcp" | "http" = "tcp"): Promise<RunningEngine> {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const lines = createInterface({ input: child.stdout! });
  const ready = await new Promise<{ url: string; kv_events?: string | null; replay?: string | null }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} did not start within 20 s: ${stderr}`)), 20_000);
    lines.once("line", (line) => {
      clearTimeout(timer);
      resolve(JSON.parse(line) as { url: string; kv_events?: string | null; replay?: string | null });
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited (${code}) before listening: ${stderr}`));
    });
  });
  lines.close();
  const port = Number(/:(\d+)$/.exec(ready.url)![1]);
  return {
    url: `${scheme}://127.0.0.1:${port}`,
    port,
    kvEvents: ready.kv_events ?? null,
    replay: ready.replay ?? null,
    child,
    stderr: () => stderr,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** `kvroute sim`, slowed so a long stream can be interrupted: a decode step takes a few milliseconds. */
export function startSimProcess(extra: string[] = []): Promise<RunningEngine> {
  return start(process.execPath, [distFile("src/cli/main.js"), "sim", "--port", "0", "--speedup", "0.5", "--kv-events", "none", ...extra], {});
}

/** `kvroute sim --http`, the stock `vllm serve` stand-in, with KV events on ZMQ unless told otherwise. */
export function startHttpSimProcess(extra: string[] = []): Promise<RunningEngine> {
  return start(process.execPath, [distFile("src/cli/main.js"), "sim", "--http", ...extra], {}, "http");
}

/** A TCP port free at the time of asking, for an engine that must come back on the same one. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** `python -m kvroute_vllm` on the fake AsyncLLM, with a few milliseconds per token. */
export function startWorkerProcess(extra: string[] = []): Promise<RunningEngine> {
  return start(
    PYTHON,
    ["-m", "kvroute_vllm", "--model", "fake/model", "--host", "127.0.0.1", "--port", "0", "--max-model-len", "32768", "--log-level", "WARNING", ...extra],
    { PYTHONPATH: workerPythonPath(), FAKE_VLLM_TOKEN_DELAY_MS: "4" },
  );
}

/** A raw protocol connection, to send what a well-behaved client never would. */
export class RawConnection {
  private readonly decoder = new FrameDecoder();
  readonly frames: Array<Record<string, unknown>> = [];
  readonly closed: Promise<void>;
  private waiters: Array<() => void> = [];

  private constructor(private readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      for (const frame of this.decoder.push(chunk)) this.frames.push(decodeBody(frame) as Record<string, unknown>);
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
    socket.on("error", () => undefined);
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port }, () => resolve(new RawConnection(socket)));
      socket.once("error", reject);
    });
  }

  send(message: WireMessage | Record<string, unknown>): void {
    this.socket.write(encodeFrame(message as WireMessage));
  }

  sendRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Waits (bounded) until a frame matching `test` has arrived. */
  async waitFor(test: (frame: Record<string, unknown>) => boolean, timeoutMs = 5000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find(test);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames)}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
