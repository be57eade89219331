// One simulated engine on the virtual clock: an EngineCore that is either idle or in the middle of a step.
// A step's work is computed when it starts (that is when the engine schedules it), and its outputs and KV
// events are held until it ends, when the rest of the world sees them. The KV pulls a step starts
// (disaggregated runs) are handed over at once: the transfer runs beside the engine's steps.
import type { BlockHasher } from "../../router/prepare/hashing/index.js";
import type { EngineRole } from "../../router/schedule/index.js";
import { type CoreOutput, EngineCore, type KvPull, type SimKvEvent } from "../../mock-engine/index.js";
import { coreOptions, type EngineSettings } from "./engine-settings.js";

export class SimEngine {
  readonly core: EngineCore;
  /** Whether a step is under way (it ends at an event in the queue). */
  stepping = false;
  /** The outputs of the step under way. */
  #outputs: CoreOutput[] = [];
  /** Requests aborted since the step under way started: its outputs for them are never delivered. */
  #dropped = new Set<number>();
  /** Requests routed here. */
  requests = 0;
  /** Prompt tokens computed here (not found in the cache). */
  prefillTokens = 0;
  /** Virtual time spent in steps. */
  busyMs = 0;
  #events: SimKvEvent[] = [];

  constructor(
    readonly id: number,
    /** How the router knows it; also the engine id in the kv_transfer_params it answers with. */
    readonly name: string,
    readonly role: EngineRole,
    settings: EngineSettings,
    seed: number,
    hasher: BlockHasher,
  ) {
    this.core = new EngineCore({
      ...coreOptions(settings, seed, name),
      blockHasher: hasher,
      kvEventSink: (batch) => {
        for (const event of batch) this.#events.push(event);
      },
    });
  }

  /**
   * Starts a step; returns its duration and the pulls it started, or null when the engine has nothing to do
   * (or nothing it can do until decode engines pull the blocks it holds). Throws when it has requests but can
   * schedule none of them and holds nothing, which would otherwise stop the clock.
   */
  startStep(): { durationMs: number; pulls: KvPull[] } | null {
    if (!this.core.hasWork) return null;
    const { durationMs, outputs, work, pulls } = this.core.step();
    if (work.prefillTokens === 0 && work.decodeSeqs === 0 && pulls.length === 0) {
      // Blocks held for decode engines come back when they are pulled; until then the engine waits.
      if (this.core.metrics().held > 0) return null;
      throw new Error(`engine ${this.name} holds ${this.core.numRequests} request(s) but can schedule none of them`);
    }
    this.stepping = true;
    this.#outputs = outputs;
    this.busyMs += durationMs;
    return { durationMs, pulls };
  }

  /**
   * The step under way ended: its outputs go to `output`, in order, but for requests aborted since it
   * started (an engine drops an aborted request's output; the blocks the step computed stay in its cache).
   * One may be aborted while earlier outputs are delivered.
   */
  deliver(output: (out: CoreOutput) => void): void {
    const outputs = this.#outputs;
    this.#outputs = [];
    for (const out of outputs) if (!this.#dropped.has(out.id)) output(out);
    this.#dropped.clear();
  }

  /** The request was aborted: what the step under way computed for it is not delivered. */
  dropOutputs(id: number): void {
    if (this.stepping) this.#dropped.add(id);
  }

  /** The KV events since the last call, in order. */
  takeEvents(): SimKvEvent[] {
    const events = this.#events;
    this.#events = [];
    return events;
  }
}
