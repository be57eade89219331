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

/** Bad input found while preparing (an id outside the vocabulary, a chat the template cannot render). */
export interface PrepareRejected {
  ok: false;
  param: string;
  code: string;
  message: string;
}

export type PrepareResult = Prepared | PrepareRejected;

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
