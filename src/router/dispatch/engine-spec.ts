// `--engine URL[,kv=tcp://HOST:PORT|none][,replay=tcp://HOST:PORT][,name=NAME][,role=prefill|decode|both]`,
// where URL is tcp://HOST:PORT (an engine speaking kvroute's msgpack protocol) or http://HOST:PORT (an
// OpenAI-compatible server: `vllm serve`, SGLang). kv=none: do not follow the engine's KV events even if it
// announces some (it is routed in approximate mode, from the router's own decisions).
import type { EngineRole } from "../schedule/index.js";

/** How the router talks to an engine: its msgpack protocol over TCP, or the OpenAI API over HTTP. */
export type EngineKind = "msgpack" | "http";

export interface EngineSpec {
  url: string;
  kind: EngineKind;
  /** Shown in headers, metrics and logs; defaults to HOST:PORT. */
  name: string;
  /**
   * The engine's KV-event publisher. A msgpack engine announces its own in the handshake and this overrides
   * it; an HTTP engine has no handshake, so without it the engine is routed by load alone.
   */
  kvEndpoint: string | null;
  /** kv=none: the engine's KV events are not followed, whatever it announces. */
  noKvEvents: boolean;
  /** The publisher's replay endpoint (overrides what a msgpack engine announces). */
  replayEndpoint: string | null;
  /**
   * What the engine is for when prefill and decode are disaggregated: prompts only (`prefill`), generation
   * after a KV transfer (`decode`), or whole requests (`both`, the default: an aggregated engine).
   */
  role: EngineRole;
}

const ROLES: readonly EngineRole[] = ["prefill", "decode", "both"];

const HOST = String.raw`([^:/\s,]+|\[[0-9a-fA-F:]+\])`;
const TCP = new RegExp(String.raw`^tcp://${HOST}:(\d{1,5})$`);
const HTTP = new RegExp(String.raw`^https?://${HOST}:(\d{1,5})/?$`);

const FORMS = "tcp://HOST:PORT (kvroute's engine protocol) or http://HOST:PORT (an OpenAI-compatible server), optionally followed by ,kv=URL|none ,replay=URL ,name=NAME ,role=prefill|decode|both";

export function parseEngineSpec(text: string): EngineSpec {
  const [first = "", ...options] = text.split(",");
  const kind: EngineKind | null = TCP.test(first) ? "msgpack" : HTTP.test(first) ? "http" : null;
  const match = kind === "msgpack" ? TCP.exec(first) : kind === "http" ? HTTP.exec(first) : null;
  if (!kind || !match || Number(match[2]) < 1 || Number(match[2]) > 65535) {
    throw new Error(`--engine ${JSON.stringify(text)}: expected ${FORMS}`);
  }
  const url = first.replace(/\/$/, "");
  const spec: EngineSpec = { url, kind, name: `${match[1]}:${match[2]}`, kvEndpoint: null, noKvEvents: false, replayEndpoint: null, role: "both" };
  for (const option of options) {
    const eq = option.indexOf("=");
    const key = option.slice(0, eq);
    const value = option.slice(eq + 1);
    if (eq < 1 || value === "") throw new Error(`--engine ${JSON.stringify(text)}: option ${JSON.stringify(option)} is not KEY=VALUE`);
    if (key === "kv" && value === "none") {
      spec.noKvEvents = true;
    } else if (key === "kv" || key === "replay") {
      if (!TCP.test(value)) throw new Error(`--engine ${JSON.stringify(text)}: ${key}= must be tcp://HOST:PORT${key === "kv" ? " or none" : ""}, got ${JSON.stringify(value)}`);
      if (key === "kv") spec.kvEndpoint = value;
      else spec.replayEndpoint = value;
    } else if (key === "name") {
      spec.name = value;
    } else if (key === "role") {
      if (!ROLES.includes(value as EngineRole)) throw new Error(`--engine ${JSON.stringify(text)}: role= must be prefill, decode or both, got ${JSON.stringify(value)}`);
      spec.role = value as EngineRole;
    } else {
      throw new Error(`--engine ${JSON.stringify(text)}: unknown option ${JSON.stringify(key)} (known: kv, replay, name, role)`);
    }
  }
  if (spec.noKvEvents && (spec.kvEndpoint !== null || spec.replayEndpoint !== null)) {
    throw new Error(`--engine ${JSON.stringify(text)}: kv=none follows no KV events; it cannot go with a kv= endpoint or replay=`);
  }
  if (spec.replayEndpoint !== null && spec.kvEndpoint === null && kind === "http") {
    throw new Error(`--engine ${JSON.stringify(text)}: replay= needs kv= as well (an HTTP engine announces no KV-event endpoint)`);
  }
  return spec;
}

/**
 * Checks that a fleet with roles can serve: prefill engines need engines that can decode, and decode engines
 * engines that can prefill (role both counts for either). Throws naming what is missing.
 */
export function checkRoles(specs: readonly Pick<EngineSpec, "role">[]): void {
  const has = (role: EngineRole) => specs.some((s) => s.role === role);
  if (has("prefill") && !has("decode") && !has("both")) {
    throw new Error("engines with role=prefill need at least one engine that can decode (role=decode or both)");
  }
  if (has("decode") && !has("prefill") && !has("both")) {
    throw new Error("engines with role=decode need at least one engine that can prefill (role=prefill or both)");
  }
}
