import uWS, { type HttpRequest, type HttpResponse, type TemplatedApp, type us_listen_socket } from "uWebSockets.js";
import type { Backend } from "../types.js";
import { BodyReader } from "./body.js";
import { ApiError, toApiError } from "./errors.js";
import { Exchange } from "./exchange.js";
import { declaredLength } from "./framing.js";
import { handleGenerate } from "./generate.js";
import { generateInput, parseRequest, type ApiRequest, type Endpoint } from "./request.js";
import { noTelemetry, type RequestRecord, type Telemetry } from "./telemetry.js";
import type { BodyLane } from "./body-lane.js";
import { readJson } from "./json-body.js";

export interface FrontendOptions {
  host: string;
  port: number;
  /** When set, /v1/* requires `Authorization: Bearer <apiKey>`; /health and /metrics stay open. */
  apiKey?: string | undefined;
  maxBodyBytes: number;
  /** A request body of which no byte arrives for this long gets a 408 (default 10 s). */
  bodyIdleTimeoutMs?: number;
  /** A body over maxBodyBytes is read on and dropped up to this many bytes (default 256 MiB) ... */
  discardMaxBytes?: number;
  /** ... and for this long (default 30 s), so that its client gets the 413; then the connection is closed. */
  discardMaxMs?: number;
  /** How long a stream waits for a slow client to drain before dropping it. */
  drainTimeoutMs?: number;
  telemetry?: Telemetry;
  /** Where bodies of more than `bodyLane.minBytes` are parsed and their prompts tokenized; without it, here. */
  bodyLane?: BodyLane;
}

type Handler = (ex: Exchange, req: HttpRequest, bodyLength: number) => void;

export const DEFAULT_BODY_IDLE_TIMEOUT_MS = 10_000;
export const DEFAULT_DISCARD_MAX_BYTES = 256 * 1024 * 1024;
export const DEFAULT_DISCARD_MAX_MS = 30_000;

/**
 * The OpenAI-compatible HTTP server on uWebSockets.js. HEAD is answered wherever GET is. What uWS 20.30
 * itself refuses (HTTP/1.0, a request pipelined behind one still being answered, chunk extensions) is
 * described in docs/operations.md, with the proxy setting that covers it.
 */
export class Frontend {
  readonly #app: TemplatedApp;
  readonly #bodies: BodyReader;
  #listenSocket: us_listen_socket | null = null;
  #port = 0;
  readonly #telemetry: Telemetry;

