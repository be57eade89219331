// The kv_transfer_params the simulated engine understands, shaped as vLLM's NixlConnector has them:
//
// - a prefill request carries {do_remote_decode: true}: the engine computes the prompt and, when the
//   request ends at its max_tokens, holds its blocks for a decode engine to pull, answering with
//   {do_remote_prefill: true, do_remote_decode: false, remote_engine_id, remote_request_id,
//   remote_block_ids, remote_host, remote_port} (host and port: where its transfer channel listens);
// - a decode request carries those returned params: the engine pulls the prompt's blocks it lacks from the
//   named engine, then computes the last prompt token itself and generates.
//
// Parameters the engine cannot use are not an error: as vLLM's connector does, it logs them and serves the
// request without a transfer.
import type { KvTransferParams } from "../engine-protocol/index.js";

/** Where a decode request's blocks are: the prefill engine and its request. */
export interface RemotePrefill {
  engineId: string;
  requestId: string;
  /** The prefill engine's transfer channel; null where the caller moves blocks itself (virtual time). */
  host: string | null;
  port: number | null;
}

export type KvTransferRequest =
  | { kind: "none" }
  /** Compute the prompt and hold its blocks for a decode engine. */
  | { kind: "remote_decode" }
  /** Pull the prompt's blocks from a prefill engine. */
  | { kind: "remote_prefill"; from: RemotePrefill }
  /** Params the engine cannot use: the request runs without a transfer. */
  | { kind: "invalid"; reason: string };

export function readKvTransferParams(params: KvTransferParams | undefined): KvTransferRequest {
  if (params === undefined) return { kind: "none" };
  if (params.do_remote_prefill === true) {
    const engineId = params.remote_engine_id;
    const requestId = params.remote_request_id;
    if (typeof engineId !== "string" || engineId === "") return { kind: "invalid", reason: "remote_engine_id must be a non-empty string" };
    if (typeof requestId !== "string" || requestId === "") return { kind: "invalid", reason: "remote_request_id must be a non-empty string" };
    const host = params.remote_host ?? null;
    const port = params.remote_port ?? null;
    if (host !== null && typeof host !== "string") return { kind: "invalid", reason: "remote_host must be a string" };
    if (port !== null && !(typeof port === "number" && Number.isInteger(port) && port > 0 && port < 65536)) {
      return { kind: "invalid", reason: "remote_port must be a TCP port" };
    }
    return { kind: "remote_prefill", from: { engineId, requestId, host, port } };
  }
  if (params.do_remote_decode === true) return { kind: "remote_decode" };
  return { kind: "none" };
}

/** What a prefill engine answers when it holds a request's blocks for a decode engine. */
export function heldParams(engineId: string, requestId: string, blockIds: readonly number[]): KvTransferParams {
  return { do_remote_prefill: true, do_remote_decode: false, remote_engine_id: engineId, remote_request_id: requestId, remote_block_ids: [...blockIds] };
}
