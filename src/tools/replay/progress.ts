// The live view of a running replay on stderr: a redrawn bar on a terminal, a line every few seconds in a
// log, or one JSON object a line for machines.
import { int } from "./format.js";

export interface ProgressCounts {
  sent: number;
  done: number;
  errors: number;
  outputTokens: number;
  /** Fraction of the work done (0..1) when it can be known. */
  fraction: number | undefined;
}

export type ProgressMode = "bar" | "lines" | "json" | "off";

interface Sample {
  atMs: number;
  done: number;
  outputTokens: number;
}

/** Rates are measured over the last few seconds, so they show the current pace rather than the average. */
const RATE_WINDOW_MS = 5_000;

export class Progress {
  #timer: NodeJS.Timeout | undefined;
  #samples: Sample[] = [];
  #start = performance.now();
  #drawn = false;

  constructor(
    private readonly out: NodeJS.WritableStream & { columns?: number },
    private readonly mode: ProgressMode,
    private readonly read: () => ProgressCounts,
  ) {}

  start(): void {
    if (this.mode === "off") return;
    this.#start = performance.now();
    const c = this.read();
    this.#samples = [{ atMs: this.#start, done: c.done, outputTokens: c.outputTokens }];
    const every = this.mode === "bar" ? 250 : this.mode === "json" ? 1_000 : 5_000;
    this.#timer = setInterval(() => this.#tick(), every);
    this.#timer.unref();
  }

  /** Draws a last time and leaves the line in place. */
  stop(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#tick();
    if (this.mode === "bar" && this.#drawn) this.out.write("\n");
  }

  #tick(): void {
    const now = performance.now();
    const c = this.read();
    this.#samples.push({ atMs: now, done: c.done, outputTokens: c.outputTokens });
    while (this.#samples.length > 2 && now - this.#samples[0]!.atMs > RATE_WINDOW_MS) this.#samples.shift();
    const first = this.#samples[0]!;
    const span = (now - first.atMs) / 1000;
    const requestsPerSec = span > 0 ? (c.done - first.done) / span : 0;
    const tokensPerSec = span > 0 ? (c.outputTokens - first.outputTokens) / span : 0;
    const elapsedSec = (now - this.#start) / 1000;
    if (this.mode === "json") {
      const line = { event: "progress", elapsedSec: round(elapsedSec), sent: c.sent, done: c.done, inFlight: c.sent - c.done, errors: c.errors, requestsPerSec: round(requestsPerSec), outputTokensPerSec: round(tokensPerSec), fraction: c.fraction === undefined ? null : round(c.fraction, 4) };
      this.out.write(`${JSON.stringify(line)}\n`);
      return;
    }
    const text = progressLine(c, requestsPerSec, tokensPerSec, elapsedSec, this.mode === "bar" ? (this.out.columns ?? 100) : undefined);
    if (this.mode === "bar") {
      this.out.write(`\r${text}\x1b[K`);
      this.#drawn = true;
    } else {
      this.out.write(`${text}\n`);
    }
  }
}

function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}


export function clockText(seconds: number): string {
  const s = Math.floor(seconds);
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

/** One status line; with `columns`, a bar fills what the counters leave of the terminal's width. */
export function progressLine(c: ProgressCounts, requestsPerSec: number, tokensPerSec: number, elapsedSec: number, columns?: number): string {
  const counters =
    `sent ${int(c.sent)}  done ${int(c.done)}  in flight ${int(c.sent - c.done)}  errors ${int(c.errors)}` +
    ` | ${requestsPerSec.toFixed(1)} req/s  ${int(tokensPerSec)} tok/s | ${clockText(elapsedSec)}`;
  if (c.fraction === undefined) return counters;
  const percent = `${Math.floor(c.fraction * 100)}%`.padStart(4);
  if (columns === undefined) return `${percent}  ${counters}`;
  const width = Math.max(0, Math.min(40, columns - counters.length - percent.length - 5));
  if (width < 5) return `${percent}  ${counters}`;
  const filled = Math.round(c.fraction * width);
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${percent}  ${counters}`;
}
