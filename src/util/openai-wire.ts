// Reading what OpenAI-compatible servers answer, shared by the router's HTTP engines and the replay client:
// error bodies in every shape they come in, and response bodies read up to a limit.

/** An error body or error chunk: `{"error": {"message", "code"}}`, older vLLM's `{"object": "error", "message", "code"}`, FastAPI's `{"detail"}`. */
export function errorOf(body: unknown): { message: string; status: number | null } {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return { message: typeof body === "string" ? body : "(no message)", status: null };
  const b = body as Record<string, unknown>;
  const nested = typeof b.error === "object" && b.error !== null && !Array.isArray(b.error) ? (b.error as Record<string, unknown>) : null;
  const source = nested ?? b;
  let message: string | null = typeof source.message === "string" ? source.message : typeof b.error === "string" ? b.error : null;
  if (message === null && b.detail !== undefined) message = typeof b.detail === "string" ? b.detail : JSON.stringify(b.detail);
  const code = source.code;
  const status = typeof code === "number" && Number.isInteger(code) && code >= 100 && code <= 599 ? code : null;
  return { message: message ?? JSON.stringify(body).slice(0, 300), status };
}

/** An error response's body text as a message (the shapes above, else the text itself, flattened). */
export function errorMessage(text: string): string {
  try {
    return errorOf(JSON.parse(text)).message;
  } catch {
    const flat = text.trim().replace(/\s+/g, " ");
    return flat === "" ? "(empty body)" : flat.slice(0, 300);
  }
}

/** A body as text, reading at most `limit` bytes of it (the rest is drained and dropped). */
export async function readBoundedText(body: AsyncIterable<unknown>, limit: number): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const b = chunk as Buffer;
    if (size < limit) parts.push(b.subarray(0, limit - size));
    size += b.length;
  }
  return Buffer.concat(parts).toString("utf8");
}
