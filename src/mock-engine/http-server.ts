// The simulator as a stock `vllm serve` stand-in: the engine runtime (runtime.ts, shared with the msgpack
// server) behind vLLM's OpenAI HTTP surface: GET /health, GET /v1/models (with max_model_len), GET /metrics
// (vLLM's metric names), POST /v1/completions, streaming or not. A client that disconnects aborts its
// request, as vLLM does.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { stderrLog, type LogFn } from "../engine-protocol/index.js";
import { SimRequestError, type CoreFinish, type CoreOutput, type EngineCore } from "./core.js";
import { ApiError, chunkBody, completionBody, errorBody, metricsText, modelsBody, parseCompletion, usageBody, usageChunkBody, type CompletionCall, type CompletionMeta } from "./openai-api.js";
import { EngineRuntime, type RoutedOutput, type RuntimeOptions } from "./runtime.js";
import { listen, type BoundAddress } from "./listen.js";
import { DEFAULT_MODEL } from "./server.js";

export interface HttpSimulatorOptions extends RuntimeOptions {
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** HTTP port (default 0: an ephemeral port). */
  port?: number;
  /** Served model name (default Qwen/Qwen3-0.6B). */
  model?: string;
  /** As vLLM's --enable-prompt-tokens-details: usage carries prompt_tokens_details.cached_tokens (when not 0). */
  enablePromptTokensDetails?: boolean;
  /** Largest request body (default 64 MiB). */
  maxBodyBytes?: number;
}

export interface HttpSimulatorHandle {
  readonly host: string;
  readonly port: number;
  /** `http://HOST:PORT`. */
  readonly url: string;
  readonly model: string;
  readonly kvEventsEndpoint: string | null;
  readonly replayEndpoint: string | null;
  /** Where the KV transfer channel listens (held blocks are pulled from it); null when off. */
  readonly kvTransfer: { host: string; port: number } | null;
  readonly core: EngineCore;
  close(): Promise<void>;
}

/** Where a request's outputs go: its response, written as they come. */
interface Route {
  output(output: CoreOutput): void;
}

type Finished = Record<"stop" | "length" | "abort", number>;

class HttpSimulator implements HttpSimulatorHandle {
  host = "";
  port = 0;
  url = "";
  readonly model: string;
  private runtime!: EngineRuntime<Route>;
  private server: Server | null = null;
  private readonly created = Math.floor(Date.now() / 1000);
  private readonly finished: Finished = { stop: 0, length: 0, abort: 0 };
  private readonly log: LogFn;
  private nextId = 1;

  constructor(private readonly options: HttpSimulatorOptions) {
    this.model = options.model ?? DEFAULT_MODEL;
    this.log = options.log ?? stderrLog("kvroute sim");
  }

  get core(): EngineCore {
    return this.runtime.core;
  }

  get kvEventsEndpoint(): string | null {
    return this.runtime.kvEventsEndpoint;
  }

  get replayEndpoint(): string | null {
    return this.runtime.replayEndpoint;
  }

  get kvTransfer(): { host: string; port: number } | null {
    return this.runtime.kvTransfer;
  }

  async start(): Promise<void> {
    const o = this.options;
    this.runtime = await EngineRuntime.start<Route>(o, this.log, (outputs) => this.deliver(outputs));
    const server = createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 60_000;
    this.server = server;
    let bound: BoundAddress;
    try {
      bound = await listen(server, o.host ?? "127.0.0.1", o.port ?? 0);
    } catch (error) {
      await this.runtime.close();
      throw error;
    }
    this.host = bound.host;
    this.port = bound.port;
    this.url = `http://${this.host.includes(":") ? `[${this.host}]` : this.host}:${this.port}`;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (server === null) return;
    this.server = null;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await this.runtime.close();
  }

