// Starts `kvroute serve` as a user would, as a child process, and talks HTTP to it.
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { distFile } from "../../src/util/package-root.js";

export { metric } from "../../bench/lib/router-load.js";

export interface RunningRouter {
  url: string;
  child: ChildProcess;
  /** Parsed JSON log lines so far. */
  logs: Record<string, unknown>[];
  stderr(): string;
  stop(): Promise<number | null>;
}

export async function startRouterProcess(args: string[]): Promise<RunningRouter> {
  const child = spawn(process.execPath, [distFile("src/cli/main.js"), "serve", "--port", "0", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const logs: Record<string, unknown>[] = [];
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kvroute serve did not start within 30 s:\n${stderr}`)), 30_000);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === "kvroute listening") {
        clearTimeout(timer);
        resolve(entry.url as string);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`kvroute serve exited (${code}) before listening:\n${stderr}`));
    });
  });
  return {
    url,
    child,
    logs,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

export interface SseResult {
  status: number;
  headers: Headers;
  frames: unknown[];
  done: boolean;
}

/** POSTs and reads a whole server-sent-event stream. */
export async function postSse(url: string, body: unknown, headers: Record<string, string> = {}): Promise<SseResult> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  const text = await res.text();
  if (res.status !== 200) return { status: res.status, headers: res.headers, frames: [JSON.parse(text)], done: false };
  const frames: unknown[] = [];
  let done = false;
  for (const block of text.split("\n\n")) {
    if (block === "") continue;
    if (!block.startsWith("data: ")) throw new Error(`not an SSE data frame: ${JSON.stringify(block)}`);
    const data = block.slice(6);
    if (data === "[DONE]") done = true;
    else frames.push(JSON.parse(data));
  }
  return { status: res.status, headers: res.headers, frames, done };
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: any }> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });
  return { status: res.status, headers: res.headers, json: await res.json() };
}

/**
 * `n` token ids of prompt family `family`: prompts of different families share no block, and the same
 * family always gives the same ids (a prefix of a longer prompt of its family).
 */
export function tokenPrompt(n: number, family = 1): number[] {
  return Array.from({ length: n }, (_, i) => (family * 7919 + i * 104_729) % 150_000);
}

/** A POST whose client leaves when `leave` is called: `outcome` is the answer's status, or the abort's error name. */
export function postLeaving(url: string, body: unknown): { leave: () => void; outcome: Promise<number | string> } {
  const client = new AbortController();
  const outcome = fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal: client.signal }).then(
    (res) => res.status,
    (err: Error) => err.name,
  );
  return { leave: () => client.abort(), outcome };
}

/** Polls `probe` until it returns a value (bounded: gives up after `timeoutMs`). */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits until the router's /health shows every engine up. */
export async function untilEnginesUp(base: string): Promise<void> {
  await until("every engine up", async () => {
    const health = (await (await fetch(`${base}/health`)).json()) as { engines: { state: string }[] };
    return health.engines.length > 0 && health.engines.every((e) => e.state === "up") ? true : undefined;
  });
}
