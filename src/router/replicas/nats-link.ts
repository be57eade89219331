// The replica's connection to NATS, with the official `nats` client: one subject, subscribed and published
// to, and the connection's ups and downs reported as they happen. The client redials a server that went
// away by itself (and restores the subscription); this module adds the first connection, which the client
// does not retry, and closing at any point, also while still trying to connect.
//
// Invariant: listener.up() and listener.down() alternate, starting with down() if the first connection
// fails and with up() when it succeeds; publish() sends only while up (messages are never queued across an
// outage: the state sent on reconnecting replaces them).
import { connect, Events, type NatsConnection } from "nats";

export interface NatsLinkListener {
  up(server: string): void;
  down(reason: string): void;
  message(data: Uint8Array): void;
}

export interface NatsLinkOptions {
  /** nats://HOST:PORT (or several, comma-separated). */
  url: string;
  subject: string;
  /** The connection's name on the server (its monitoring shows it). */
  name: string;
  /** First and longest wait between attempts while the server cannot be reached (ms; defaults 250, 2000). */
  retryInitialMs?: number;
  retryMaxMs?: number;
}

export class NatsLink {
  readonly #o: Required<NatsLinkOptions>;
  readonly #listener: NatsLinkListener;
  #nc: NatsConnection | null = null;
  #up = false;
  /** Whether down() was the last thing said (so that it is said once per outage). */
  #saidDown = false;
  #closing = false;
  #wake: (() => void) | null = null;
  #loop: Promise<void> | null = null;

  constructor(options: NatsLinkOptions, listener: NatsLinkListener) {
    this.#o = { retryInitialMs: 250, retryMaxMs: 2000, ...options };
    this.#listener = listener;
  }

  get connected(): boolean {
    return this.#up;
  }

  /** Starts connecting in the background; returns at once. */
  start(): void {
    this.#loop ??= this.#run();
  }

  /** Sends when connected; false (nothing sent) otherwise. */
  publish(data: Uint8Array): boolean {
    if (!this.#up || this.#nc === null) return false;
    try {
      this.#nc.publish(this.#o.subject, data);
      return true;
    } catch {
      // Closed or draining under our feet: the status watcher reports it.
      return false;
    }
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#wake?.();
    const nc = this.#nc;
    if (nc !== null && !nc.isClosed()) await nc.close().catch(() => undefined);
    await this.#loop;
  }

  async #run(): Promise<void> {
    let wait = this.#o.retryInitialMs;
    while (!this.#closing) {
      let nc: NatsConnection;
      try {
        nc = await connect({
          servers: this.#o.url.split(","),
          name: this.#o.name,
          // Its own messages are of no use to a replica.
          noEcho: true,
          reconnect: true,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 500,
          reconnectJitter: 250,
          timeout: 2000,
          // A server that stops answering without closing the connection is noticed within about 4 s.
          pingInterval: 2000,
          maxPingOut: 2,
        });
      } catch (err) {
        this.#down(`cannot connect to NATS at ${this.#o.url}: ${describe(err)}`);
        await this.#sleep(wait * (0.8 + 0.4 * Math.random()));
        wait = Math.min(this.#o.retryMaxMs, wait * 2);
        continue;
      }
      wait = this.#o.retryInitialMs;
      if (this.#closing) {
        await nc.close().catch(() => undefined);
        return;
      }
      this.#nc = nc;
      nc.subscribe(this.#o.subject, {
        callback: (err, msg) => {
          if (err === null) this.#listener.message(msg.data);
        },
      });
      // The subscription is registered with the server before the replica says it is up (and sends).
      await nc.flush().catch(() => undefined);
      this.#setUp(nc.getServer());
      // Not awaited: the client never ends its status iterator, not even on close.
      void this.#watch(nc);
      const closed = await nc.closed();
      this.#nc = null;
      if (this.#closing) return;
      // Closed by the client itself (a fatal error): start over.
      this.#down(`the NATS connection closed${closed ? `: ${describe(closed)}` : ""}`);
    }
  }

  async #watch(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (nc.isClosed()) return;
      if (status.type === Events.Disconnect) this.#down(`lost the NATS connection to ${String(status.data)}; reconnecting`);
      else if (status.type === Events.Reconnect) this.#setUp(String(status.data));
    }
  }

  #setUp(server: string): void {
    if (this.#up) return;
    this.#up = true;
    this.#saidDown = false;
    this.#listener.up(server);
  }

  #down(reason: string): void {
    this.#up = false;
    if (this.#saidDown || this.#closing) return;
    this.#saidDown = true;
    this.#listener.down(reason);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = null;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = null;
        resolve();
      };
    });
  }
}

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return e.message ?? e.code ?? String(err);
}
