// Router replicas sharing state through NATS: this replica's bookings (as deltas, and as a whole state every
// heartbeat), its approximate-mode predictions, and its view of the engines' health go out on one subject;
// the other replicas' come in, are checked (messages.ts), and feed the scheduler's peer load (peers.ts),
// the KV-event thread's approximate mode, and /health.
//
// - A replica that joins, or comes back after NATS was away, says hello: every other replica answers with
//   its state, so the newcomer knows their bookings at once. Predictions made before it joined are not
//   sent again: it learns them as they are made anew, and the old ones would have expired within the TTL.
// - While NATS is away the replica routes alone: peers' bookings are dropped at once, its own are not sent
//   (the state sent on reconnecting carries them), /health says degraded with the reason.
// - A replica not heard from for the expiry (killed, cut off) has its bookings dropped: its heartbeat
//   renews them every expiry / 3, so a live one never lapses.
// - Messages that fail the checks are dropped and counted by reason, never applied; a replica whose deltas
//   cannot be trusted (a gap, an impossible total) is asked for its state.
import { hostname } from "node:os";
import type { Logger } from "pino";
import type { EngineHandle } from "../dispatch/fleet.js";
import type { ReplicaTelemetry } from "../metrics/index.js";
import type { EngineLoad } from "../schedule/index.js";
import type { ReplicationReport } from "../types.js";
import { BookingDeltas } from "./booking-deltas.js";
import { encodeMessage, LIMITS, parseMessage, type HealthEntry, type LoadEntry, type Prediction, type ReplicaMessage } from "./messages.js";
import { NatsLink } from "./nats-link.js";
import { Peers, type Applied } from "./peers.js";

/** What the replica link needs of the rest of the router. */
export interface ReplicaParts {
  /** The fleet's engines (fixed at start) and block size. */
  engines: readonly EngineHandle[];
  blockSize: () => number | null;
  /** This replica's own bookings on an engine. */
  ownLoad: (engine: number) => EngineLoad;
  /** Where other replicas' bookings go. */
  setPeerLoad: (engine: number, load: EngineLoad | null) => void;
  /** Where other replicas' predictions for an engine in approximate mode go. */
  recordApprox: (engine: number, hashes: BigUint64Array) => void;
  telemetry: ReplicaTelemetry;
  log: Logger;
}

export interface ReplicaSyncOptions {
  /** nats://HOST:PORT (several, comma-separated, for a cluster). */
  url: string;
  /** The subject replicas of one fleet share (default "kvroute.replicas"). */
  subject?: string;
  /** A replica not heard from for this long has its bookings dropped (ms). */
  expiryMs: number;
  /** How often bookings changes are sent (ms, default 20). */
  flushMs?: number;
}

/** Bytes of predictions per approx message: well under NATS's default 1 MiB payload limit. */
const APPROX_MESSAGE_BYTES = 256 * 1024;
/** Predictions waiting to be sent beyond this are dropped (NATS slower than the router). */
const APPROX_QUEUE_BYTES = 16 * 1024 * 1024;
/** Hellos (asking every replica for its state) are sent at most this often. */
const HELLO_EVERY_MS = 250;
/** A rejected message is logged at most this often per reason. */
const LOG_EVERY_MS = 10_000;

export class ReplicaSync {
  /** This replica's name on the subject: unique per process. */
  readonly replica: string;
  readonly #o: Required<ReplicaSyncOptions>;
  readonly #parts: ReplicaParts;
  readonly #link: NatsLink;
  readonly #peers: Peers;
  readonly #deltas = new BookingDeltas();
  readonly #ids: Map<string, number>;
  readonly #timers: NodeJS.Timeout[] = [];
  #seq = 0;
  #approx: Prediction[] = [];
  #approxBytes = 0;
  #health = "";
  #lastHello = -Infinity;
  #reason: string | null = "connecting to NATS";
  readonly #logged = new Map<string, number>();

