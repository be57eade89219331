// Requests whose streams are first read in the same event-loop turn are decided together (the routing
// core's beginTogether, schedule/together.ts). Each waits here until the turn's I/O callbacks have run
// (setImmediate), which adds no timer and no wait beyond the turn: a request alone in its turn is decided
// as it would be on its own. Then all are decided and booked at once, and resumed in the order to send
// them, so their attempts reach the engines in that order.
//
// Invariant: every waiter is settled exactly once: with its attempt, with null (no engine, or its client
// left before the turn ended, when nothing is booked for it), or with the error deciding threw.
import type { Attempt, RoutablePrompt, RoutingCore } from "../schedule/index.js";
import type { AbortSignalLike } from "../../util/abort.js";

interface Waiter {
  prompt: RoutablePrompt;
  signal: AbortSignalLike;
  resolve: (attempt: Attempt | null) => void;
  reject: (err: unknown) => void;
}

export class DecisionTurn {
  #waiting: Waiter[] = [];

  /** `onDecided` is told how long deciding a turn's requests took (s) and how many there were. */
  constructor(
    private readonly core: RoutingCore,
    private readonly onDecided?: (seconds: number, requests: number) => void,
  ) {}

  /** The prompt's first attempt, decided and booked with the others of this turn; null when there is no engine or the client left. */
  begin(prompt: RoutablePrompt, signal: AbortSignalLike): Promise<Attempt | null> {
    return new Promise((resolve, reject) => {
      if (this.#waiting.length === 0) setImmediate(() => this.#decide());
      this.#waiting.push({ prompt, signal, resolve, reject });
    });
  }

  #decide(): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    const live: Waiter[] = [];
    for (const w of waiting) {
      if (w.signal.aborted) w.resolve(null);
      else live.push(w);
    }
    if (live.length === 0) return;
    const t0 = performance.now();
    let attempts: (Attempt | null)[];
    try {
      attempts = this.core.beginTogether(live.map((w) => w.prompt));
    } catch (err) {
      for (const w of live) w.reject(err);
      return;
    }
    this.onDecided?.((performance.now() - t0) / 1000, live.length);
    for (const i of this.core.sendOrder(attempts)) live[i]!.resolve(attempts[i]!);
  }
}
