// Messages between the main thread and the preparation pool. Token arrays cross threads by transfer.
import type { CacheInfo, ChatMessage, EncoderInfo } from "./tokenize/index.js";

export type PrepareInput =
  | { kind: "text"; text: string }
  | { kind: "chat"; messages: ChatMessage[]; templateKwargs: Record<string, unknown> }
  | { kind: "tokens"; tokens: Uint32Array };

export interface PrepareTask {
  input: PrepareInput;
  blockSize: number;
  seed: bigint;
  /**
   * The engines' context length: a prompt of this many tokens or more leaves no room for a completion,
   * so tokenizing stops as soon as it has found that many.
   */
  maxModelLen: number;
  /** Set to non-zero (Atomics) by the main thread when the request's client has left; null: never. */
  cancel: SharedArrayBuffer | null;
}

/** Seconds spent per stage of preparation. */
export interface PrepareTimings {
  tokenize: number;
  hash: number;
  index: number;
}

export interface Prepared {
  ok: true;
  tokens: Uint32Array;
  /** Full blocks in the prompt. */
  blocks: number;
  /** The prompt's chained block hashes, one per full block (its own array). */
  hashes: BigUint64Array;
  /** Leading blocks of the prompt each engine holds, indexed by engine. */
  overlaps: Uint32Array;
  timings: PrepareTimings;
}

/**
 * Bad input found while preparing (an id outside the vocabulary, a chat the template cannot render, a
 * prompt longer than the context), or preparation given up because the client left (code `cancelled`).
 */
export interface PrepareRejected {
  ok: false;
  param: string | null;
  code: string;
  message: string;
}

export type PrepareResult = Prepared | PrepareRejected;

export const CANCELLED: PrepareRejected = { ok: false, param: null, code: "cancelled", message: "the client left before its prompt was prepared" };

export interface TokenizerInfo {
  source: string;
  vocabSize: number;
  modelMaxLength: number | null;
  hasChatTemplate: boolean;
  /** Which encoder the pool threads use, and why (worth a log line at start). */
  encoder: EncoderInfo;
  /** Each pool thread's tokenization cache: its budget, or why it is off (worth a log line when off). */
  cache: CacheInfo;
}
