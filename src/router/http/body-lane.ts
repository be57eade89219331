// Big request bodies, read and prepared off the main thread.
//
// Decoding, parsing and handing a prompt of megabytes to a pool thread each hold the main thread for 55 to
// 110 ms per 15 MB (docs/architecture.md, Preparation), and every other client waits for them. So a
// body over `minBytes` goes, by transfer (not copied), to a thread of its own that decodes,
// parses and validates it, and tokenizes its text and chat prompts there, a slice at a time and never past
// the context length. What comes back is the validated request with token-id prompts: small, and moved
// rather than copied. Small bodies stay on the main thread, where a round trip would cost more than it saves.
//
// Invariants: a body handed to the lane answers exactly as it would on the main thread (the same errors,
// in the same order: JSON, fields, model, then the prompt's length); its prompts are tokenized only for
// the model the router serves; and a client that leaves stops its body's tokenizing at the next slice, or
// its parsing before it starts when the body still waits for the thread.
import { Piscina } from "piscina";
import type { AbortSignalLike } from "../../util/abort.js";
import { distFile } from "../../util/package-root.js";
import type { SpecialTokensInContent } from "../prepare/index.js";
import { ApiError, type ErrorType } from "./errors.js";
import type { ApiRequest, Endpoint } from "./request.js";

export interface BodyLaneOptions {
  /** Hugging Face model folder; null for the tokenizer that ships with kvroute (as the preparation pool). */
  tokenizerDir: string | null;
  specialTokensInContent: SpecialTokensInContent;
  /** Bodies of more than this many bytes go to the lane (default BIG_BODY_BYTES). */
  minBytes?: number;
  /** What prompts are tokenized for, read per body: null fields while no engine is up. */
  served: () => { model: string | null; maxModelLen: number | null };
}

/** 1 MiB: decoding and parsing that much takes about 8 ms of the main thread here. */
export const BIG_BODY_BYTES = 1 << 20;

export interface BodyTask {
  bytes: ArrayBuffer;
  length: number;
  endpoint: Endpoint;
  model: string | null;
  maxModelLen: number | null;
  /** Set to non-zero (Atomics) by the main thread when the client has left. */
  cancel: SharedArrayBuffer;
}

export interface ErrorFields {
  status: number;
  message: string;
  type: ErrorType;
  param: string | null;
  code: string | null;
}

export type BodyResult =
  | { kind: "request"; request: ApiRequest }
  | { kind: "error"; error: ErrorFields }
  /** The body asks for a model the router does not serve (or serves none yet): left for the caller to refuse. */
  | { kind: "unserved"; model: string };

export class BodyLane {
  readonly minBytes: number;
  /** Bodies handed to the thread and not answered yet. */
  tasks = 0;

  private constructor(
    private readonly pool: Piscina,
    private readonly options: BodyLaneOptions,
  ) {
    this.minBytes = options.minBytes ?? BIG_BODY_BYTES;
  }

  static async start(options: BodyLaneOptions): Promise<BodyLane> {
    const pool = new Piscina({
      filename: distFile("src/router/http/body-lane-worker.js"),
      workerData: { tokenizerDir: options.tokenizerDir, specialTokensInContent: options.specialTokensInContent },
      minThreads: 1,
      maxThreads: 1,
      // Several bodies at once, each yielding between slices of its tokenizing.
      concurrentTasksPerWorker: 4,
      atomics: "async",
      idleTimeout: Infinity,
      recordTiming: false,
    });
    try {
      // Waits for the thread to load its tokenizer.
      await pool.run({ ready: true });
    } catch (err) {
      await pool.destroy();
      throw new Error(`cannot start the body lane: ${(err as Error).message}`);
    }
    return new BodyLane(pool, options);
  }

  /**
   * The validated request of a body, its text and chat prompts tokenized. Rejects with the ApiError the
   * body deserves; `unserved` results are returned for the caller's model check to refuse.
   */
  async parse(body: Buffer, endpoint: Endpoint, signal: AbortSignalLike): Promise<Exclude<BodyResult, { kind: "error" }>> {
    if (signal.aborted) throw new ApiError(499, "client disconnected");
    // The whole of a buffer of its own moves to the thread; anything else is copied into one first.
    const own = body.byteOffset === 0 && body.buffer.byteLength === body.length && !(body.buffer instanceof SharedArrayBuffer);
    const bytes = own ? (body.buffer as ArrayBuffer) : (new Uint8Array(body).buffer as ArrayBuffer);
    const cancel = new SharedArrayBuffer(4);
    const onAbort = () => Atomics.store(new Int32Array(cancel), 0, 1);
    signal.addEventListener("abort", onAbort, { once: true });
    this.tasks++;
    try {
      const { model, maxModelLen } = this.options.served();
      const task: BodyTask = { bytes, length: body.length, endpoint, model, maxModelLen, cancel };
      const result = (await this.pool.run(task, { transferList: [bytes] })) as BodyResult;
      if (result.kind === "error") {
        const e = result.error;
        throw new ApiError(e.status, e.message, e.type, e.param, e.code);
      }
      return result;
    } finally {
      this.tasks--;
      signal.removeEventListener("abort", onAbort);
    }
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}
