// Builds wire messages from the typed forms, leaving out absent fields.
import type { Welcome, GenerateRequest, SamplingOptions } from "./types.js";
import type { GenerateMessage, WelcomeMessage, WireSampling } from "./wire.js";

function toWireSampling(s: SamplingOptions): WireSampling {
  const out: WireSampling = {};
  if (s.maxTokens !== undefined) out.max_tokens = s.maxTokens;
  if (s.temperature !== undefined) out.temperature = s.temperature;
  if (s.topP !== undefined) out.top_p = s.topP;
  if (s.topK !== undefined) out.top_k = s.topK;
  // msgpackr writes integers beyond 32 bits as doubles; a BigInt keeps a large seed an integer on the wire.
  if (s.seed !== undefined) out.seed = Math.abs(s.seed) > 0x7fffffff ? BigInt(s.seed) : s.seed;
  if (s.stop !== undefined) out.stop = [...s.stop];
  if (s.stopTokenIds !== undefined) out.stop_token_ids = Array.from(s.stopTokenIds);
  if (s.ignoreEos !== undefined) out.ignore_eos = s.ignoreEos;
  if (s.minTokens !== undefined) out.min_tokens = s.minTokens;
  if (s.logprobs !== undefined) out.logprobs = s.logprobs;
  return out;
}

/** A plain loop: Array.from on a typed array goes through the iterator protocol, about 8x slower. */
function toArray(ids: ArrayLike<number>): number[] {
  const out = new Array<number>(ids.length);
  for (let i = 0; i < ids.length; i++) out[i] = ids[i]!;
  return out;
}

export function toGenerateMessage(id: number, request: GenerateRequest): GenerateMessage {
  const ids = request.promptTokenIds;
  // Typed arrays would be packed as a msgpackr extension; the wire wants a plain array.
  return Object.assign(generateFields(id, request), { prompt_token_ids: Array.isArray(ids) ? ids : toArray(ids) });
}

/** A generate message without its prompt, which encodeGenerateFrame writes itself. */
export function generateFields(id: number, request: GenerateRequest): Omit<GenerateMessage, "prompt_token_ids"> {
  const message: Omit<GenerateMessage, "prompt_token_ids"> = { type: "generate", id };
  if (request.sampling) message.sampling = toWireSampling(request.sampling);
  if (request.overlapBlocks !== undefined) message.overlap_blocks = request.overlapBlocks;
  if (request.loraName !== undefined) message.lora_name = request.loraName;
  if (request.cacheSalt !== undefined) message.cache_salt = request.cacheSalt;
  if (request.requestId !== undefined) message.request_id = request.requestId;
  if (request.dataParallelRank !== undefined) message.data_parallel_rank = request.dataParallelRank;
  if (request.kvTransferParams !== undefined) message.kv_transfer_params = request.kvTransferParams;
  return message;
}

export function toWelcomeMessage(info: Welcome): WelcomeMessage {
  const kv = info.kvEvents;
  return {
    type: "welcome",
    protocol: info.protocolVersion,
    engine_id: info.engineId,
    engine: info.engine,
    model: info.model,
    block_size: info.blockSize,
    num_blocks: info.numBlocks,
    max_model_len: info.maxModelLen,
    max_frame_bytes: info.maxFrameBytes,
    data_parallel_start_rank: info.dataParallelStartRank,
    data_parallel_local_size: info.dataParallelLocalSize,
    kv_events: kv && {
      endpoint: kv.endpoint,
      topic: kv.topic,
      data_parallel_size: kv.dataParallelSize,
      replay_endpoint: kv.replayEndpoint,
      layout: kv.layout,
      medium: kv.medium,
    },
  };
}
