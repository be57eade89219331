import { describe, expect, it } from "vitest";
import { decodeBody, encodeFrame, FrameDecoder, FrameError, frameBody, parseEngineUrl, resolveWildcardHost } from "../../src/engine-protocol/index.js";

describe("framing", () => {
  it("cuts frames out of a stream however it is chunked", () => {
    const messages = [
      { type: "heartbeat", ts: 1 },
      { type: "delta", id: 7, token_ids: [1, 70_000], text: " word" },
      { type: "generate", id: 8, prompt_token_ids: Array.from({ length: 5000 }, (_, i) => i) },
    ];
    const stream = Buffer.concat(messages.map((m) => encodeFrame(m as Parameters<typeof encodeFrame>[0])));
    for (const size of [1, 3, 4, 5, 17, 1000, stream.length]) {
      const decoder = new FrameDecoder();
      const out: unknown[] = [];
      for (let at = 0; at < stream.length; at += size) for (const f of decoder.push(stream.subarray(at, at + size))) out.push(decodeBody(f));
      expect(out).toEqual(messages);
      expect(decoder.pendingBytes).toBe(0);
    }
  });

  it("refuses a frame over the limit as soon as its header arrives, and stays failed", () => {
    const decoder = new FrameDecoder(100);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(101);
    expect(() => decoder.push(header)).toThrow(FrameError);
    expect(() => decoder.push(frameBody(Buffer.from([0x80])))).toThrow(/101 bytes, over the limit of 100/);
  });

  it("refuses an empty frame", () => {
    expect(() => new FrameDecoder().push(Buffer.alloc(4))).toThrow(/length 0/);
  });

  it("writes plain msgpack: no records, fixmaps, integer seeds", () => {
    const frame = encodeFrame({ type: "abort", id: 1 });
    expect(frame.readUInt32BE(0)).toBe(frame.length - 4);
    expect(frame[4]).toBe(0x82); // a fixmap of two entries
    const seed = encodeFrame({ type: "generate", id: 1, prompt_token_ids: [1], sampling: { seed: 2n ** 40n } });
    expect(decodeBody(seed.subarray(4))).toMatchObject({ sampling: { seed: 2 ** 40 } });
  });

  it("says bytes that are not msgpack are not", () => {
    expect(() => decodeBody(Buffer.from([0xc1]))).toThrow(/0xC1/);
    expect(() => decodeBody(Buffer.from([0x93, 0x01]))).toThrow();
    expect(() => decodeBody(Buffer.from([0x01, 0x02]))).toThrow();
  });
});

describe("engine addresses", () => {
  it("parses tcp://HOST:PORT and names a bad one", () => {
    expect(parseEngineUrl("tcp://127.0.0.1:8000")).toEqual({ host: "127.0.0.1", port: 8000 });
    expect(parseEngineUrl("tcp://[::1]:9")).toEqual({ host: "::1", port: 9 });
    expect(() => parseEngineUrl("http://x:1")).toThrow(/tcp:\/\/HOST:PORT/);
    expect(() => parseEngineUrl("tcp://x:70000")).toThrow(/"tcp:\/\/x:70000"/);
  });

  it("replaces a wildcard KV-event host with the engine's host", () => {
    expect(resolveWildcardHost("tcp://*:5557", "10.1.2.3")).toBe("tcp://10.1.2.3:5557");
    expect(resolveWildcardHost("tcp://0.0.0.0:5557", "::1")).toBe("tcp://[::1]:5557");
    expect(resolveWildcardHost("tcp://127.0.0.1:5557", "10.1.2.3")).toBe("tcp://127.0.0.1:5557");
    expect(resolveWildcardHost("ipc:///tmp/kv", "10.1.2.3")).toBe("ipc:///tmp/kv");
  });
});
