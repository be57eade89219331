// Engine roles and request stages when prefill and decode are disaggregated.
//
// An engine's role says what it is for: `prefill` (prompts, whose KV cache is then pulled by a decode
// engine), `decode` (generation from a transferred KV cache, and whole requests prefilled locally), or
// `both` (an aggregated engine: anything). A stage is what one attempt asks of its engine: the `whole`
// request (prefill and decode in one place), its `prefill` alone, or its `decode` after a KV transfer.
// Each stage has its pool of engines:
//
//   whole   → decode, both      (a prefill engine never generates for a client)
//   prefill → prefill, both
//   decode  → decode, both
//
// A fleet whose engines are all `both` is aggregated: every request is one whole attempt, as without roles.

export type EngineRole = "prefill" | "decode" | "both";

export type Stage = "whole" | "prefill" | "decode";

/** Whether an engine of `role` may take an attempt of `stage`. */
export function servesStage(role: EngineRole, stage: Stage): boolean {
  return role === "both" || (stage === "prefill" ? role === "prefill" : role === "decode");
}

/** Whether a fleet with these roles splits requests into a prefill and a decode stage. */
export function isDisaggregated(roles: readonly EngineRole[]): boolean {
  return roles.some((r) => r !== "both");
}