  private deliver(outputs: RoutedOutput<Route>[]): void {
    for (const { route, output } of outputs) route.output(output);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const path = (req.url ?? "/").split("?")[0];
      const route = `${req.method} ${path}`;
      switch (route) {
        case "GET /health":
          res.writeHead(200, { "content-length": 0 }).end();
          return;
        case "GET /v1/models":
          return json(res, 200, modelsBody(this.model, this.core.options.maxModelLen, this.created));
        case "GET /metrics":
          res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(this.metrics());
          return;
        case "POST /v1/completions":
          return await this.completions(req, res);
        default:
          // FastAPI's answers for unknown paths and methods.
          if (["/health", "/v1/models", "/metrics", "/v1/completions"].includes(path ?? "")) return json(res, 405, { detail: "Method Not Allowed" });
          return json(res, 404, { detail: "Not Found" });
      }
    } catch (error) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (error instanceof ApiError) return json(res, error.status, errorBody(error.status, error.message, error.param));
      this.log("error", `request failed: ${(error as Error).stack ?? String(error)}`);
      json(res, 500, errorBody(500, `the simulator failed: ${(error as Error).message}`));
    }
  }

  private metrics(): string {
    const m = this.core.metrics();
    const c = this.core.options;
    return metricsText({
      model: this.model,
      blockSize: c.blockSize,
      numBlocks: c.numBlocks,
      running: m.running,
      waiting: m.waiting,
      blocksUsed: m.blocksUsed,
      promptTokens: m.promptTokens,
      generationTokens: m.generationTokens,
      cachedTokens: m.cachedTokens,
      prefillRequests: m.prefillRequests,
      // Wall-clock seconds, as vLLM measures them: the modelled time runs `speedup` times faster.
      prefillSeconds: this.options.speedup ? m.prefillMs / this.options.speedup / 1000 : 0,
      finished: { ...this.finished, abort: m.requestsAborted },
    });
  }

  private async completions(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req, this.options.maxBodyBytes ?? 64 * 1024 * 1024));
    } catch (error) {
      throw error instanceof ApiError ? error : new ApiError(400, `the request body is not JSON: ${(error as Error).message}`);
    }
    const call = parseCompletion(body, { model: this.model, maxModelLen: this.core.options.maxModelLen });
    const meta: CompletionMeta = { id: `cmpl-${(this.nextId++).toString(16).padStart(12, "0")}`, created: Math.floor(Date.now() / 1000), model: this.model };
    if (call.stream) this.stream(call, meta, res);
    else this.collect(call, meta, res);
  }

  /** Submits to the engine; a request the engine refuses is a 400, as vLLM's input checks answer. */
  private submit(call: CompletionCall, route: Route, res: ServerResponse): number | null {
    try {
      const id = this.runtime.submit(call.request, route);
      // The client leaving (or the connection dropping) before the finish aborts the request.
      res.once("close", () => {
        if (!res.writableFinished) this.runtime.cancel(id);
      });
      return id;
    } catch (error) {
      if (error instanceof SimRequestError) throw new ApiError(400, error.message, "prompt");
      throw error;
    }
  }

  private usageOf(finish: CoreFinish): Record<string, unknown> {
    const u = finish.usage;
    return usageBody({ promptTokens: u.promptTokens, completionTokens: u.completionTokens, cachedTokens: u.cachedTokens ?? 0 }, this.options.enablePromptTokensDetails ?? false);
  }

  private collect(call: CompletionCall, meta: CompletionMeta, res: ServerResponse): void {
    let text = "";
    this.submit(
      call,
      {
        output: (out) => {
          text += out.text;
          if (!out.finish) return;
          this.finished[out.finish.finishReason]++;
          const usage = this.usageOf(out.finish);
          json(res, 200, completionBody(meta, text, out.finish, usage));
        },
      },
      res,
    );
  }

  private stream(call: CompletionCall, meta: CompletionMeta, res: ServerResponse): void {
    const promptTokens = call.request.promptTokenIds.length;
    let completionTokens = 0;
    const submitted = this.submit(
      call,
      {
        output: (out) => {
          completionTokens += out.tokenIds.length;
          const usage = call.continuousUsage ? usageBody({ promptTokens, completionTokens, cachedTokens: 0 }, false) : null;
          sse(res, chunkBody(meta, out.text, out.finish ?? null, usage));
          if (!out.finish) return;
          this.finished[out.finish.finishReason]++;
          if (call.includeUsage) sse(res, usageChunkBody(meta, this.usageOf(out.finish)));
          res.end("data: [DONE]\n\n");
        },
      },
      res,
    );
    // Headers go out as soon as the request is queued, as vLLM's streaming response starts.
    if (submitted !== null) res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" }).flushHeaders();
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
}

function sse(res: ServerResponse, body: unknown): void {
  if (!res.writableEnded) res.write(`data: ${JSON.stringify(body)}\n\n`);
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new ApiError(413, `the request body is over ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/** Starts an HTTP simulator in this process. */
export async function startHttpSimulator(options: HttpSimulatorOptions = {}): Promise<HttpSimulatorHandle> {
  const simulator = new HttpSimulator(options);
  await simulator.start();
  return simulator;
}
