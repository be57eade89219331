// This replica's side of sharing its bookings: what changed since the last message, and the whole of
// what was last sent. No sockets and no clock.
//
// Invariant: the published figures are the sum of every delta returned so far, so a peer that applied
// each of them in order holds exactly state().
import { LOAD_FIELDS, type LoadEntry } from "./messages.js";

type Load = Omit<LoadEntry, "engine">;

export class BookingDeltas {
  readonly #published = new Map<string, Load>();

  /**
   * The bookings now, one entry per engine (engines left out count as nothing booked): returns each engine
   * whose figures changed, as the change, and takes them as published.
   */
  deltas(current: readonly LoadEntry[]): LoadEntry[] {
    const out: LoadEntry[] = [];
    const seen = new Set<string>();
    for (const { engine, ...now } of current) {
      seen.add(engine);
      this.#diff(engine, now, out);
    }
    for (const engine of [...this.#published.keys()]) if (!seen.has(engine)) this.#diff(engine, null, out);
    return out;
  }

  /** What was last published, engines with nothing booked left out. */
  state(): LoadEntry[] {
    return [...this.#published].map(([engine, l]) => ({ engine, ...l }));
  }

  #diff(engine: string, now: Load | null, out: LoadEntry[]): void {
    const before = this.#published.get(engine);
    const delta = { engine } as LoadEntry;
    let changed = false;
    for (const f of LOAD_FIELDS) {
      delta[f] = (now?.[f] ?? 0) - (before?.[f] ?? 0);
      if (delta[f] !== 0) changed = true;
    }
    if (!changed) return;
    out.push(delta);
    if (now === null || LOAD_FIELDS.every((f) => now[f] === 0)) this.#published.delete(engine);
    else this.#published.set(engine, { ...now });
  }
}
