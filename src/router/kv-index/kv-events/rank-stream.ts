// One publisher's stream of batches, in sequence order: gap detection and repair, without sockets (the
// subscriber feeds it frames and supplies replay).
//
// vLLM numbers batches 0, 1, 2, ... per publisher. A stream starts fresh (nothing known): at start, and
// after its entries were dropped. Then:
// - the next sequence number is applied;
// - a later one is a gap: with a replay socket the missing batches are fetched (live batches arriving
//   meanwhile wait in a bounded queue) and applied in order; without one, or when replay cannot cover the
//   gap, the rank's entries are dropped and the stream restarts from the batch at hand;
// - an earlier one means the publisher restarted (its numbering starts over, and a restarted engine's
//   cache is empty): the entries are dropped and the stream restarts from it.
// On a fresh start with a replay socket, the first batch seen is preceded by whatever the publisher still
// buffers from sequence 0 on, so a router that starts after its engines learns what they cached before.

export interface Batch {
  seq: number;
  payload: Uint8Array;
}

export interface RankStreamHooks {
  /** Decodes and applies one batch; false when the payload was rejected (the hook counts why). */
  apply(batch: Batch): boolean;
  /** Drops the rank's entries. */
  drop(reason: DropReason): void;
  /** Fetches the buffered batches from `from` on, in order; null when replay failed or is not configured. */
  replay: ((from: number) => Promise<Batch[] | null>) | null;
}

export type DropReason = "gap" | "replay-failed" | "publisher-restart" | "disconnect" | "backlog";

export interface RankStreamStats {
  /** Last sequence number received in order (applied or rejected), or -1. */
  lastSequence: number;
  gaps: number;
  replaysRequested: number;
  replaysSucceeded: number;
  replaysFailed: number;
  publisherRestarts: number;
  batchesApplied: number;
}

/** Live batches held while a replay runs; past this the repair is abandoned and the rank dropped. */
const MAX_WAITING = 10_000;

export class RankStream {
  readonly stats: RankStreamStats = {
    lastSequence: -1,
    gaps: 0,
    replaysRequested: 0,
    replaysSucceeded: 0,
    replaysFailed: 0,
    publisherRestarts: 0,
    batchesApplied: 0,
  };
  readonly #hooks: RankStreamHooks;
  /** Next sequence expected, or null when fresh. */
  #expected: number | null = null;
  /** Live batches received while a replay runs; null when none runs. */
  #waiting: Batch[] | null = null;
  #closed = false;

  constructor(hooks: RankStreamHooks) {
    this.#hooks = hooks;
  }

  /** Whether a replay is running. */
  get repairing(): boolean {
    return this.#waiting !== null;
  }

  /**
   * Forgets the position (the caller dropped the entries): the next batch starts the stream afresh. A
   * replay under way is abandoned, with the batches that waited for it.
   */
  reset(): void {
    this.#expected = null;
    this.#waiting = null;
  }

  close(): void {
    this.#closed = true;
  }

  /** A live batch from the subscriber. */
  receive(batch: Batch): void {
    if (this.#closed) return;
    if (this.#waiting !== null) {
      if (this.#waiting.length < MAX_WAITING) {
        this.#waiting.push(batch);
        return;
      }
      // The replay is not keeping up: abandon it (its result will be ignored) and restart from here.
      this.#waiting = null;
      this.#hooks.drop("backlog");
      return this.#apply(batch);
    }
    const expected = this.#expected;
    if (expected === null) {
      if (batch.seq > 0 && this.#hooks.replay !== null) return this.#repair(0, batch);
      return this.#apply(batch);
    }
    if (batch.seq === expected) return this.#apply(batch);
    if (batch.seq > expected) {
      this.stats.gaps++;
      if (this.#hooks.replay !== null) return this.#repair(expected, batch);
      this.#hooks.drop("gap");
      return this.#apply(batch);
    }
    this.stats.publisherRestarts++;
    this.#hooks.drop("publisher-restart");
    this.#apply(batch);
  }

  #apply(batch: Batch): void {
    if (this.#hooks.apply(batch)) this.stats.batchesApplied++;
    this.#expected = batch.seq + 1;
    this.stats.lastSequence = batch.seq;
  }

  /** Fetches [from, first.seq) in the background; live batches wait, `first` at their head. */
  #repair(from: number, first: Batch): void {
    const fresh = this.#expected === null;
    const waiting: Batch[] = [first];
    this.#waiting = waiting;
    this.stats.replaysRequested++;
    this.#hooks.replay!(from).then(
      (replayed) => this.#repaired(fresh, from, waiting, replayed),
      () => this.#repaired(fresh, from, waiting, null),
    );
  }

  /**
   * Applies a replay's batches below the first live one, if they run without a hole up to it: from exactly
   * `from` for a gap; from wherever the publisher's buffer starts for a fresh stream. Otherwise a gap's
   * rank is dropped (a fresh one has nothing to drop). Either way the stream then goes on from the first
   * live batch, and the batches that waited follow it through the ordinary path.
   */
  #repaired(fresh: boolean, from: number, waiting: Batch[], replayed: Batch[] | null): void {
    if (this.#closed || this.#waiting !== waiting) return; // closed, or abandoned for a backlog
    this.#waiting = null;
    const live = waiting[0]!.seq;
    const usable = replayed?.filter((b) => b.seq >= from && b.seq < live) ?? null;
    let ok = usable !== null;
    if (ok && !fresh) ok = usable!.length === live - from && (usable!.length === 0 || usable![0]!.seq === from);
    for (let i = 1; ok && i < usable!.length; i++) ok = usable![i]!.seq === usable![i - 1]!.seq + 1;
    if (ok && usable!.length > 0) ok = usable![usable!.length - 1]!.seq === live - 1;
    if (ok) {
      this.stats.replaysSucceeded++;
      for (const b of usable!) this.#apply(b);
    } else {
      this.stats.replaysFailed++;
      if (!fresh) this.#hooks.drop("replay-failed");
    }
    this.#expected = live;
    for (const b of waiting) this.receive(b);
  }
}
