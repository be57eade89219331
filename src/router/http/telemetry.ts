// What the frontend reports about each request; the metrics and log layers subscribe to it.
import type { CachedTokensSource } from "../types.js";

export interface RequestRecord {
  endpoint: string;
  status: number;
  stream: boolean;
  engines: string[];
  /** With engine roles: the engine that computed each prompt. */
  prefillEngines?: string[];
  overlapBlocks: number[];
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  cachedTokensSource: CachedTokensSource | null;
  /** Seconds from the request's arrival to the first generated token, when there was one. */
  ttft: number | null;
  duration: number;
  error: string | null;
}

export interface Telemetry {
  requestDone(record: RequestRecord): void;
  interTokenLatency(seconds: number): void;
}

export const noTelemetry: Telemetry = {
  requestDone() {},
  interTokenLatency() {},
};
