// One simulated engine on the virtual clock: an EngineCore that is either idle or in the middle of a step.
// A step's work is computed when it starts (that is when the engine schedules it), and its outputs and KV
// events are held until it ends, when the rest of the world sees them.
import type { BlockHasher } from "../../router/prepare/hashing/index.js";
import { type CoreOutput, EngineCore, type SimKvEvent } from "../../mock-engine/index.js";
import { coreOptions, type EngineSettings } from "./engine-settings.js";

export class SimEngine {
  readonly core: EngineCore;
  /** Whether a step is under way (it ends at an event in the queue). */
  stepping = false;
  /** The outputs of the step under way. */
  outputs: CoreOutput[] = [];
  /** Requests routed here. */
  requests = 0;
  /** Prompt tokens computed here (not found in the cache). */
  prefillTokens = 0;
  /** Virtual time spent in steps. */
  busyMs = 0;
  #events: SimKvEvent[] = [];

  constructor(
    readonly id: number,
    settings: EngineSettings,
    seed: number,
    hasher: BlockHasher,
  ) {
    this.core = new EngineCore({
      ...coreOptions(settings, seed),
      blockHasher: hasher,
      kvEventSink: (batch) => {
        for (const event of batch) this.#events.push(event);
      },
    });
  }

  /**
   * Starts a step; returns its duration, or null when the engine has nothing to do. Throws when it has
   * requests but can schedule none of them, which would otherwise stop the clock.
   */
  startStep(): number | null {
    if (!this.core.hasWork) return null;
    const { durationMs, outputs, work } = this.core.step();
    if (work.prefillTokens === 0 && work.decodeSeqs === 0) {
      throw new Error(`engine ${this.id} holds ${this.core.numRequests} request(s) but can schedule none of them`);
    }
    this.stepping = true;
    this.outputs = outputs;
    this.busyMs += durationMs;
    return durationMs;
  }

  /** The KV events since the last call, in order. */
  takeEvents(): SimKvEvent[] {
    const events = this.#events;
    this.#events = [];
    return events;
  }
}
