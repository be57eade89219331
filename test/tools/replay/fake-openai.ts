// A small OpenAI-compatible server for replay tests, on loopback: streams `/v1/completions` as SSE with
// usage, keeps a fleet-wide prefix cache of full blocks (so cached_tokens follows the prompts' real reuse),
// and misbehaves on demand.
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Behaviour {
  /** Answer with this status and an OpenAI error body instead of a stream. */
  status?: number;
  /** Wait this long before answering. */
  delayMs?: number;
  /** Wait this long between token frames (0: all frames in one go). */
  tokenDelayMs?: number;
  /** End the response without `data: [DONE]`. */
  endWithoutDone?: boolean;
  /** Send a data frame that is not JSON after the first token. */
  badFrame?: boolean;
  /** Leave out kvroute's x-kvroute-* headers, as a plain vLLM server does. */
  plain?: boolean;
  /** Leave out prompt_tokens_details, as a server without prefix-cache reporting does. */
  noCachedTokens?: boolean;
}

export interface Received {
  index: number;
  arrivedAtMs: number;
  body: { model: string; prompt: number[]; max_tokens: number; stream: boolean; stream_options?: { include_usage?: boolean }; ignore_eos?: boolean };
  cachedTokens: number;
}

export interface FakeServer {
  base: string;
  received: Received[];
  maxInFlight: number;
  close(): Promise<void>;
}

export interface FakeOptions {
  model?: string;
  engines?: number;
  /** Block size of the fake's prefix cache. */
  blockSize?: number;
  behaviour?: (index: number, body: Received["body"]) => Behaviour;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startFakeOpenAI(options: FakeOptions = {}): Promise<FakeServer> {
  const { model = "fake-model", engines = 2, blockSize = 512 } = options;
  const behaviour = options.behaviour ?? ((): Behaviour => ({}));
  const cache = new Set<string>();
  const received: Received[] = [];
  let inFlight = 0;
  const state = { maxInFlight: 0 };

  /** Cached tokens of a prompt: its leading full blocks already in the cache; then caches all its full blocks. */
  const lookupAndStore = (prompt: number[]): number => {
    let parent = "";
    let hits = 0;
    let missed = false;
    for (let b = 0; (b + 1) * blockSize <= prompt.length; b++) {
      const key = createHash("sha1").update(parent).update(Uint32Array.from(prompt.slice(b * blockSize, (b + 1) * blockSize))).digest("hex");
      if (!missed && cache.has(key)) hits++;
      else missed = true;
      cache.add(key);
      parent = key;
    }
    return hits * blockSize;
  };

  const completions = async (req: IncomingMessage, res: ServerResponse, text: string) => {
    const body = JSON.parse(text) as Received["body"];
    const index = received.length;
    const how = behaviour(index, body);
    const cachedTokens = lookupAndStore(body.prompt);
    received.push({ index, arrivedAtMs: performance.now(), body, cachedTokens });
    if (how.delayMs) await sleep(how.delayMs);
    const engine = `engine-${index % engines}`;
    const headers: Record<string, string> = how.plain ? {} : { "x-kvroute-engine": engine, "x-kvroute-cached-tokens-source": "engine" };
    if (how.status !== undefined && how.status !== 200) {
      res.writeHead(how.status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify({ error: { message: `fake failure ${how.status}`, type: "invalid_request_error", param: null, code: null } }));
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", ...headers });
    const frames: string[] = [];
    for (let i = 0; i < body.max_tokens; i++) {
      const last = i === body.max_tokens - 1;
      frames.push(`data: ${JSON.stringify({ id: "cmpl-fake", object: "text_completion", model, choices: [{ index: 0, text: ` t${i}`, logprobs: null, finish_reason: last ? "length" : null }] })}\n\n`);
      if (i === 0 && how.badFrame) frames.push("data: {not json\n\n");
    }
    if (body.stream_options?.include_usage) {
      const details = how.noCachedTokens ? {} : { prompt_tokens_details: { cached_tokens: cachedTokens } };
      const usage = { prompt_tokens: body.prompt.length, completion_tokens: body.max_tokens, total_tokens: body.prompt.length + body.max_tokens, ...details };
      frames.push(`data: ${JSON.stringify({ id: "cmpl-fake", object: "text_completion", model, choices: [], usage })}\n\n`);
    }
    if (!how.endWithoutDone) frames.push("data: [DONE]\n\n");
    if (!how.tokenDelayMs) {
      res.end(frames.join(""));
      return;
    }
    for (const frame of frames) {
      if (res.destroyed) return;
      res.write(frame);
      await sleep(how.tokenDelayMs);
    }
    res.end();
  };

  const server = createServer((req, res) => {
    inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, inFlight);
    res.on("close", () => inFlight--);
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      if (req.method === "GET" && req.url === "/v1/models") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ object: "list", data: [{ id: model, object: "model" }] }));
      } else if (req.method === "POST" && req.url === "/v1/completions") {
        completions(req, res, text).catch((err: Error) => {
          res.writeHead(500);
          res.end(err.message);
        });
      } else {
        res.writeHead(404);
        res.end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}/v1`,
    received,
    get maxInFlight() {
      return state.maxInFlight;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
