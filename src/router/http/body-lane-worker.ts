// The body lane's thread (body-lane.ts): decodes, parses and validates a big body, then tokenizes its text
// and chat prompts with the same tokenizer and limits as the preparation pool, and hands back token ids.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { move, transferableSymbol, valueSymbol, workerData } from "piscina";
import { tokenizePrompt, type SpecialTokensInContent } from "../prepare/index.js";
import { loadTokenizer } from "../prepare/tokenize/index.js";
import type { Prompt } from "../types.js";
import type { BodyResult, BodyTask } from "./body-lane.js";
import { ApiError } from "./errors.js";
import { parseRequest } from "./request.js";
import { parseJsonBody } from "./json-body.js";

const data = workerData as { tokenizerDir: string | null; specialTokensInContent: SpecialTokensInContent };
// No tokenization cache: what comes here is one-off, and each entry would be megabytes.
const tokenizer = await loadTokenizer(data.tokenizerDir ?? undefined, { cacheBytes: 0, specialTokensInContent: data.specialTokensInContent });

/**
 * Every body leaves tens of megabytes of garbage here (its bytes, its text, its parsed prompts), in a thread
 * that then often sits idle, and V8 collects an idle thread's heap only after a long while: in a 10-minute
 * soak with a 15.6 MB prompt every 8 s, the router's resident memory stayed 150 MB above its baseline a
 * minute after the traffic stopped. So once the lane has had nothing to do for a second, it collects.
 */
const IDLE_COLLECT_MS = 1_000;
setFlagsFromString("--expose-gc");
const collect = runInNewContext("gc") as () => void;
let running = 0;
let idleTimer: NodeJS.Timeout | null = null;

/** The result, its token arrays moved to the main thread rather than copied. */
class Transfer {
  constructor(private readonly result: BodyResult) {}
  get [transferableSymbol](): ArrayBuffer[] {
    if (this.result.kind !== "request") return [];
    return this.result.request.prompts.flatMap((p) => (p.kind === "tokens" ? [p.tokens.buffer as ArrayBuffer] : []));
  }
  get [valueSymbol](): BodyResult {
    return this.result;
  }
}

function failed(err: ApiError): BodyResult {
  return { kind: "error", error: { status: err.status, message: err.message, type: err.type, param: err.param, code: err.code } };
}

async function read(task: BodyTask): Promise<BodyResult> {
  const flag = new Int32Array(task.cancel);
  // A body that waited here behind others may have lost its client meanwhile: it is not even parsed.
  if (Atomics.load(flag, 0) !== 0) return failed(new ApiError(499, "client disconnected"));
  const request = parseRequest(task.endpoint, parseJsonBody(Buffer.from(task.bytes, 0, task.length)));
  if (task.model === null || task.maxModelLen === null || request.model !== task.model) return { kind: "unserved", model: request.model };
  const prompts: Prompt[] = [];
  for (const prompt of request.prompts) {
    if (prompt.kind === "tokens") {
      prompts.push(prompt);
      continue;
    }
    const result = await tokenizePrompt(tokenizer, prompt, task.maxModelLen, () => Atomics.load(flag, 0) !== 0);
    if (!result.ok) return failed(result.code === "cancelled" ? new ApiError(499, result.message) : new ApiError(400, result.message, "invalid_request_error", result.param, result.code));
    prompts.push({ kind: "tokens", tokens: result.tokens });
  }
  return { kind: "request", request: { ...request, prompts } };
}

export default async function run(task: BodyTask | { ready: true }): Promise<unknown> {
  if ("ready" in task) return true;
  running++;
  if (idleTimer !== null) clearTimeout(idleTimer);
  try {
    return move(new Transfer(await read(task)));
  } catch (err) {
    if (err instanceof ApiError) return failed(err);
    throw err;
  } finally {
    if (--running === 0) idleTimer = setTimeout(collect, IDLE_COLLECT_MS);
  }
}
