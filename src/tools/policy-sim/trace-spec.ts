// A trace named by plain data, so a worker thread can open its own pass over it.
import { openTrace, type OpenTraceOptions, type SharedPrefixOptions, sharedPrefixWorkload, type TraceSource } from "../trace/index.js";

export type TraceSpec =
  | { file: string; format?: OpenTraceOptions["format"]; blockSize?: number; strict?: boolean }
  | { generate: SharedPrefixOptions };

export function openTraceSpec(spec: TraceSpec): Promise<TraceSource> {
  if ("generate" in spec) return Promise.resolve(sharedPrefixWorkload(spec.generate));
  return openTrace(spec.file, {
    ...(spec.format !== undefined ? { format: spec.format } : {}),
    ...(spec.blockSize !== undefined ? { blockSize: spec.blockSize } : {}),
    ...(spec.strict !== undefined ? { strict: spec.strict } : {}),
  });
}
