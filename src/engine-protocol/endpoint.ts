// Engine addresses: `tcp://HOST:PORT` for the protocol, and ZMQ endpoints an engine reports with a
// wildcard host that the router must replace by the host it reached the engine on.

export interface TcpAddress {
  host: string;
  port: number;
}

/** Parses `tcp://HOST:PORT` (HOST may be a bracketed IPv6 address). Throws a TypeError naming the input. */
export function parseEngineUrl(url: string): TcpAddress {
  const match = /^tcp:\/\/(\[[^\]]+\]|[^:/\s]+):(\d{1,5})$/.exec(url);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port < 1 || port > 65535) {
    throw new TypeError(`engine URL must look like tcp://HOST:PORT with a port from 1 to 65535, not ${JSON.stringify(url)}`);
  }
  const host = match[1]!;
  return { host: host.startsWith("[") ? host.slice(1, -1) : host, port };
}

const WILDCARD_HOSTS = new Set(["*", "0.0.0.0", "::", "[::]", "[*]"]);

/** Replaces a wildcard host in a `tcp://` ZMQ endpoint with `host`; other endpoints are returned as they are. */
export function resolveWildcardHost(endpoint: string, host: string): string {
  const match = /^tcp:\/\/(.+):(\d+|\*)$/.exec(endpoint);
  if (!match || !WILDCARD_HOSTS.has(match[1]!)) return endpoint;
  const shown = host.includes(":") ? `[${host}]` : host;
  return `tcp://${shown}:${match[2]}`;
}
