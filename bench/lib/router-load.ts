// What the soak run and the end-to-end tests of hostile prompts share: a real `kvroute serve` process, its
// resident memory, prompts of megabytes, small chats timed from the client's side, and raw HTTP for bodies
// too big to build at send time.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { packageRoot } from "../../src/util/package-root.js";

export const MODEL = "Qwen/Qwen3-0.6B";

export interface RouterProcess {
  url: string;
  child: ChildProcess;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/**
 * glibc's malloc, as docs/operations.md recommends for the router: blocks over 128 KiB always mapped on
 * their own, so that a freed 15 MB body goes back to the system. (By default glibc raises that threshold
 * to the size of the largest block freed, up to 32 MiB, and later big blocks then stay in its heaps.)
 */
export const FIXED_MMAP_THRESHOLD: NodeJS.ProcessEnv = { MALLOC_MMAP_THRESHOLD_: "131072" };

/**
 * `kvroute serve --port 0 ...args` as a child process, with `env` added to this process's environment, once
 * it listens: the welcome it prints on stderr, whatever the log level, says where. Its stdout (the JSON log) is drained and dropped.
 * `root` is the built checkout of kvroute to run (default: this one).
 */
export async function startRouter(args: string[], env: NodeJS.ProcessEnv = FIXED_MMAP_THRESHOLD, root = packageRoot()): Promise<RouterProcess> {
  const child = spawn(process.execPath, [join(root, "dist", "src", "cli", "main.js"), "serve", "--port", "0", ...args], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  child.stdout!.resume();
  let stderr = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kvroute serve did not start within 30 s:\n${stderr}`)), 30_000);
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      const serving = / at (http:\/\/\S+)\n/.exec(stderr);
      if (serving) {
        clearTimeout(timer);
        resolve(serving[1]!);
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
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

/** A process's resident memory in MB, from /proc (Linux); null where there is no /proc. */
export function rssMb(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(status);
    return kb ? Number(kb[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** Why resident memory cannot be read here, or null when it can. */
export function rssUnavailable(): string | null {
  return rssMb(process.pid) === null ? `resident memory is read from /proc/PID/status, which ${process.platform} does not have` : null;
}

const WORDS = ("the router sends each request to the engine that already holds the longest prefix of its prompt in the " +
  "cache weighed against load blocks hashes tokens engines fleet prefill decode stream client server latency memory").split(" ");

/**
 * About `chars` characters of English-like text, different for each `seed`: words drawn by a small PRNG,
 * with numbers, so the tokenizer's caches see little repetition (about 4.6 characters per token).
 */
export function hugeText(chars: number, seed = 1): string {
  let x = (seed * 2654435761) >>> 0 || 1;
  const next = () => (x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
  const parts: string[] = [];
  let length = 0;
  while (length < chars) {
    const r = next();
    const word = r % 7 === 0 ? String(r % 100_000) : WORDS[r % WORDS.length]!;
    parts.push(word);
    length += word.length + 1;
  }
  return parts.join(" ").slice(0, chars);
}

/** A JSON request body, built ahead of sending (building 15 MB of JSON at send time would stall the client). */
export function jsonBody(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

export interface Answer {
  status: number;
  /** The response body, parsed when it is JSON. */
  body: unknown;
  ms: number;
}

/**
 * POSTs a prepared body with node:http on a fresh connection. Resolves with the answer, or with null when
 * `signal` aborts first (the connection is closed: the client left).
 */
export function post(url: string, path: string, body: Buffer, signal?: AbortSignal): Promise<Answer | null> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method: "POST", agent: false, headers: { "content-type": "application/json", "content-length": body.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // SSE or text: kept as it is
        }
        resolve({ status: res.statusCode ?? 0, body: parsed, ms: performance.now() - started });
      });
      res.on("error", reject);
    });
    const onAbort = () => {
      req.destroy();
      resolve(null);
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    req.on("error", (err) => (signal?.aborted ? resolve(null) : reject(err)));
    req.on("close", () => signal?.removeEventListener("abort", onAbort));
    req.end(body);
  });
}

/** A one-line chat with max_tokens 1, different each time (no cache hit makes it cheaper). */
export function smallChatBody(n: number): Buffer {
  return jsonBody({ model: MODEL, messages: [{ role: "user", content: `Small question number ${n}: what is a block?` }], max_tokens: 1 });
}

/**
 * Sends a small chat every `everyMs` (without waiting for the previous one) until `stop` resolves, and
 * returns every answer, in the order they were sent.
 */
export async function probeWhile(url: string, stop: Promise<unknown>, everyMs: number): Promise<Answer[]> {
  const answers: Promise<Answer | null>[] = [];
  let done = false;
  void stop.finally(() => (done = true));
  for (let n = 0; !done; n++) {
    answers.push(post(url, "/v1/chat/completions", smallChatBody(n)));
    await Promise.race([new Promise((resolve) => setTimeout(resolve, everyMs)), stop.catch(() => undefined)]);
  }
  return (await Promise.all(answers)).filter((a): a is Answer => a !== null);
}

/** One Prometheus sample's value from /metrics text (0 when absent). */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== " " && rest[0] !== "{") continue;
    if (want.every((w) => rest.includes(w))) return Number(line.split(" ").at(-1));
  }
  return 0;
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
