// The engine interface: what the fleet and the dispatcher need from one engine, whatever it speaks: kvroute's
// msgpack engine protocol (msgpack-engine.ts) or an OpenAI-compatible HTTP server (http-engine.ts). Requests
// and events use the engine protocol's vocabulary (GenerateRequest, EngineEvent), which every implementation
// translates its own wire into.
import type { EngineEvent, GenerateRequest } from "../../engine-protocol/index.js";
import type { EngineReport } from "../schedule/index.js";
import type { AbortSignalLike } from "../../util/abort.js";

export type { EngineEvent, GenerateRequest };

/** Where an engine publishes its KV-cache events (vLLM's ZMQ publisher). */
export interface KvEventSource {
  /** ZMQ PUB endpoint of the first data-parallel rank (rank r publishes on port + r). */
  endpoint: string;
  /** ZMQ ROUTER endpoint answering replay requests, or null. */
  replayEndpoint: string | null;
  topic: string;
}

/** The router's view of an engine, learned when it comes up. */
export interface EngineInfo {
  /** What the engine is, for logs: "vllm 0.11.0", "kvroute-sim 0.1.0". */
  software: string;
  /** The served model name: the root of the router's block hashes. */
  model: string;
  blockSize: number;
  /** Context length: prompt plus output never exceed it. */
  maxModelLen: number;
  /** KV-cache capacity in blocks, summed over data-parallel ranks; null when the engine cannot say. */
  numBlocks: number | null;
  /** Null when the engine publishes no KV events: it is routed by load alone. */
  kvEvents: KvEventSource | null;
  /** Data-parallel ranks behind the engine: the first one's number and how many. */
  ranks: { start: number; size: number };
}

/** State changes an engine reports to the fleet. */
export interface EngineListener {
  /** Connected and healthy, with what the engine says about itself. */
  up(info: EngineInfo): void;
  /** Lost; the engine keeps trying to come back and calls up() again when it does. */
  down(reason: string): void;
  /** Permanently unusable (e.g. it speaks another protocol version); it stops trying. */
  refused(reason: string): void;
  /**
   * The engine's own report of its queue (its metrics), or null when the last one is no longer fresh. Only
   * engines that publish their load call it.
   */
  load?(report: EngineReport | null): void;
}

export interface GenerateOptions {
  signal?: AbortSignalLike;
  /**
   * The time model's TTFT for the request on this engine (ms): until then without a token, a request is
   * not late (stall-watch.ts). Engines themselves ignore it.
   */
  expectFirstTokenMs?: number;
}

export interface Engine {
  /** Where it is; never shown to clients (error messages name engines by their name). */
  readonly url: string;
  /** Starts connecting, retrying in the background; every state change goes to `listener`. */
  start(listener: EngineListener): void;
  /**
   * Sends one request. Failures arrive as an error event, never as a throw; aborting the signal (or leaving
   * the loop) cancels the request on the engine and ends the stream without a further event.
   */
  generate(request: GenerateRequest, options: GenerateOptions): AsyncIterable<EngineEvent>;
  close(): Promise<void>;
}
