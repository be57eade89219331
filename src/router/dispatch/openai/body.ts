// The /v1/completions body the router sends an OpenAI-compatible engine for one request: the exact token ids
// it hashed as the prompt (so the engine's prefix cache and the router's index see the same tokens), always
// streamed, with usage on every chunk (continuous_usage_stats: the cumulative completion_tokens count tells
// how many tokens each chunk carries) and at the end (include_usage). Sampling fields pass through under
// their OpenAI and vLLM names; SGLang takes the same names. `kv_transfer_params` pass through as they are
// (vLLM's OpenAI server hands them to its KV connector). A request asking for a remote decode is not
// streamed: vLLM returns the connector's kv_transfer_params only in a whole response (wantsWholeResponse).
import type { GenerateRequest } from "../engine.js";

/** Whether the engine's answer must be read whole: a prefill for a remote decode, whose kv_transfer_params only a whole body carries. */
export function wantsWholeResponse(request: GenerateRequest): boolean {
  return request.kvTransferParams?.do_remote_decode === true;
}

export function completionBody(model: string, request: GenerateRequest): Record<string, unknown> {
  const s = request.sampling ?? {};
  const body: Record<string, unknown> = wantsWholeResponse(request)
    ? { model, prompt: Array.from(request.promptTokenIds), stream: false }
    : { model, prompt: Array.from(request.promptTokenIds), stream: true, stream_options: { include_usage: true, continuous_usage_stats: true } };
  if (s.maxTokens !== undefined) body.max_tokens = s.maxTokens;
  if (s.temperature !== undefined) body.temperature = s.temperature;
  if (s.topP !== undefined) body.top_p = s.topP;
  if (s.topK !== undefined && s.topK !== -1) body.top_k = s.topK;
  if (s.seed !== undefined) body.seed = s.seed;
  if (s.stop !== undefined && s.stop.length > 0) body.stop = s.stop;
  if (s.stopTokenIds !== undefined && s.stopTokenIds.length > 0) body.stop_token_ids = s.stopTokenIds;
  if (s.ignoreEos) body.ignore_eos = true;
  if (s.minTokens !== undefined && s.minTokens > 0) body.min_tokens = s.minTokens;
  if (s.logprobs !== undefined) body.logprobs = s.logprobs;
  if (request.cacheSalt !== undefined) body.cache_salt = request.cacheSalt;
  if (request.kvTransferParams !== undefined) body.kv_transfer_params = request.kvTransferParams;
  return body;
}
