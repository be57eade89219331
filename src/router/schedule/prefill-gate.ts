// The prefill gate: a request is held in the router while its engine computes prompts the router sent it
// before, when sending it now would slow them down, and sent once they have their first tokens.
//
// Why: an engine fills each step's token budget in arrival order (chunked prefill), so a prompt sent while
// another is being computed rides in that prompt's last step and lengthens it. A short prompt sent just
// before a long one gets its first token only when the long one's first chunk is done. Held back instead,
// the prompts ahead finish in steps of their own; the held one starts a step later, at the cost of one
// step's overhead.
//
// Whether a request is held is the routing core's judgement (policy.ts, `holds`): only behind prompts that
// end within a few steps, which its head would delay by more than a step. The gate keeps the books, and
// holds a request that comes while others are held for its engine whatever the judgement: sent now, it
// would pass them (the queue its judgement saw counts them, and a long queue alone does not hold).
//
// Per engine: the attempts in flight (sent, no first token yet) and the attempts held. When the last one
// in flight has its first token (or ends), the held ones are released, shortest first. The first goes;
// each next one goes with it only if it fits in the same step's budget and the same judgement lets it
// join them (`joins`: a prompt of a few tokens does, a longer one would delay them by more than its own
// step and is held for the next release). Attempts left over after a release go before any held later, in
// the order they were left over, so a long prompt is never passed over for ever.
//
// Invariants: every attempt that enters is either sent exactly once (now, or by a later release) or
// withdrawn; an engine never has held attempts and none in flight once a call returns.
// No sockets and no clock: the live dispatcher and the simulator both drive it through Attempt.

/** One attempt, as the gate sees it. */
export interface GateEntry {
  /** The prompt tokens the engine is to compute for it (its uncached part). */
  readonly tokens: number;
  /** Sends it; called once, when it is released. */
  readonly send: () => void;
  /** Whether it may be sent beside `ahead` prompts of `aheadTokens` tokens released before it. */
  readonly joins: (aheadTokens: number, ahead: number) => boolean;
}

interface EngineGate {
  inFlight: GateEntry[];
  /** Held across a release: they go before `fresh`. */
  carried: GateEntry[];
  fresh: GateEntry[];
}

export class PrefillGate {
  readonly #budget: number;
  readonly #engines = new Map<number, EngineGate>();
  /** Attempts held now, over all engines. */
  #held = 0;
  #heldTotal = 0;

  /** `budget`: the tokens an engine computes per step (vLLM's max_num_batched_tokens). */
  constructor(budget: number) {
    if (!(Number.isInteger(budget) && budget > 0)) throw new RangeError(`the gate's budget must be a whole number above 0, got ${budget}`);
    this.#budget = budget;
  }

  /** Attempts held now, over all engines. */
  get held(): number {
    return this.#held;
  }

  /** Attempts held since the gate was made. */
  get heldTotal(): number {
    return this.#heldTotal;
  }

  /** Whether the engine has prompts in flight from this router (an attempt entering now could be held). */
  busy(engine: number): boolean {
    const g = this.#engines.get(engine);
    return g !== undefined && g.inFlight.length > 0;
  }

  /** Attempts held for the engine now. */
  heldOn(engine: number): number {
    const g = this.#engines.get(engine);
    return g === undefined ? 0 : g.carried.length + g.fresh.length;
  }

  /** Attempts in flight on the engine. */
  inFlight(engine: number): number {
    return this.#engines.get(engine)?.inFlight.length ?? 0;
  }

  /**
   * An attempt enters: true when it is to be sent now (it is then in flight), false when it is held (its
   * `send` is called at its release). `hold` is the caller's judgement that sending now would cost the
   * prompts in flight more than waiting costs this one; it is only followed while the engine is busy, and
   * while others are held for the engine the attempt is held whatever it says.
   */
  enter(engine: number, entry: GateEntry, hold: boolean): boolean {
    const g = this.#gate(engine);
    if (g.inFlight.length === 0 || (!hold && g.carried.length + g.fresh.length === 0)) {
      g.inFlight.push(entry);
      return true;
    }
    insertShortestFirst(g.fresh, entry);
    this.#held++;
    this.#heldTotal++;
    return false;
  }

  /** The attempt's prompt is computed (its first token came), or it ended: held ones may go. */
  settle(engine: number, entry: GateEntry): void {
    const g = this.#engines.get(engine);
    if (g === undefined) return;
    const at = g.inFlight.indexOf(entry);
    if (at < 0) return;
    g.inFlight.splice(at, 1);
    this.#release(engine, g);
  }

  /** A held attempt ended before its release (its client left): it is dropped. False when it was not held. */
  withdraw(engine: number, entry: GateEntry): boolean {
    const g = this.#engines.get(engine);
    if (g === undefined) return false;
    for (const queue of [g.carried, g.fresh]) {
      const at = queue.indexOf(entry);
      if (at >= 0) {
        queue.splice(at, 1);
        this.#held--;
        return true;
      }
    }
    return false;
  }

  #gate(engine: number): EngineGate {
    let g = this.#engines.get(engine);
    if (g === undefined) {
      g = { inFlight: [], carried: [], fresh: [] };
      this.#engines.set(engine, g);
    }
    return g;
  }

  #release(engine: number, g: EngineGate): void {
    // A send can end an attempt at once (an engine that refuses it), which settles it and empties the
    // flight again: loop rather than recurse, until something is in flight or nothing is held.
    while (g.inFlight.length === 0 && g.carried.length + g.fresh.length > 0) {
      const out: GateEntry[] = [];
      let tokens = 0;
      for (const queue of [g.carried, g.fresh]) {
        while (queue.length > 0 && (out.length === 0 || (tokens + queue[0]!.tokens <= this.#budget && queue[0]!.joins(tokens, out.length)))) {
          const e = queue.shift()!;
          tokens += e.tokens;
          out.push(e);
        }
      }
      // What did not fit goes before anything held from now on, after what was carried before it: a
      // carried attempt only moves up, so none waits for ever.
      g.carried.push(...g.fresh.splice(0));
      this.#held -= out.length;
      g.inFlight.push(...out);
      for (const e of out) {
        // Settled meanwhile by an earlier send's failure? Then it is no longer in flight and is not sent.
        if (g.inFlight.includes(e)) e.send();
      }
    }
  }
}

function insertShortestFirst(queue: GateEntry[], entry: GateEntry): void {
  let at = queue.length;
  while (at > 0 && queue[at - 1]!.tokens > entry.tokens) at--;
  queue.splice(at, 0, entry);
}
