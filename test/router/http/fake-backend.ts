// A small in-process backend for the frontend's tests: answers "ok" from a later turn of the event loop, as
// an engine would, and keeps every abort signal it was given.
import type { Backend, GenerationEvent, GenerateInput } from "../../../src/router/types.js";
import { LeanAbortSignal, type AbortSignalLike } from "../../../src/util/abort.js";

export interface FakeBackend extends Backend {
  /** Every signal given, with its listener count right after the backend added its own. */
  given: { signal: AbortSignalLike; listeners: number }[];
  /** Every prompt given, in order. */
  prompts: GenerateInput["prompt"][];
}

async function* answer({ prompt }: GenerateInput, signal: AbortSignalLike): AsyncGenerator<GenerationEvent> {
  await new Promise((resolve) => setImmediate(resolve));
  yield { type: "start", engine: "fake", overlapBlocks: 0, promptTokens: 1, cachedTokensSource: "engine" };
  if (prompt.kind === "text" && prompt.text === "wait") {
    await new Promise((resolve) => signal.addEventListener("abort", () => resolve(undefined), { once: true }));
    return;
  }
  yield { type: "delta", text: "ok", tokenCount: 1 };
  yield { type: "finish", finishReason: "length", usage: { promptTokens: 1, completionTokens: 1, cachedTokens: 0, cachedTokensSource: "engine" } };
}

export function fakeBackend(): FakeBackend {
  const given: FakeBackend["given"] = [];
  const prompts: FakeBackend["prompts"] = [];
  return {
    given,
    prompts,
    models: () => [{ id: "m", object: "model", created: 0, owned_by: "kvroute", max_model_len: 1024 }],
    checkModel: () => undefined,
    health: () => ({ ready: true, engines: [{ engine: "fake", state: "up" }] }),
    route: () => Promise.reject(new Error("unused")),
    generate: (input, signal) => {
      // As the engine client does: one abort listener per engine request, on the signal it is given.
      signal.addEventListener("abort", () => undefined, { once: true });
      if (!(signal instanceof LeanAbortSignal)) throw new Error("the frontend gave a signal that is not its LeanAbortSignal");
      given.push({ signal, listeners: signal.listenerCount });
      prompts.push(input.prompt);
      return Promise.resolve(answer(input, signal));
    },
    metrics: () => Promise.resolve({ contentType: "text/plain", body: "kvroute_up 1\n" }),
  };
}
