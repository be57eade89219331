// Work booked on each engine by requests in flight. A request's prefill (the prompt blocks and tokens the
// engine must still compute) counts until its first token; from then on, the request is decoding and the
// blocks its sequence occupies (prompt plus generated tokens) count as decode blocks until it ends.
//
// Invariant: each figure is the sum over the engine's unreleased bookings of that booking's share.

export interface EngineLoad {
  /** Prompt blocks still to compute, of requests before their first token. */
  prefillBlocks: number;
  /** Prompt tokens still to compute (not cached), of requests before their first token. */
  prefillTokens: number;
  /** Blocks held by requests past their first token. */
  decodeBlocks: number;
  /** Requests past their first token. */
  decodeRequests: number;
  /** Requests in flight, prefilling or decoding. */
  requests: number;
}

function idle(): EngineLoad {
  return { prefillBlocks: 0, prefillTokens: 0, decodeBlocks: 0, decodeRequests: 0, requests: 0 };
}

export class ActiveLoad {
  readonly #loads = new Map<number, EngineLoad>();

  load(engine: number): EngineLoad {
    let load = this.#loads.get(engine);
    if (!load) {
      load = idle();
      this.#loads.set(engine, load);
    }
    return load;
  }

  /** A copy of an engine's load, for a decision that must not change when later bookings do. */
  snapshot(engine: number): EngineLoad {
    const l = this.#loads.get(engine);
    return l ? { ...l } : idle();
  }

  /**
   * Books a request. `newBlocks` are the prompt blocks the engine does not hold. The returned booking is
   * moved along by the request and released exactly once, whatever way it ends.
   */
  book(engine: number, promptTokens: number, newBlocks: number, blockSize: number): Booking {
    return new Booking(this, engine, promptTokens, newBlocks, blockSize);
  }
}

export class Booking {
  #phase: "prefill" | "decode" | "released" = "prefill";
  #decodeBlocks = 0;
  #tokens: number;
  /** Prompt tokens the engine must compute: all but the full blocks it holds. */
  readonly prefillTokens: number;

  constructor(
    private readonly active: ActiveLoad,
    readonly engine: number,
    promptTokens: number,
    /** Prompt blocks the engine must compute. */
    readonly prefillBlocks: number,
    private readonly blockSize: number,
  ) {
    this.#tokens = promptTokens;
    this.prefillTokens = promptTokens - (Math.floor(promptTokens / blockSize) - prefillBlocks) * blockSize;
    const load = active.load(engine);
    load.prefillBlocks += prefillBlocks;
    load.prefillTokens += this.prefillTokens;
    load.requests += 1;
  }

  /** The first token arrived: the prompt is computed and the sequence now occupies decode blocks. */
  started(): void {
    if (this.#phase !== "prefill") return;
    this.#phase = "decode";
    const load = this.active.load(this.engine);
    load.prefillBlocks -= this.prefillBlocks;
    load.prefillTokens -= this.prefillTokens;
    load.decodeRequests += 1;
    this.#setDecodeBlocks(load);
  }

  /** `count` more tokens were generated. */
  generated(count: number): void {
    if (this.#phase === "released") return;
    this.#tokens += count;
    if (this.#phase === "decode") this.#setDecodeBlocks(this.active.load(this.engine));
  }

  /** The request ended (finished, failed or aborted). Safe to call more than once. */
  release(): void {
    if (this.#phase === "released") return;
    const load = this.active.load(this.engine);
    if (this.#phase === "prefill") {
      load.prefillBlocks -= this.prefillBlocks;
      load.prefillTokens -= this.prefillTokens;
    } else {
      load.decodeRequests -= 1;
    }
    load.decodeBlocks -= this.#decodeBlocks;
    load.requests -= 1;
    this.#phase = "released";
  }

  #setDecodeBlocks(load: EngineLoad): void {
    const blocks = Math.ceil(this.#tokens / this.blockSize);
    load.decodeBlocks += blocks - this.#decodeBlocks;
    this.#decodeBlocks = blocks;
  }
}
