// An engine speaking kvroute's msgpack engine protocol over TCP (the vLLM worker, the mock engine).
import { EngineClient, type LogFn, type Welcome } from "../../engine-protocol/index.js";
import type { Engine, EngineInfo, EngineListener, EngineEvent, GenerateRequest } from "./engine.js";
import type { AbortSignalLike } from "../../util/abort.js";

export interface MsgpackEngineOptions {
  /** Shown instead of the address in messages that can reach clients. */
  name: string;
  /** Refuse an engine with another block size at the handshake. */
  expectedBlockSize: number | null;
  /** Endpoints given on the command line override what the engine announces. */
  kvEndpoint: string | null;
  /** kv=none: ignore the endpoints the engine announces. */
  noKvEvents: boolean;
  replayEndpoint: string | null;
  log: LogFn;
}

export class MsgpackEngine implements Engine {
  readonly #client: EngineClient;

  constructor(
    readonly url: string,
    private readonly options: MsgpackEngineOptions,
  ) {
    this.#client = new EngineClient(url, {
      name: options.name,
      expectedBlockSize: options.expectedBlockSize ?? undefined,
      retryInitialConnect: true,
      log: options.log,
    });
  }

  start(listener: EngineListener): void {
    this.#client.on("connect", (welcome) => listener.up(this.#info(welcome)));
    this.#client.on("disconnect", (d) => listener.down(d.reason));
    // With retryInitialConnect, connect() rejects only for good: a refused handshake or a closed client.
    this.#client.connect().catch((err: Error) => listener.refused(err.message));
  }

  generate(request: GenerateRequest, options: { signal?: AbortSignalLike }): AsyncIterable<EngineEvent> {
    return this.#client.generate(request, options);
  }

  close(): Promise<void> {
    return this.#client.close();
  }

  #info(w: Welcome): EngineInfo {
    const endpoint = this.options.noKvEvents ? null : (this.options.kvEndpoint ?? w.kvEvents?.endpoint ?? null);
    return {
      software: w.engine,
      model: w.model,
      blockSize: w.blockSize,
      maxModelLen: w.maxModelLen,
      numBlocks: w.numBlocks,
      kvEvents: endpoint === null ? null : { endpoint, replayEndpoint: this.options.replayEndpoint ?? w.kvEvents?.replayEndpoint ?? null, topic: w.kvEvents?.topic ?? "" },
      ranks: { start: 0, size: w.kvEvents?.dataParallelSize ?? 1 },
    };
  }
}
