// Work booked on each engine by requests in flight, in KV blocks. A request's prefill blocks (the prompt
// blocks the engine must still compute) count until its first token; from then on, the blocks its
// sequence occupies (prompt plus generated tokens) count as decode blocks until it ends.

export interface EngineLoad {
  prefillBlocks: number;
  decodeBlocks: number;
  requests: number;
}

export class ActiveLoad {
  readonly #loads = new Map<number, EngineLoad>();

  load(engine: number): EngineLoad {
    let load = this.#loads.get(engine);
    if (!load) {
      load = { prefillBlocks: 0, decodeBlocks: 0, requests: 0 };
      this.#loads.set(engine, load);
    }
    return load;
  }

  /** A copy of an engine's load, for a decision that must not change when later bookings do. */
  snapshot(engine: number): EngineLoad {
    const l = this.#loads.get(engine);
    return l ? { prefillBlocks: l.prefillBlocks, decodeBlocks: l.decodeBlocks, requests: l.requests } : { prefillBlocks: 0, decodeBlocks: 0, requests: 0 };
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

  constructor(
    private readonly active: ActiveLoad,
    readonly engine: number,
    promptTokens: number,
    private readonly prefillBlocks: number,
    private readonly blockSize: number,
  ) {
    this.#tokens = promptTokens;
    const load = active.load(engine);
    load.prefillBlocks += prefillBlocks;
    load.requests += 1;
  }

  /** The first token arrived: the prompt is computed and the sequence now occupies decode blocks. */
  started(): void {
    if (this.#phase !== "prefill") return;
    this.#phase = "decode";
    const load = this.active.load(this.engine);
    load.prefillBlocks -= this.prefillBlocks;
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
    if (this.#phase === "prefill") load.prefillBlocks -= this.prefillBlocks;
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
