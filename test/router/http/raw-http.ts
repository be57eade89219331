// HTTP/1.1 over a raw socket (node:net), for requests no HTTP client library would send: pipelined,
// HTTP/1.0, duplicate headers, bodies trickled byte by byte. Responses are parsed here, simply.
import { connect, type Socket } from "node:net";

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface RawResult {
  responses: RawResponse[];
  /** The server closed the connection (before the timeout). */
  closed: boolean;
  /** Milliseconds from connecting to the close, or to giving up. */
  elapsedMs: number;
}

export interface RawOptions {
  /** Resolve once this many responses are parsed (default: wait for the close or the timeout). */
  responses?: number;
  /** Give up after this long (default 5 s). */
  timeoutMs?: number;
  /** Indexes of responses to HEAD requests: they have headers only, whatever their content-length. */
  bodyless?: number[];
}

export function openSocket(port: number, host = "127.0.0.1"): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Reads responses from `socket` while `send` writes to it. */
export function exchange(socket: Socket, send: (socket: Socket) => Promise<void> | void, options: RawOptions = {}): Promise<RawResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    let buffer = Buffer.alloc(0);
    const responses: RawResponse[] = [];
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeAllListeners("data");
      resolve({ responses, closed, elapsedMs: performance.now() - started });
    };
    const timer = setTimeout(() => finish(false), options.timeoutMs ?? 5_000);
    socket.on("error", () => undefined);
    socket.on("close", () => finish(true));
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const parsed = parseResponse(buffer, options.bodyless?.includes(responses.length) ?? false);
        if (!parsed) break;
        responses.push(parsed.response);
        buffer = buffer.subarray(parsed.used);
      }
      if (options.responses !== undefined && responses.length >= options.responses) finish(false);
    });
    void Promise.resolve(send(socket)).catch(() => undefined);
  });
}

/** Connects, writes `payload` (all at once), and reads the answers. */
export async function raw(port: number, payload: string | Buffer, options: RawOptions = {}): Promise<RawResult> {
  const socket = await openSocket(port);
  try {
    return await exchange(socket, (s) => void s.write(payload), options);
  } finally {
    socket.destroy();
  }
}

function parseResponse(buffer: Buffer, bodyless: boolean): { response: RawResponse; used: number } | null {
  const end = buffer.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const [statusLine, ...lines] = buffer.subarray(0, end).toString("latin1").split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine!)?.[1]);
  if (!Number.isInteger(status)) throw new Error(`not an HTTP response: ${JSON.stringify(statusLine)}`);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  let at = end + 4;
  if (bodyless) return { response: { status, headers, body: "" }, used: at };
  if (headers["transfer-encoding"] === "chunked") {
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = buffer.indexOf("\r\n", at);
      if (lineEnd < 0) return null;
      const size = parseInt(buffer.subarray(at, lineEnd).toString("latin1"), 16);
      if (buffer.length < lineEnd + 2 + size + 2) return null;
      parts.push(buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
      if (size === 0) break;
    }
    return { response: { status, headers, body: Buffer.concat(parts).toString("utf8") }, used: at };
  }
  const length = Number(headers["content-length"] ?? 0);
  if (buffer.length < at + length) return null;
  return { response: { status, headers, body: buffer.subarray(at, at + length).toString("utf8") }, used: at + length };
}

export function post(path: string, body: string, extraHeaders = ""): string {
  return `POST ${path} HTTP/1.1\r\nHost: kvroute\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extraHeaders}\r\n${body}`;
}

export function get(path: string, method = "GET"): string {
  return `${method} ${path} HTTP/1.1\r\nHost: kvroute\r\n\r\n`;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
