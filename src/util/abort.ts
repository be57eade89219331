// Aborting a request without an AbortSignal per request. Node's AbortSignal is an EventTarget given its
// prototype after construction; under load, V8 kept such signals, and the listeners they held, into its old
// generation. At 3,000 token-id requests a second they were most of what the router's main thread promoted:
// 240 KB per scavenge with them, 68 KB with this plain object, and scavenge pauses of 2.7 against 1.5 ms
// (node --trace-gc-nvp). The router's parts need only the few members below.
//
// Invariants, as with EventTarget: listeners run at most once, in the order they were added, on the first
// abort(), except one that an earlier listener removed; adding one already there changes nothing; one added
// during or after the abort never runs (callers check `aborted` first, as they must with an AbortSignal); a
// listener that throws does not keep the others from running, and its error is rethrown on a later tick.

/** What the router's parts use of an AbortSignal. A real AbortSignal is one; so is a LeanAbortSignal. */
export interface AbortSignalLike {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/** An abort signal and its controller in one plain object. */
export class LeanAbortSignal implements AbortSignalLike {
  #aborted = false;
  #reason: unknown = undefined;
  /** Usually one or two (the engine request, a stream waiting to drain); null once aborted. */
  #listeners: (() => void)[] | null = [];

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  /** Listeners added and neither removed nor run: what a leak check looks at. */
  get listenerCount(): number {
    return this.#listeners?.length ?? 0;
  }

  /** As EventTarget: adding a listener that is already there changes nothing. Every listener is once-only. */
  addEventListener(_type: "abort", listener: () => void, _options?: { once?: boolean }): void {
    const listeners = this.#listeners;
    if (listeners && !this.#aborted && !listeners.includes(listener)) listeners.push(listener);
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    const listeners = this.#listeners;
    if (!listeners) return;
    const at = listeners.indexOf(listener);
    if (at >= 0) listeners.splice(at, 1);
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    const listeners = this.#listeners!;
    for (const listener of [...listeners]) {
      // As EventTarget: one that an earlier listener removed does not run.
      if (!listeners.includes(listener)) continue;
      try {
        listener();
      } catch (err) {
        process.nextTick(() => {
          throw err;
        });
      }
    }
    this.#listeners = null;
  }
}
