// A held request rate, evenly paced and open-loop, in the manner of wrk2: request i is due at start + i /
// rate whatever happened before it, goes out on the first free keep-alive connection, and its latency
// counts from when it was due, so time spent queued behind a slow answer counts too (no coordinated
// omission). autocannon holds a rate differently: each connection sends back to back until its share of
// the second is used, then waits for the next second, so "half the peak" is full load for half of every
// second; and it then adds synthetic samples for every millisecond a response took beyond 1 ms.
//
// The client is raw TCP with a minimal HTTP/1.1 reader (status line, Content-Length), enough for the
// servers of bench:serve and cheap enough to leave the cores to them.
import { connect, type Socket } from "node:net";
import { bodyOf, type Body } from "./loads.js";
import { takeNumbers, type Load } from "./drivers.js";

interface Connection {
  socket: Socket;
  /** The due time of the request in flight on it; null when it is free. */
  due: number | null;
  buffered: Buffer;
}

/** Holds `rate` requests per second to `url` for `seconds`, over at most `connections` connections. */
export async function steady(url: string, body: Body, seconds: number, connections: number, rate: number): Promise<Load> {
  const target = new URL(url);
  const port = Number(target.port);
  const head = (length: number) => `POST ${target.pathname} HTTP/1.1\r\nHost: ${target.host}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;
  const fixed = body.kind === "fixed" ? Buffer.from(head(Buffer.byteLength(body.body)) + body.body) : null;
  let n = takeNumbers();
  const request = (): Buffer => {
    if (fixed) return fixed;
    const text = bodyOf(body, n++);
    return Buffer.from(head(Buffer.byteLength(text)) + text);
  };

  const latencies: number[] = [];
  let errors = 0;
  const waiting: number[] = [];
  const free: Connection[] = [];
  const send = (c: Connection, due: number) => {
    c.due = due;
    c.socket.write(request());
  };
  let lastAnswer = 0;
  const answered = (c: Connection, status: number) => {
    lastAnswer = performance.now();
    latencies.push(lastAnswer - c.due!);
    if (status < 200 || status >= 300) errors++;
    c.due = null;
    const next = waiting.shift();
    if (next !== undefined) send(c, next);
    else free.push(c);
  };

  const pool = await Promise.all(
    Array.from({ length: connections }, () => new Promise<Connection>((resolve, reject) => {
      const socket = connect({ host: target.hostname, port, noDelay: true }, () => resolve(c));
      const c: Connection = { socket, due: null, buffered: Buffer.alloc(0) };
      socket.once("error", reject);
      socket.on("data", (chunk: Buffer) => {
        c.buffered = c.buffered.length === 0 ? chunk : Buffer.concat([c.buffered, chunk]);
        for (;;) {
          const end = c.buffered.indexOf("\r\n\r\n");
          if (end < 0) return;
          const headers = c.buffered.subarray(0, end).toString("latin1");
          const length = /\r\ncontent-length:\s*(\d+)/i.exec(headers);
          if (!length) throw new Error(`steady: an answer without Content-Length from ${url}:\n${headers}`);
          const total = end + 4 + Number(length[1]);
          if (c.buffered.length < total) return;
          c.buffered = c.buffered.subarray(total);
          answered(c, Number(headers.slice(9, 12)));
        }
      });
    })),
  );
  free.push(...pool);

  const start = performance.now();
  const total = Math.round(seconds * rate);
  let issued = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (issued < total && start + (issued * 1000) / rate <= now) {
        const due = start + (issued * 1000) / rate;
        issued++;
        const c = free.pop();
        if (c) send(c, due);
        else waiting.push(due);
      }
      // Every millisecond: the requests due meanwhile go out together, and the client sleeps in between.
      if (issued < total) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  // Let the last answers come in (bounded).
  const deadline = performance.now() + 10_000;
  while (latencies.length < total && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  for (const c of pool) c.socket.destroy();
  const sorted = latencies.sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
  return { rps: latencies.length / ((lastAnswer - start) / 1000), p50: at(50), p99: at(99), errors: errors + (total - latencies.length) };
}
