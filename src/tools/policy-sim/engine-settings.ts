// The simulated engines' settings, and defaults that model one H100 SXM (80 GB) serving an 8B model in
// bf16 (Llama 3.1 8B: 32 layers, 8 KV heads of 128 dimensions) with vLLM.
//
// KV capacity. A token's KV is 2 (K and V) × 32 layers × 8 heads × 128 dims × 2 bytes = 128 KiB, so a
// 16-token block is 2 MiB. vLLM takes 90% of the GPU's 80 GiB (72 GiB); the weights take 8.03 billion × 2
// bytes (15 GiB) and activations and CUDA graphs some 3 GiB, which leaves about 54 GiB: 27,648 blocks,
// 442,368 tokens. The model's 131,072-token context (8,192 blocks) fits, as does the Mooncake trace's
// longest prompt (126,195 tokens).
//
// Timing (src/simulator/timing.ts). A step reads every weight once: 16 GB at about 80% of the H100's 3.35
// TB/s of HBM3 bandwidth is 6 ms, the step overhead. Attention reads each KV block a sequence holds: 2 MiB
// at the same rate is 0.0008 ms per block. Prefill is compute-bound: 2 × 8 billion = 16 GFLOP per token, at
// about 40% of the H100's 989 dense bf16 TFLOPS, 0.04 ms per token (25,000 tokens/s). A decoding sequence
// adds its share of the (small-batch, inefficient) matrix products and sampling: 0.03 ms. One sequence
// decoding at 12k tokens of context then takes 6.6 ms a token, about 150 tokens/s.
//
// KV transfer (disaggregated runs). A decode engine pulls the blocks it lacks from the prefill engine over
// one 400 Gb/s NIC (a ConnectX-7, one per GPU on an H100 node): a 2 MiB block takes 0.042 ms, a
// 12,000-token prompt (750 blocks) 31 ms.
import { DEFAULT_KV_TRANSFER_GBPS, type EngineCoreOptions, type TimingModel } from "../../mock-engine/index.js";

export interface EngineSettings {
  /** Tokens per KV block; the router hashes prompts with it too. */
  blockSize: number;
  /** KV-cache capacity of each engine, in blocks. */
  numBlocks: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  maxModelLen: number;
  timing: TimingModel;
  /** KV bytes per token: a block's size on the link is block size × this. */
  kvBytesPerToken: number;
  /** The link a decode engine pulls blocks over, in Gb/s. */
  kvTransferGbps: number;
}

export const H100_8B: Readonly<EngineSettings> = {
  blockSize: 16,
  numBlocks: 27_648,
  maxNumSeqs: 256,
  maxNumBatchedTokens: 8192,
  maxModelLen: 131_072,
  timing: { stepOverheadMs: 6, prefillMsPerToken: 0.04, decodeMsPerSeq: 0.03, msPerKvBlock: 0.0008 },
  kvBytesPerToken: 2 * 32 * 8 * 128 * 2,
  kvTransferGbps: DEFAULT_KV_TRANSFER_GBPS,
};

/** The model name the router's hashes are rooted in; any fixed name would do, since every engine shares it. */
export const SIM_MODEL = "meta-llama/Llama-3.1-8B-Instruct";

export function coreOptions(settings: EngineSettings, seed: number, engineId: string): EngineCoreOptions {
  return {
    engineId,
    blockSize: settings.blockSize,
    numBlocks: settings.numBlocks,
    maxNumSeqs: settings.maxNumSeqs,
    maxNumBatchedTokens: settings.maxNumBatchedTokens,
    maxModelLen: settings.maxModelLen,
    timing: settings.timing,
    seed,
  };
}
