import { RouterError } from "../types.js";

/**
 * The output budget of a request: what it asked for, or the rest of the context when it asked for no
 * limit. A prompt that leaves no room, or a request whose prompt plus asked output passes the context, is
 * refused, as vLLM refuses it.
 */
export function outputBudget(asked: number | null, promptTokens: number, maxModelLen: number): number {
  if (promptTokens >= maxModelLen || (asked !== null && promptTokens + asked > maxModelLen)) {
    const detail =
      asked === null || promptTokens >= maxModelLen
        ? `However, the prompt has ${promptTokens} tokens, leaving no room for the completion.`
        : `However, you requested ${promptTokens + asked} tokens (${promptTokens} in the prompt, ${asked} for the completion).`;
    throw new RouterError(
      "invalid_request",
      `This model's maximum context length is ${maxModelLen} tokens. ${detail} Please reduce the length of the prompt or the completion.`,
      asked === null || promptTokens >= maxModelLen ? "prompt" : "max_tokens",
      "context_length_exceeded",
    );
  }
  return asked ?? maxModelLen - promptTokens;
}
