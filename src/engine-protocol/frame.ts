// Length-prefixed framing: a 4-byte unsigned big-endian length, then that many bytes of one msgpack value.

export const FRAME_HEADER_BYTES = 4;

/** The largest frame either side accepts unless told otherwise: room for well over a million token ids. */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

/** Why a byte stream stopped being a sequence of frames; the connection carrying it must be closed. */
export class FrameError extends Error {
  constructor(
    readonly code: "frame_too_large" | "empty_frame",
    message: string,
  ) {
    super(message);
    this.name = "FrameError";
  }
}

/** Prefixes a body with its length. */
export function frameBody(body: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  frame.set(body, FRAME_HEADER_BYTES);
  return frame;
}

/**
 * Cuts a TCP byte stream into frame bodies. Chunks are kept as a list and joined only when a frame spans
 * them, so a large prompt arriving in many chunks is copied once.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed: FrameError | null = null;

  constructor(private readonly maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {}

  /** Bytes received and not yet returned as a frame. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /**
   * Adds a chunk and returns the frame bodies it completes. Throws a FrameError once the stream cannot be
   * framed any more (a length over the limit, or zero); every later call throws the same error.
   */
  push(chunk: Buffer): Buffer[] {
    if (this.failed) throw this.failed;
    if (this.buffered === 0) return this.pushFresh(chunk);
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const frames: Buffer[] = [];
    while (this.buffered >= FRAME_HEADER_BYTES) {
      const length = this.peekLength();
      this.check(length);
      if (this.buffered < FRAME_HEADER_BYTES + length) break;
      this.take(FRAME_HEADER_BYTES);
      frames.push(this.take(length));
    }
    return frames;
  }

  /** The common case, nothing left over from before: frames are sliced out of the chunk by offset. */
  private pushFresh(chunk: Buffer): Buffer[] {
    const frames: Buffer[] = [];
    let at = 0;
    while (chunk.length - at >= FRAME_HEADER_BYTES) {
      const length = chunk.readUInt32BE(at);
      this.check(length);
      if (chunk.length - at - FRAME_HEADER_BYTES < length) break;
      frames.push(chunk.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length));
      at += FRAME_HEADER_BYTES + length;
    }
    if (at < chunk.length) {
      this.chunks.push(at === 0 ? chunk : chunk.subarray(at));
      this.buffered = chunk.length - at;
    }
    return frames;
  }

  private check(length: number): void {
    if (length === 0) throw (this.failed = new FrameError("empty_frame", "received a frame of length 0"));
    if (length > this.maxFrameBytes) {
      throw (this.failed = new FrameError("frame_too_large", `received a frame of ${length} bytes, over the limit of ${this.maxFrameBytes}`));
    }
  }

  private peekLength(): number {
    const first = this.chunks[0]!;
    if (first.length >= FRAME_HEADER_BYTES) return first.readUInt32BE(0);
    const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
    let filled = 0;
    for (const chunk of this.chunks) {
      filled += chunk.copy(header, filled, 0, Math.min(chunk.length, FRAME_HEADER_BYTES - filled));
      if (filled === FRAME_HEADER_BYTES) break;
    }
    return header.readUInt32BE(0);
  }

  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.chunks[0]!;
      const want = n - filled;
      if (chunk.length <= want) {
        chunk.copy(out, filled);
        filled += chunk.length;
        this.chunks.shift();
      } else {
        chunk.copy(out, filled, 0, want);
        this.chunks[0] = chunk.subarray(want);
        filled += want;
      }
    }
    return out;
  }
}
