// Taking an engine back from long prompts: a short prompt sent to an engine that is computing (or queueing)
// long prompts for this router goes before them. The long ones are aborted on the engine and sent again to
// the same engine once the short one has its first token; the blocks they computed meanwhile are then in the
// engine's prefix cache, so only the abort's partial block and one step are lost.
//
// Why: an engine computes prompts in arrival order, and a long prompt's prefill fills every step until it is
// done. A prompt whose blocks are almost all cached on that engine, arriving behind it, waits the whole long
// prefill for a few milliseconds of its own compute (on Mooncake's synthetic trace, 101 such requests waited
// about 650 ms each). The router cannot see them coming when it places the long prompt, so it corrects the
// order when they come: shortest remaining prefill first, the order that minimises the mean wait.
//
// The rule: a prompt with more than TAKE_BACK_TOKENS uncached tokens left to compute, sent and without its
// first token, may be taken back by a prompt of at most TAKE_BACK_TOKENS uncached tokens sent to its engine.
// What it has left is estimated as if the engine had computed it at the time model's rate since it was
// sent: one nearly done is not taken back. Scoring such a short prompt leaves the long ones out of the
// queue ahead of it (scheduler.ts), and sending it takes them back: it becomes their holder. A long prompt
// goes again when every holder has its first token or has ended. It has at most MAX_HOLDERS holders in
// all, so a stream of short prompts cannot put it off for ever.
//
// Invariant: an entry is a candidate only while it may be taken back; once paused it is resumed exactly once,
// when its last holder lets go, unless it ended meanwhile. No sockets and no clock: Attempt (routing-core.ts)
// drives it, and the dispatchers pause and resume the engine call.

/** Uncached tokens above which a prompt may be taken back, and at or below which one may take back. */
export const TAKE_BACK_TOKENS = 4096;

/** Short prompts one long prompt may wait for, over all its pauses. */
export const MAX_HOLDERS = 4;

/** What the dispatcher of an attempt does when it is taken back. */
export interface TakeBackHandler {
  /** Milliseconds since the prompt was last sent to its engine. */
  elapsedMs(): number;
  /** Stop the engine computing the prompt (abort it there); the client's request goes on. */
  pause(): void;
  /** Send the prompt again, to the same engine. */
  resume(): void;
}

/** One long prompt that may be, or has been, taken back. */
export interface TakeBackEntry {
  readonly engine: number;
  /** Prompt tokens the engine is to compute for it: what a short prompt's scoring leaves out. */
  readonly tokens: number;
  /** Prompt blocks the engine is to compute for it. */
  readonly blocks: number;
  /** Tokens it had left to compute when it was last sent, as estimated: `tokens` at first. */
  left: number;
  readonly handler: TakeBackHandler;
  /** Holders it has had, over all its pauses. */
  held: number;
  /** The holders it waits for while paused; null while it runs or once it ended. */
  holders: Set<object> | null;
}

/** The time model's prefill rate for an engine (EngineTimeModel is one). */
export interface PrefillRate {
  readonly prefillMsPerToken: number;
}

export interface Withheld {
  tokens: number;
  blocks: number;
  requests: number;
}

const NOTHING: Withheld = Object.freeze({ tokens: 0, blocks: 0, requests: 0 });

/** Per engine, the long prompts a short one would go before; per holder, those it holds. */
export class TakeBacks {
  readonly #candidates = new Map<number, Set<TakeBackEntry>>();
  readonly #holding = new Map<object, TakeBackEntry[]>();
  /** Per engine, the prompts paused now. */
  readonly #paused = new Map<number, number>();
  /** Per engine, the pauses since this was made. */
  readonly #pausesOn = new Map<number, number>();
  /** Per engine, the prompts taken back that have not had their first token or ended. */
  readonly #unsettled = new Map<number, number>();

