import { Counter, Gauge, type Registry } from "prom-client";

/** What the replica link reports, as it happens. */
export interface ReplicaTelemetry {
  connected(up: boolean): void;
  /** A message sent or received (and accepted), by kind. */
  message(direction: "in" | "out", kind: string): void;
  /** A received message that was not applied, and why. */
  dropped(reason: string): void;
  /** A peer's prediction for an engine: applied to an engine in approximate mode here, or not. */
  prediction(applied: boolean): void;
  peers(count: number): void;
}

/** Prometheus figures of the replicas' NATS link. */
export class ReplicaMetrics implements ReplicaTelemetry {
  readonly #connected: Gauge;
  readonly #disconnects: Counter;
  readonly #messages: Counter<"direction" | "kind">;
  readonly #dropped: Counter<"reason">;
  readonly #predictions: Counter<"result">;
  readonly #peers: Gauge;

  constructor(registry: Registry) {
    const registers = [registry];
    this.#connected = new Gauge({ name: "kvroute_nats_connected", help: "1 while this replica is connected to NATS (0: it routes alone)", registers });
    this.#disconnects = new Counter({ name: "kvroute_nats_disconnects_total", help: "Times this replica lost (or could not reach) NATS", registers });
    this.#messages = new Counter({ name: "kvroute_replica_messages_total", help: "Replica messages sent (out) and received and accepted (in), by kind", labelNames: ["direction", "kind"], registers });
    this.#dropped = new Counter({ name: "kvroute_replica_messages_dropped_total", help: "Received replica messages not applied, by reason", labelNames: ["reason"], registers });
    this.#predictions = new Counter({ name: "kvroute_replica_predictions_total", help: "Approximate-mode predictions received from peers: applied, or ignored (the engine is not in approximate mode here)", labelNames: ["result"], registers });
    this.#peers = new Gauge({ name: "kvroute_replica_peers", help: "Other replicas heard from within the expiry", registers });
    this.#connected.set(0);
  }

  /** Called once per change (the link says down once per outage, a first connection that fails included). */
  connected(up: boolean): void {
    if (!up) this.#disconnects.inc();
    this.#connected.set(up ? 1 : 0);
  }

  message(direction: "in" | "out", kind: string): void {
    this.#messages.inc({ direction, kind });
  }

  dropped(reason: string): void {
    this.#dropped.inc({ reason });
  }

  prediction(applied: boolean): void {
    this.#predictions.inc({ result: applied ? "applied" : "ignored" });
  }

  peers(count: number): void {
    this.#peers.set(count);
  }
}
