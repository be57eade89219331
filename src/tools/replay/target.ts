// The OpenAI endpoint a replay drives: URL handling and model discovery.
import { request, type Dispatcher } from "undici";

/** `http://host:port`, with or without a trailing `/` or `/v1`, to the base the API paths go under. */
export function apiBase(target: string): string {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new Error(`--target must be an http(s) URL such as http://127.0.0.1:8000, got ${JSON.stringify(target)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`--target must be http or https, got ${url.protocol}`);
  const path = url.pathname.replace(/\/+$/, "").replace(/\/v1$/, "");
  return `${url.origin}${path}/v1`;
}

export function authHeaders(apiKey: string | undefined): Record<string, string> {
  return apiKey ? { authorization: `Bearer ${apiKey}` } : {};
}

/** The first model `GET /v1/models` lists: what to send when no model is given. */
export async function discoverModel(base: string, dispatcher: Dispatcher, apiKey: string | undefined, timeoutMs: number): Promise<string> {
  const where = `${base}/models`;
  let text: string;
  try {
    const res = await request(where, { headers: authHeaders(apiKey), dispatcher, signal: AbortSignal.timeout(timeoutMs) });
    text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
  } catch (err) {
    throw new Error(`cannot list the models at ${where} (${(err as Error).message}); pass --model`);
  }
  let id: unknown;
  try {
    id = (JSON.parse(text) as { data?: { id?: unknown }[] }).data?.[0]?.id;
  } catch {
    id = undefined;
  }
  if (typeof id !== "string" || id === "") throw new Error(`${where} lists no model; pass --model`);
  return id;
}