  constructor(options: ReplicaSyncOptions, parts: ReplicaParts) {
    this.#o = { subject: "kvroute.replicas", flushMs: 20, ...options };
    this.#parts = parts;
    this.replica = `${hostname().replace(/[^!-~]/g, "_").slice(0, 64)}:${process.pid}:${Math.random().toString(16).slice(2, 8)}`;
    const long = parts.engines.find((e) => e.name.length > LIMITS.nameChars);
    if (long) throw new Error(`engine names shared between replicas are at most ${LIMITS.nameChars} characters; give ${long.spec.url} a shorter name=`);
    this.#ids = new Map(parts.engines.map((e) => [e.name, e.id]));
    this.#peers = new Peers({
      expiryMs: options.expiryMs,
      onTotal: (engine, load) => {
        const id = this.#ids.get(engine);
        if (id !== undefined) parts.setPeerLoad(id, load);
      },
    });
    this.#link = new NatsLink(
      { url: this.#o.url, subject: this.#o.subject, name: `kvroute ${this.replica}` },
      {
        up: (server) => this.#up(server),
        down: (reason) => this.#down(reason),
        message: (data) => this.#receive(data),
      },
    );
  }

  start(): void {
    this.#link.start();
    const every = (ms: number, fn: () => void) => {
      const timer = setInterval(fn, ms);
      timer.unref();
      this.#timers.push(timer);
    };
    every(this.#o.flushMs, () => this.#flush());
    every(this.#o.expiryMs / 3, () => this.#sendState());
    every(Math.min(250, this.#o.expiryMs / 4), () => {
      for (const gone of this.#peers.expire(performance.now())) this.#parts.log.warn({ replica: gone }, "replica silent for the expiry: its bookings are dropped");
      this.#parts.telemetry.peers(this.#peers.size);
    });
  }

  /** This replica sent a prompt with these hashes to an engine in approximate mode: tell the others. */
  shareApprox(engine: number, hashes: BigUint64Array): void {
    if (!this.#link.connected || hashes.length === 0) return;
    if (this.#approxBytes + hashes.byteLength > APPROX_QUEUE_BYTES) {
      this.#parts.telemetry.dropped("approx_queue_full");
      return;
    }
    this.#approx.push({ engine: this.#parts.engines[engine]!.name, hashes });
    this.#approxBytes += hashes.byteLength;
  }

  report(): ReplicationReport {
    const now = performance.now();
    return {
      replica: this.replica,
      nats: this.#o.url,
      connected: this.#link.connected,
      reason: this.#reason,
      peers: this.#peers.views(now).map((p) => ({
        replica: p.replica,
        last_heard_ms: Math.round(p.lastHeardMs),
        synced: p.synced,
        engines: p.health.map((h) => ({ engine: h.engine, state: h.state, ...(h.reason !== null ? { reason: h.reason } : {}), ...(h.routing !== null ? { routing: h.routing } : {}) })),
      })),
    };
  }

  /** Says goodbye (the others drop this replica's bookings at once) and disconnects. */
  async close(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    if (this.#link.connected) this.#send({ kind: "bye", replica: this.replica, seq: this.#seq });
    await this.#link.close();
  }

  #up(server: string): void {
    this.#reason = null;
    this.#parts.telemetry.connected(true);
    this.#parts.log.info({ server, replica: this.replica, subject: this.#o.subject }, "connected to NATS: sharing load with other replicas");
    // Everyone's state, and ours: a (re)joining replica converges at once rather than at the heartbeats.
    this.#hello(true);
    this.#sendState();
  }

  #down(reason: string): void {
    this.#reason = reason;
    this.#parts.telemetry.connected(false);
    this.#parts.log.warn({ reason }, "NATS unreachable: routing alone (other replicas' load is not counted) until it is back");
    this.#peers.clear();
    this.#parts.telemetry.peers(0);
    this.#approx = [];
    this.#approxBytes = 0;
  }

  #flush(): void {
    if (!this.#link.connected) return;
    const health = this.#healthEntries();
    const key = JSON.stringify(health);
    if (key !== this.#health) {
      this.#sendState();
    } else {
      const loads = this.#deltas.deltas(this.#ownLoads());
      if (loads.length > 0) this.#send({ kind: "load", replica: this.replica, seq: this.#seq, loads });
    }
    this.#sendApprox();
  }

  #sendState(): void {
    if (!this.#link.connected) return;
    // The state carries every change since the last message: what deltas() takes as published.
    this.#deltas.deltas(this.#ownLoads());
    const health = this.#healthEntries();
    this.#health = JSON.stringify(health);
    this.#send({ kind: "state", replica: this.replica, seq: this.#seq, loads: this.#deltas.state(), health });
  }

  #sendApprox(): void {
    const blockSize = this.#parts.blockSize();
    if (this.#approx.length === 0 || blockSize === null) return;
    let batch: Prediction[] = [];
    let bytes = 0;
    const send = () => {
      this.#send({ kind: "approx", replica: this.replica, seq: this.#seq, blockSize, predictions: batch });
      batch = [];
      bytes = 0;
    };
    for (const p of this.#approx) {
      if (batch.length > 0 && (bytes + p.hashes.byteLength > APPROX_MESSAGE_BYTES || batch.length >= 4096)) send();
      batch.push(p);
      bytes += p.hashes.byteLength;
    }
    send();
    this.#approx = [];
    this.#approxBytes = 0;
  }

  #hello(now = false): void {
    const t = performance.now();
    if (!now && t - this.#lastHello < HELLO_EVERY_MS) return;
    this.#lastHello = t;
    this.#send({ kind: "hello", replica: this.replica, seq: this.#seq });
  }

  #send(message: ReplicaMessage): void {
    if (this.#link.publish(encodeMessage(message))) {
      this.#seq++;
      this.#parts.telemetry.message("out", message.kind);
    }
  }

  #ownLoads(): LoadEntry[] {
    return this.#parts.engines.map((e) => ({ engine: e.name, ...this.#parts.ownLoad(e.id) }));
  }

  #healthEntries(): HealthEntry[] {
    return this.#parts.engines.map((e) => ({ engine: e.name, state: e.state, reason: e.reason?.slice(0, LIMITS.reasonChars) ?? null, routing: e.state === "up" ? e.routing : null }));
  }

  #receive(data: Uint8Array): void {
    const parsed = parseMessage(data);
    if (!parsed.ok) return this.#drop(parsed.reason, parsed.detail);
    const m = parsed.message;
    if (m.replica === this.replica) return this.#drop("own_name", "a message under this replica's own name");
    const now = performance.now();
    let applied: Applied;
    switch (m.kind) {
      case "state":
        applied = this.#peers.state(m.replica, m.seq, m.loads, m.health, now);
        break;
      case "load":
        applied = this.#peers.load(m.replica, m.seq, m.loads, now);
        break;
      case "approx":
        applied = this.#peers.heard(m.replica, m.seq, now);
        if (applied !== "stale") this.#predictions(m.blockSize, m.predictions);
        break;
      case "hello":
        applied = this.#peers.heard(m.replica, m.seq, now);
        if (applied !== "stale") this.#sendState();
        break;
      case "bye":
        this.#peers.remove(m.replica);
        applied = "applied";
        this.#parts.log.info({ replica: m.replica }, "replica left: its bookings are dropped");
        break;
    }
    if (applied === "stale") return this.#drop("stale", `${m.kind} from ${m.replica} with an old sequence number ${m.seq}`);
    this.#parts.telemetry.message("in", m.kind);
    this.#parts.telemetry.peers(this.#peers.size);
    if (applied === "inconsistent") this.#drop("inconsistent", `${m.replica}'s load would make a booking impossible; asking for its state`);
    if (applied === "needs_state" || applied === "inconsistent") this.#hello();
  }

  #predictions(blockSize: number, predictions: Prediction[]): void {
    if (blockSize !== this.#parts.blockSize()) {
      this.#drop("block_size", `predictions for ${blockSize}-token blocks; this replica hashes ${this.#parts.blockSize()}-token blocks`);
      return;
    }
    for (const p of predictions) {
      const id = this.#ids.get(p.engine);
      const handle = id === undefined ? undefined : this.#parts.engines[id];
      const applies = handle !== undefined && handle.state === "up" && handle.routing === "approx";
      if (applies) this.#parts.recordApprox(handle.id, p.hashes);
      this.#parts.telemetry.prediction(applies);
    }
  }

  #drop(reason: string, detail: string): void {
    this.#parts.telemetry.dropped(reason);
    const now = performance.now();
    if (now - (this.#logged.get(reason) ?? -Infinity) < LOG_EVERY_MS) return;
    this.#logged.set(reason, now);
    this.#parts.log.warn({ reason, detail }, "dropped a replica message");
  }
}
