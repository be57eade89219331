// What an OpenAI-compatible engine says about itself in GET /v1/models: the served model's name and its
// context length. vLLM and SGLang both list `max_model_len`; LoRA adapters follow the base model, each
// with a `parent` (vLLM) naming it, so the base model is the first card without one.

export interface ServedModel {
  model: string;
  maxModelLen: number;
  /** `owned_by` ("vllm", "sglang"), for logs. */
  ownedBy: string | null;
}

/** Reads a /v1/models body; throws with what is missing or wrong. */
export function parseModels(body: unknown): ServedModel {
  const data = (body as { data?: unknown } | null)?.data;
  if (!Array.isArray(data) || data.length === 0) throw new Error("GET /v1/models listed no model (expected {\"data\": [{\"id\", \"max_model_len\"}, ...]})");
  const card = data.find((c) => typeof c === "object" && c !== null && ((c as { parent?: unknown }).parent ?? null) === null) as Record<string, unknown> | undefined;
  if (card === undefined) throw new Error("GET /v1/models listed only adapters (every card has a parent)");
  if (typeof card.id !== "string" || card.id === "") throw new Error(`GET /v1/models: the model card has no id: ${JSON.stringify(card).slice(0, 200)}`);
  const len = card.max_model_len;
  if (typeof len !== "number" || !Number.isSafeInteger(len) || len < 2) {
    throw new Error(`GET /v1/models: model ${JSON.stringify(card.id)} lists no usable max_model_len (got ${JSON.stringify(len)}); vLLM and SGLang list it`);
  }
  return { model: card.id, maxModelLen: len, ownedBy: typeof card.owned_by === "string" ? card.owned_by : null };
}
