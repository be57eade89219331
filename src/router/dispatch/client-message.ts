// What a client reads of an engine's failure. Engines are named by their name (`name=`, default
// HOST:PORT); the reasons their errors carry come from the OS, undici or the engine itself and can hold
// internal addresses ("connect ECONNREFUSED 10.0.0.5:9000", a URL). Those are masked before the message
// leaves the router; logs and /health keep the full text for operators.
//
// Invariant: the result contains no URL with a scheme, no IPv4 address and no bracketed IPv6 address, except
// one that is exactly the engine's name.

const ADDRESS = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'),;]+|\[[0-9a-f:.]*:[0-9a-f:.]*\](?::\d+)?|\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b/gi;
const MASK = "(address hidden)";

/** `message` with every address but the engine's name masked. */
export function clientMessage(message: string, engineName: string): string {
  // An address-like name (the default HOST:PORT) is the name: it stays readable.
  return message.replace(ADDRESS, (address) => (address === engineName ? address : MASK));
}
