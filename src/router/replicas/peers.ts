// What this replica knows of the other router replicas: each one's bookings per engine (kept up to date by
// its load deltas and replaced by its state messages), its view of the engines' health, and when it was
// last heard from. Bookings are held under a lease: a replica not heard from for `expiryMs` is dropped with
// everything it booked, so a replica that died (or that NATS cut off) stops counting within that bound.
//
// No sockets and no clock: the caller passes each message, already checked (messages.ts), and the time.
//
// Invariants, between calls:
//   - a replica's bookings are the last state it sent plus the deltas that followed it, in order, with no
//     gap; a replica whose deltas cannot be trusted (first heard from by a delta, a gap in its sequence, a
//     delta that would make a figure impossible) keeps its last trusted bookings and applies no delta
//     until its next state;
//   - every booking satisfies loadProblem() === null (no figure below 0, ...): a delta that would break it
//     is dropped whole;
//   - onTotal(engine, load) was last called with the sum over replicas of their bookings on that engine
//     (null for nothing booked).
import type { EngineLoad } from "../schedule/index.js";
import { LOAD_FIELDS, loadProblem, type HealthEntry, type LoadEntry } from "./messages.js";

export interface PeersOptions {
  /** A replica's bookings count until this long after it was last heard from (ms). */
  expiryMs: number;
  /** Told of the total every other replica has booked on an engine (by name) whenever it changes. */
  onTotal: (engine: string, load: EngineLoad | null) => void;
}

/** What applying a message did. */
export type Applied =
  /** Applied. */
  | "applied"
  /** An old message (its sequence number already seen): ignored. */
  | "stale"
  /** Deltas that cannot be applied until the replica's next state (unknown replica or a gap): ask for it. */
  | "needs_state"
  /** A delta that would make a booking impossible: dropped; the replica waits for its next state. */
  | "inconsistent";

export interface PeerView {
  replica: string;
  lastHeardMs: number;
  /** Whether its bookings are a state plus every delta since (false: waiting for its next state). */
  synced: boolean;
  health: HealthEntry[];
  /** Its bookings, engines with nothing booked left out. */
  loads: LoadEntry[];
}

type Load = Omit<LoadEntry, "engine">;

interface Peer {
  seq: number;
  lastHeardMs: number;
  synced: boolean;
  loads: Map<string, Load>;
  health: HealthEntry[];
}

export class Peers {
  readonly expiryMs: number;
  readonly #onTotal: PeersOptions["onTotal"];
  readonly #peers = new Map<string, Peer>();

  constructor(options: PeersOptions) {
    if (!(options.expiryMs > 0 && Number.isFinite(options.expiryMs))) throw new RangeError(`the replica expiry must be a number of ms above 0, got ${options.expiryMs}`);
    this.expiryMs = options.expiryMs;
    this.#onTotal = options.onTotal;
  }

  get size(): number {
    return this.#peers.size;
  }

  /** A state: the replica's whole bookings and health now. */
  state(replica: string, seq: number, loads: LoadEntry[], health: HealthEntry[], nowMs: number): Applied {
    const peer = this.#heard(replica, seq, nowMs);
    if (peer === null) return "stale";
    const touched = new Set(peer.loads.keys());
    peer.loads = new Map(loads.filter((l) => l.requests > 0).map(({ engine, ...l }) => [engine, l]));
    for (const l of loads) touched.add(l.engine);
    peer.health = health;
    peer.synced = true;
    this.#total(touched);
    return "applied";
  }

  /** Deltas of the replica's bookings since its previous message. */
  load(replica: string, seq: number, deltas: LoadEntry[], nowMs: number): Applied {
    const before = this.#peers.get(replica)?.seq;
    const peer = this.#heard(replica, seq, nowMs);
    if (peer === null) return "stale";
    if (before === undefined || seq !== before + 1) peer.synced = false;
    if (!peer.synced) return "needs_state";
    // Everything is checked before anything changes: a message is applied whole or not at all.
    const next: [string, Load][] = [];
    for (const { engine, ...delta } of deltas) {
      const old = peer.loads.get(engine);
      const sum = {} as Load;
      for (const f of LOAD_FIELDS) sum[f] = (old?.[f] ?? 0) + delta[f];
      if (loadProblem(sum) !== null) {
        peer.synced = false;
        return "inconsistent";
      }
      next.push([engine, sum]);
    }
    for (const [engine, sum] of next) {
      if (sum.requests === 0) peer.loads.delete(engine);
      else peer.loads.set(engine, sum);
    }
    this.#total(new Set(next.map(([engine]) => engine)));
    return "applied";
  }

  /** Any other message: only proof of life. */
  heard(replica: string, seq: number, nowMs: number): Applied {
    const known = this.#peers.has(replica);
    const peer = this.#heard(replica, seq, nowMs);
    if (peer === null) return "stale";
    // A replica first heard from by something other than a state has bookings this one does not know.
    return known ? "applied" : "needs_state";
  }

  /** The replica said it is leaving: its bookings go now. */
  remove(replica: string): void {
    const peer = this.#peers.get(replica);
    if (peer === undefined) return;
    this.#peers.delete(replica);
    this.#total(new Set(peer.loads.keys()));
  }

  /** Drops the replicas last heard from at or before `nowMs - expiryMs`; returns their names. */
  expire(nowMs: number): string[] {
    const gone: string[] = [];
    for (const [replica, peer] of this.#peers) if (peer.lastHeardMs <= nowMs - this.expiryMs) gone.push(replica);
    for (const replica of gone) this.remove(replica);
    return gone;
  }

  /** Drops every replica (this one was cut off from them). */
  clear(): void {
    for (const replica of [...this.#peers.keys()]) this.remove(replica);
  }

  views(nowMs: number): PeerView[] {
    return [...this.#peers].map(([replica, p]) => ({
      replica,
      lastHeardMs: nowMs - p.lastHeardMs,
      synced: p.synced,
      health: p.health,
      loads: [...p.loads].map(([engine, l]) => ({ engine, ...l })),
    }));
  }

  /** The peer, its lease renewed, or null when the message is older than one already seen. */
  #heard(replica: string, seq: number, nowMs: number): Peer | null {
    let peer = this.#peers.get(replica);
    if (peer === undefined) {
      peer = { seq, lastHeardMs: nowMs, synced: false, loads: new Map(), health: [] };
      this.#peers.set(replica, peer);
      return peer;
    }
    if (seq <= peer.seq) return null;
    peer.seq = seq;
    peer.lastHeardMs = nowMs;
    return peer;
  }

  #total(engines: Iterable<string>): void {
    for (const engine of engines) {
      let total: EngineLoad | null = null;
      for (const peer of this.#peers.values()) {
        const l = peer.loads.get(engine);
        if (l === undefined) continue;
        total ??= { prefillBlocks: 0, prefillTokens: 0, decodeBlocks: 0, decodeRequests: 0, requests: 0 };
        for (const f of LOAD_FIELDS) total[f] += l[f];
      }
      this.#onTotal(engine, total);
    }
  }
}