  constructor(
    private readonly backend: Backend,
    private readonly options: FrontendOptions,
  ) {
    this.#telemetry = options.telemetry ?? noTelemetry;
    this.#bodies = new BodyReader({
      maxBytes: options.maxBodyBytes,
      idleTimeoutMs: options.bodyIdleTimeoutMs ?? DEFAULT_BODY_IDLE_TIMEOUT_MS,
      discardMaxBytes: options.discardMaxBytes ?? DEFAULT_DISCARD_MAX_BYTES,
      discardMaxMs: options.discardMaxMs ?? DEFAULT_DISCARD_MAX_MS,
    });
    const routes: Record<string, Record<string, Handler>> = {
      "/v1/completions": { post: (ex, req, length) => this.#generate(ex, req, length, "completions") },
      "/v1/chat/completions": { post: (ex, req, length) => this.#generate(ex, req, length, "chat") },
      "/v1/route": { post: (ex, req, length) => this.#route(ex, req, length) },
      "/v1/models": { get: (ex, req) => this.#authorized(ex, req) && ex.json(200, { object: "list", data: backend.models() }) },
      "/health": { get: (ex) => this.#health(ex) },
      "/metrics": { get: (ex) => void this.#metrics(ex) },
    };
    this.#app = uWS.App().any("/*", (res: HttpResponse, req: HttpRequest) => {
      const ex = new Exchange(res);
      const length = declaredLength(req);
      if (length instanceof ApiError) {
        // Answered from the next turn of the event loop, not here: uWS parses whatever follows this request
        // in the same read as soon as the handler returns, and it would serve a request hidden there even
        // after a closing answer. With this one still unanswered it closes the connection instead (as it
        // does for any pipelined request); when nothing follows, the 400 goes out and the connection closes.
        setImmediate(() => ex.error(length));
        return;
      }
      const url = req.getUrl();
      const path = url.length > 1 && url.endsWith("/") ? url.slice(0, -1) : url;
      const methods = routes[path];
      if (!methods) {
        ex.error(new ApiError(404, `no route for ${req.getMethod().toUpperCase()} ${url}`, "not_found_error", null, "not_found"));
        return;
      }
      const method = req.getMethod();
      ex.head = method === "head" && methods.get !== undefined;
      const handler = methods[ex.head ? "get" : method];
      if (!handler) {
        const allowed = Object.keys(methods).flatMap((m) => (m === "get" ? ["GET", "HEAD"] : [m.toUpperCase()])).join(", ");
        ex.error(new ApiError(405, `${method.toUpperCase()} is not allowed on ${path}; use ${allowed}`, "invalid_request_error", null, "method_not_allowed"), { allow: allowed });
        return;
      }
      handler(ex, req, length);
    });
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#app.listen(this.options.host, this.options.port, (socket) => {
        if (!socket) {
          reject(new Error(`cannot listen on ${this.options.host}:${this.options.port} (in use, or not allowed)`));
          return;
        }
        this.#listenSocket = socket;
        this.#bodies.start();
        this.#port = uWS.us_socket_local_port(socket as unknown as uWS.us_socket);
        resolve(this.#port);
      });
    });
  }

  get port(): number {
    return this.#port;
  }

  /** Stops accepting connections. Open connections finish what they are doing. */
  close(): void {
    if (this.#listenSocket) uWS.us_listen_socket_close(this.#listenSocket);
    this.#listenSocket = null;
    this.#bodies.stop();
  }

  #authorized(ex: Exchange, req: HttpRequest): boolean {
    const key = this.options.apiKey;
    if (!key) return true;
    const header = req.getHeader("authorization");
    if (header === `Bearer ${key}`) return true;
    const message = header === "" ? "missing API key: send 'Authorization: Bearer <key>'" : "invalid API key";
    ex.error(new ApiError(401, message, "authentication_error", null, "invalid_api_key"), { "www-authenticate": "Bearer" });
    return false;
  }

  /** Reads the body and checks its content type. */
  async #rawBody(ex: Exchange, length: number, contentType: string): Promise<Buffer> {
    const raw = await this.#bodies.read(ex, length);
    if (contentType !== "" && !contentType.includes("json")) {
      throw new ApiError(415, `the request body must be JSON (content-type application/json), got ${contentType}`, "invalid_request_error", "body", "unsupported_media_type");
    }
    return raw;
  }

  /** The validated request of a generation body: a big one through the body lane, others here. */
  async #request(ex: Exchange, raw: Buffer, endpoint: Endpoint): Promise<ApiRequest> {
    const lane = this.options.bodyLane;
    if (lane === undefined || raw.length <= lane.minBytes) {
      const request = parseRequest(endpoint, await readJson(raw));
      this.backend.checkModel(request.model);
      return request;
    }
    const result = await lane.parse(raw, endpoint, ex.signal);
    if (result.kind === "unserved") {
      this.backend.checkModel(result.model);
      // Served by now, but its prompts were not tokenized for it: the client can send it again.
      throw new ApiError(503, `the model \`${result.model}\` was not served yet when this request was read; send it again`, "service_unavailable_error", "model", "model_not_ready");
    }
    return result.request;
  }

  #generate(ex: Exchange, req: HttpRequest, length: number, endpoint: Endpoint): void {
    const startedAt = performance.now();
    const record: RequestRecord = {
      endpoint: endpoint === "chat" ? "/v1/chat/completions" : "/v1/completions",
      status: 200,
      stream: false,
      engines: [],
      overlapBlocks: [],
      promptTokens: 0,
      completionTokens: 0,
      cachedTokens: 0,
      cachedTokensSource: null,
      ttft: null,
      duration: 0,
      error: null,
    };
    const done = () => {
      record.duration = (performance.now() - startedAt) / 1000;
      this.#telemetry.requestDone(record);
    };
    if (!this.#authorized(ex, req)) {
      record.status = 401;
      done();
      return;
    }
    const body = this.#rawBody(ex, length, req.getHeader("content-type"));
    void (async () => {
      try {
        const request = await this.#request(ex, await body, endpoint);
        record.stream = request.stream;
        await handleGenerate(ex, this.backend, request, this.#telemetry, record, startedAt, {
          drainTimeoutMs: this.options.drainTimeoutMs ?? 30_000,
        });
      } catch (err) {
        this.#fail(ex, record, err);
      } finally {
        // However the request ended on our side, a client that left first is what happened to it.
        if (ex.aborted) {
          record.status = 499;
          record.error = "client disconnected";
        }
        done();
      }
    })();
  }

  #route(ex: Exchange, req: HttpRequest, length: number): void {
    if (!this.#authorized(ex, req)) return;
    const body = this.#rawBody(ex, length, req.getHeader("content-type"));
    void (async () => {
      try {
        const json = await readJson(await body);
        const endpoint = typeof json === "object" && json !== null && "messages" in json ? "chat" : "completions";
        const request: ApiRequest = parseRequest(endpoint, json);
        this.backend.checkModel(request.model);
        if (request.prompts.length !== 1) {
          throw new ApiError(400, "/v1/route takes one prompt, not a batch", "invalid_request_error", "prompt", "invalid_value");
        }
        ex.json(200, await this.backend.route(generateInput(request, request.prompts[0]!)));
      } catch (err) {
        this.#fail(ex, null, err);
      }
    })();
  }

  #health(ex: Exchange): void {
    const health = this.backend.health();
    const r = health.replication;
    // Degraded: serving, but alone, without the other replicas' load (their link is down).
    const degraded = health.ready && r !== undefined && !r.connected;
    ex.json(health.ready ? 200 : 503, {
      status: !health.ready ? "unavailable" : degraded ? "degraded" : "ok",
      ...(degraded ? { reason: r.reason } : {}),
      engines: health.engines,
      ...(r !== undefined ? { replication: r } : {}),
    });
  }

  async #metrics(ex: Exchange): Promise<void> {
    try {
      const { contentType, body } = await this.backend.metrics();
      ex.send(200, body, { "content-type": contentType });
    } catch (err) {
      this.#fail(ex, null, err);
    }
  }

  #fail(ex: Exchange, record: RequestRecord | null, err: unknown): void {
    const apiError = toApiError(err);
    if (record) {
      record.status = apiError.status;
      record.error = apiError.message;
    }
    if (ex.open) ex.error(apiError);
  }
}
