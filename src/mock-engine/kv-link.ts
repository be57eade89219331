// The modelled link a decode engine pulls KV blocks over: bytes per block from the model's dimensions, and
// a bandwidth. A pull of n blocks takes n × block bytes / bandwidth of modelled time.

/** What a model's KV cache holds per token. */
export interface KvDims {
  layers: number;
  kvHeads: number;
  headDim: number;
  /** Bytes per value: 2 for bf16 and fp16, 1 for fp8. */
  dtypeBytes: number;
}

/** Qwen3-0.6B, the simulated engine's default model: 28 layers, 8 KV heads of 128, bf16 (112 KiB a token). */
export const QWEN3_0_6B: KvDims = { layers: 28, kvHeads: 8, headDim: 128, dtypeBytes: 2 };

/** One 400 Gb/s NIC per GPU (ConnectX-7 on an H100 node), the default link. */
export const DEFAULT_KV_TRANSFER_GBPS = 400;

/** K and V, for every layer and KV head. */
export function kvBytesPerToken(d: KvDims): number {
  return 2 * d.layers * d.kvHeads * d.headDim * d.dtypeBytes;
}

/** Modelled time (ms) to move `blocks` blocks of `blockSize` tokens at `gbps` gigabits a second. */
export function transferMs(blocks: number, blockSize: number, bytesPerToken: number, gbps: number): number {
  if (!(gbps > 0 && Number.isFinite(gbps))) throw new RangeError(`a KV transfer bandwidth must be a number above 0 Gb/s, got ${gbps}`);
  return (blocks * blockSize * bytesPerToken * 8) / (gbps * 1e6);
}
