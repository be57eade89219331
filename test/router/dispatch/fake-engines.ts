// Engines whose answers are scripted, for dispatch tests without sockets: each records what it was sent.
import type { Engine, EngineEvent, GenerateRequest } from "../../../src/router/dispatch/engine.js";
import type { GenerationEvent } from "../../../src/router/types.js";

export type Script = (request: GenerateRequest, signal: AbortSignal | undefined) => AsyncIterable<EngineEvent>;

export class FakeEngine implements Engine {
  readonly url = "fake://";
  readonly sent: GenerateRequest[] = [];
  constructor(private readonly script: Script) {}
  start(): void {}
  generate(request: GenerateRequest, options: { signal?: AbortSignal }): AsyncIterable<EngineEvent> {
    this.sent.push(request);
    return this.script(request, options.signal);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

export const delta = (n: number): EngineEvent => ({ type: "delta", tokenIds: Array.from({ length: n }, (_, i) => i), text: "x".repeat(n) });
export const finish = (cached: number | null, completion = 2, extra: Partial<Extract<EngineEvent, { type: "finish" }>> = {}): EngineEvent => ({
  type: "finish",
  finishReason: "length",
  stopReason: null,
  usage: { promptTokens: 64, completionTokens: completion, cachedTokens: cached },
  ...extra,
});
export const failure = (code: string, tokensProduced = 0): EngineEvent => ({ type: "error", code, message: `engine e: ${code}`, tokensProduced });

export function answers(...events: EngineEvent[]): Script {
  return async function* () {
    for (const e of events) yield e;
  };
}

/** Streams `n` deltas, then waits until aborted; the stream then ends with no final event, as EngineClient's does. */
export function untilAborted(n: number): Script {
  return async function* (_request, signal) {
    for (let i = 0; i < n; i++) yield delta(1);
    if (!signal) throw new Error("this engine needs a signal");
    if (!signal.aborted) await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
  };
}

export async function collect(events: AsyncIterable<GenerationEvent>): Promise<GenerationEvent[]> {
  const out: GenerationEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}