  /** Times a long prompt was paused since this was made. */
  get pauses(): number {
    let sum = 0;
    for (const n of this.#pausesOn.values()) sum += n;
    return sum;
  }

  /** Times a long prompt was paused on the engine since this was made. */
  pausesOn(engine: number): number {
    return this.#pausesOn.get(engine) ?? 0;
  }

  /** Prompts taken back on the engine that have not had their first token or ended. */
  unsettledOn(engine: number): number {
    return this.#unsettled.get(engine) ?? 0;
  }

  /** The engine's long prompts paused now. */
  pausedOn(engine: number): number {
    return this.#paused.get(engine) ?? 0;
  }

  /** A long prompt was sent: a short one sent to its engine may now take it back. */
  add(entry: TakeBackEntry): void {
    let set = this.#candidates.get(entry.engine);
    if (set === undefined) this.#candidates.set(entry.engine, (set = new Set()));
    set.add(entry);
  }

  /** It has its first token, or ended: it may no longer be taken back, and is not resumed. */
  remove(entry: TakeBackEntry): void {
    this.#candidates.get(entry.engine)?.delete(entry);
    if (entry.holders !== null) this.#count(this.#paused, entry.engine, -1);
    // Held at least once (every holder pauses it or finds it paused), now settled.
    if (entry.held > 0) this.#count(this.#unsettled, entry.engine, -1);
    entry.holders = null;
  }

  /**
   * What a short prompt on the engine would go before, the engine computing a prompt token in `rate`'s
   * time (read only when the engine has long prompts): the load to leave out of the queue ahead of it.
   */
  withheld(engine: number, rate: PrefillRate): Withheld {
    const set = this.#candidates.get(engine);
    if (set === undefined || set.size === 0) return NOTHING;
    const msPerToken = rate.prefillMsPerToken;
    let tokens = 0;
    let blocks = 0;
    let requests = 0;
    for (const e of set) {
      if (!stillLong(e, msPerToken)) continue;
      requests++;
      tokens += e.tokens;
      blocks += e.blocks;
    }
    return { tokens, blocks, requests };
  }

  /**
   * A short prompt (`holder`) is sent to the engine: every candidate there waits for it. Those running are
   * paused; those already paused wait for it too.
   */
  takeBack(engine: number, holder: object, rate: PrefillRate): void {
    const set = this.#candidates.get(engine);
    if (set === undefined || set.size === 0) return;
    const msPerToken = rate.prefillMsPerToken;
    const held: TakeBackEntry[] = [];
    for (const e of [...set]) {
      if (!stillLong(e, msPerToken)) continue;
      held.push(e);
      if (e.held === 0) this.#count(this.#unsettled, engine, 1);
      if (++e.held >= MAX_HOLDERS) set.delete(e);
      if (e.holders !== null) {
        e.holders.add(holder);
        continue;
      }
      e.holders = new Set([holder]);
      e.left = leftNow(e, msPerToken);
      this.#count(this.#pausesOn, engine, 1);
      this.#count(this.#paused, engine, 1);
      e.handler.pause();
    }
    if (held.length > 0) this.#holding.set(holder, held);
  }

  /** The holder has its first token, or ended: the prompts it held go again once nothing else holds them. */
  letGo(holder: object): void {
    const held = this.#holding.get(holder);
    if (held === undefined) return;
    this.#holding.delete(holder);
    for (const e of held) {
      if (e.holders === null || !e.holders.delete(holder) || e.holders.size > 0) continue;
      e.holders = null;
      this.#count(this.#paused, e.engine, -1);
      e.handler.resume();
    }
  }

  #count(counts: Map<number, number>, engine: number, change: number): void {
    counts.set(engine, (counts.get(engine) ?? 0) + change);
  }
}

/** Tokens it has left to compute, had the engine computed it since it was sent. */
function leftNow(e: TakeBackEntry, msPerToken: number): number {
  return Math.max(0, e.left - e.handler.elapsedMs() / msPerToken);
}

/** Paused, or running with more than TAKE_BACK_TOKENS left: a short prompt goes before it. */
function stillLong(e: TakeBackEntry, msPerToken: number): boolean {
  return e.holders !== null || leftNow(e, msPerToken) > TAKE_BACK_TOKENS;
}
