// The engine calls of one attempt that may be taken back (schedule/take-back.ts): each call gets its own
// abort signal, aborted when the client leaves or when the routing core pauses the attempt; a paused
// attempt waits here, its client's stream still open, until it is resumed or its client leaves.
import type { TakeBackHandler } from "../schedule/index.js";
import { LeanAbortSignal, type AbortSignalLike } from "../../util/abort.js";

export class ResumableCall {
  readonly #client: AbortSignalLike;
  #call: LeanAbortSignal | null = null;
  /** Calls a pause aborted: their streams end, and whatever they still send is dropped. */
  readonly #takenBack = new WeakSet<AbortSignalLike>();
  #paused = false;
  /** When the last call started, or this was made (performance.now()). */
  #startedAt = 0;
  #wake: ((resumed: boolean) => void) | null = null;
  readonly #onClientAbort = () => {
    this.#call?.abort(this.#client.reason);
    this.#wake?.(false);
  };
  /** What the routing core calls to pause and resume the attempt. */
  readonly handler: TakeBackHandler = {
    elapsedMs: () => performance.now() - this.#startedAt,
    pause: () => {
      this.#paused = true;
      const call = this.#call;
      if (call === null) return;
      this.#takenBack.add(call);
      call.abort(new Error("taken back"));
    },
    resume: () => {
      this.#paused = false;
      this.#wake?.(true);
    },
  };

  constructor(client: AbortSignalLike) {
    this.#client = client;
    this.#startedAt = performance.now();
    client.addEventListener("abort", this.#onClientAbort, { once: true });
  }

  /** Whether a pause aborted this call (not the client's leaving): the attempt goes on with another. */
  tookBack(call: AbortSignalLike): boolean {
    return this.#takenBack.has(call);
  }

  /** The signal for the next engine call: aborted by the client's leaving or by a pause. */
  start(): AbortSignalLike {
    const call = new LeanAbortSignal();
    if (this.#client.aborted) call.abort(this.#client.reason);
    this.#call = call;
    this.#startedAt = performance.now();
    return call;
  }

  /** True once resumed (at once if not paused), false if the client left first. */
  resumed(): boolean | Promise<boolean> {
    if (this.#client.aborted) return false;
    if (!this.#paused) return true;
    return new Promise<boolean>((resolve) => {
      this.#wake = (resumed) => {
        this.#wake = null;
        resolve(resumed);
      };
    });
  }

  /** The attempt ended: the client's signal no longer holds a listener for it. */
  close(): void {
    this.#client.removeEventListener("abort", this.#onClientAbort);
    this.#wake?.(false);
  }
}
