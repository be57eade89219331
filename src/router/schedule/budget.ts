import { RouterError } from "../types.js";

/**
 * The output budget of a request: what it asked for, or the rest of the context when it asked for no
 * limit. A prompt that leaves no room, or a request whose prompt plus asked output passes the context, is
 * refused, as vLLM refuses it.
 */
export function outputBudget(asked: number | null, promptTokens: number, maxModelLen: number): number {
  if (promptTokens >= maxModelLen) throw promptTooLong(maxModelLen, promptTokens, true);
  if (asked !== null && promptTokens + asked > maxModelLen) {
    throw contextLengthError(
      maxModelLen,
      `However, you requested ${promptTokens + asked} tokens (${promptTokens} in the prompt, ${asked} for the completion).`,
      "max_tokens",
    );
  }
  return asked ?? maxModelLen - promptTokens;
}

/**
 * A prompt with no room left for the completion. `exact`: the prompt has `tokens` tokens; otherwise
 * tokenizing stopped once it had found `tokens`, already too many (the prompt has at least that many).
 */
export function promptTooLong(maxModelLen: number, tokens: number, exact: boolean): RouterError {
  const count = exact ? `${tokens} tokens` : `at least ${tokens} tokens (tokenizing stopped there)`;
  return contextLengthError(maxModelLen, `However, the prompt has ${count}, leaving no room for the completion.`, "prompt");
}

function contextLengthError(maxModelLen: number, detail: string, param: string): RouterError {
  return new RouterError(
    "invalid_request",
    `This model's maximum context length is ${maxModelLen} tokens. ${detail} Please reduce the length of the prompt or the completion.`,
    param,
    "context_length_exceeded",
  );
}
