import { describe, expect, it } from "vitest";
import {
  decodeBody,
  encodeFrame,
  parseDelta,
  parseFinish,
  parseGenerate,
  parseHello,
  parseWelcome,
  readEnvelope,
  toGenerateMessage,
  toWelcomeMessage,
  type Welcome,
} from "../../src/engine-protocol/index.js";

/** A message as the other side reads it: encoded, decoded, its envelope's fields. */
function overTheWire(message: Parameters<typeof encodeFrame>[0]): Record<string, unknown> {
  return decodeBody(encodeFrame(message).subarray(4)) as Record<string, unknown>;
}

const WELCOME = { protocol: 1, engine_id: "e", model: "m", block_size: 16, num_blocks: null, max_model_len: 100, max_frame_bytes: 10, kv_events: null };

describe("message checks", () => {
  it("needs a map with a string type", () => {
    expect(readEnvelope([1, 2])).toMatchObject({ ok: false, code: "bad_message", message: /must be a map, not an array/ });
    expect(readEnvelope({ id: 4, type: 5 })).toMatchObject({ ok: false, id: 4, message: /string "type"/ });
    expect(readEnvelope({ type: "x", extra: true })).toMatchObject({ ok: true, value: { type: "x", id: null } });
  });

  it("reads a generate, ignoring unknown fields", () => {
    const parsed = parseGenerate(
      { type: "generate", id: 3, prompt_token_ids: [1, 2, 3], sampling: { max_tokens: 5, stop: ["\n"], seed: 9, future: 1 }, overlap_blocks: 2, lora_name: "a", cache_salt: "s", request_id: "r", future_field: [1] },
      3,
    );
    expect(parsed).toEqual({
      ok: true,
      value: {
        id: 3,
        request: { promptTokenIds: [1, 2, 3], sampling: { maxTokens: 5, stop: ["\n"], seed: 9 }, overlapBlocks: 2, loraName: "a", cacheSalt: "s", requestId: "r" },
      },
    });
  });

  it("names the field a bad generate gets wrong", () => {
    const bad = (fields: Record<string, unknown>): string => {
      const parsed = parseGenerate({ type: "generate", id: 1, prompt_token_ids: [1], ...fields }, 1);
      if (parsed.ok) throw new Error("expected a failure");
      expect(parsed.code).toBe("invalid_request");
      expect(parsed.id).toBe(1);
      return parsed.message;
    };
    expect(bad({ prompt_token_ids: [] })).toMatch(/prompt_token_ids must hold at least 1/);
    expect(bad({ prompt_token_ids: [1, -2] })).toMatch(/prompt_token_ids\[1\] must be an integer/);
    expect(bad({ prompt_token_ids: "abc" })).toMatch(/must be an array of integers, not the string "abc"/);
    expect(bad({ sampling: { max_tokens: 0 } })).toMatch(/max_tokens must be an integer from 1/);
    expect(bad({ sampling: { temperature: -1 } })).toMatch(/temperature must be at least 0/);
    expect(bad({ sampling: { top_p: 2 } })).toMatch(/top_p must be in \(0, 1\]/);
    expect(bad({ sampling: { seed: 2n ** 60n } })).toMatch(/seed must be an integer within/);
    expect(bad({ sampling: { stop: [""] } })).toMatch(/stop must be an array of non-empty strings/);
    expect(bad({ sampling: { ignore_eos: 1 } })).toMatch(/ignore_eos must be a boolean/);
    expect(bad({ lora_name: 5 })).toMatch(/lora_name must be a string/);
    expect(bad({ id: "x" })).toMatch(/id must be an integer/);
  });

  it("reads a hello and says what is wrong with a bad one", () => {
    expect(parseHello({ protocol: 1, block_size: 16 })).toEqual({ ok: true, value: { protocol: 1, client: "unknown", blockSize: 16, heartbeatMs: null } });
    expect(parseHello({ protocol: "1" })).toMatchObject({ ok: false, code: "bad_hello", message: /protocol must be an integer/ });
  });

  it("reads the engine's messages", () => {
    expect(
      parseWelcome({ protocol: 1, engine_id: "e", model: "m", block_size: 16, num_blocks: null, max_model_len: 100, max_frame_bytes: 10, kv_events: { endpoint: "tcp://*:1", layout: "weird" } }),
    ).toMatchObject({ ok: true, value: { numBlocks: null, engine: "unknown", kvEvents: { endpoint: "tcp://*:1", topic: "", dataParallelSize: 1, replayEndpoint: null, layout: null } } });
    expect(parseWelcome({ protocol: 1, engine_id: "e", block_size: 16 })).toMatchObject({ ok: false, message: /model must be a string/ });
    expect(parseDelta({ token_ids: [1], text: "a", logprobs: [[[1, -0.5]]] }, 1)).toEqual({ ok: true, value: { type: "delta", tokenIds: [1], text: "a", logprobs: [[[1, -0.5]]] } });
    expect(parseDelta({ token_ids: [1], logprobs: [[1]] }, 1)).toMatchObject({ ok: false, message: /logprobs\[0\]/ });
    expect(parseFinish({ finish_reason: "stop", stop_reason: 7, usage: { prompt_tokens: 3, completion_tokens: 1, cached_tokens: null } }, 1)).toEqual({
      ok: true,
      value: { type: "finish", finishReason: "stop", stopReason: 7, usage: { promptTokens: 3, completionTokens: 1, cachedTokens: null } },
    });
    expect(parseFinish({ finish_reason: "stop", usage: {} }, 1)).toMatchObject({ ok: false, message: /prompt_tokens/ });
  });

  it("reads a generate's data-parallel rank and KV-transfer parameters, and names a bad one", () => {
    const kv = { do_remote_decode: true, remote_block_ids: [1, 2], nested: { host: "p0" } };
    const parsed = parseGenerate({ type: "generate", id: 2, prompt_token_ids: [1], data_parallel_rank: 3, kv_transfer_params: kv }, 2);
    expect(parsed).toMatchObject({ ok: true, value: { request: { dataParallelRank: 3, kvTransferParams: kv } } });
    const absent = parseGenerate({ type: "generate", id: 2, prompt_token_ids: [1], data_parallel_rank: null, kv_transfer_params: null }, 2);
    expect(absent.ok && "dataParallelRank" in absent.value.request).toBe(false);
    expect(absent.ok && "kvTransferParams" in absent.value.request).toBe(false);
    const bad = (fields: Record<string, unknown>): unknown => parseGenerate({ type: "generate", id: 1, prompt_token_ids: [1], ...fields }, 1);
    expect(bad({ data_parallel_rank: -1 })).toMatchObject({ ok: false, code: "invalid_request", id: 1, message: /data_parallel_rank must be an integer from 0/ });
    expect(bad({ data_parallel_rank: "0" })).toMatchObject({ ok: false, message: /data_parallel_rank must be an integer.*not the string "0"/ });
    expect(bad({ kv_transfer_params: [1, 2] })).toMatchObject({ ok: false, code: "invalid_request", message: /kv_transfer_params must be a map, not an array/ });
    expect(bad({ kv_transfer_params: "x" })).toMatchObject({ ok: false, message: /kv_transfer_params must be a map, not the string "x"/ });
  });

  it("builds a generate that parses back to the same request, new fields included", () => {
    const request = { promptTokenIds: [5, 6, 7], dataParallelRank: 1, kvTransferParams: { do_remote_prefill: true, ids: [3] }, cacheSalt: "t" };
    const parsed = parseGenerate(overTheWire(toGenerateMessage(9, request)), 9);
    expect(parsed).toEqual({ ok: true, value: { id: 9, request: { ...request, sampling: {} } } });
    expect(overTheWire(toGenerateMessage(9, { promptTokenIds: [1] }))).not.toHaveProperty("data_parallel_rank");
  });

  it("reads the welcome's data-parallel ranks, 0 and 1 when an older engine leaves them out", () => {
    expect(parseWelcome(WELCOME)).toMatchObject({ ok: true, value: { dataParallelStartRank: 0, dataParallelLocalSize: 1 } });
    expect(parseWelcome({ ...WELCOME, data_parallel_start_rank: 4, data_parallel_local_size: 2 })).toMatchObject({
      ok: true,
      value: { dataParallelStartRank: 4, dataParallelLocalSize: 2 },
    });
    expect(parseWelcome({ ...WELCOME, data_parallel_local_size: 0 })).toMatchObject({ ok: false, message: /data_parallel_local_size must be an integer from 1/ });
    expect(parseWelcome({ ...WELCOME, data_parallel_start_rank: -2 })).toMatchObject({ ok: false, message: /data_parallel_start_rank must be an integer from 0/ });
    expect(parseWelcome({ ...WELCOME, data_parallel_start_rank: 0xffffffff, data_parallel_local_size: 2 })).toMatchObject({ ok: false, message: /runs past/ });
    const info: Welcome = {
      protocolVersion: 1, engineId: "e", engine: "x", model: "m", blockSize: 16, numBlocks: 8, maxModelLen: 100, maxFrameBytes: 10,
      dataParallelStartRank: 2, dataParallelLocalSize: 3, kvEvents: null,
    };
    expect(parseWelcome(overTheWire(toWelcomeMessage(info)))).toEqual({ ok: true, value: info });
  });

  it("reads a finish's KV-transfer parameters, and names bad ones", () => {
    const usage = { prompt_tokens: 3, completion_tokens: 1, cached_tokens: 0 };
    const kv = { remote_engine_id: "p0", remote_block_ids: [4, 5] };
    expect(parseFinish({ finish_reason: "length", usage, kv_transfer_params: kv }, 1)).toMatchObject({ ok: true, value: { kvTransferParams: kv } });
    const plain = parseFinish({ finish_reason: "repetition", usage, kv_transfer_params: null }, 1);
    expect(plain).toMatchObject({ ok: true, value: { finishReason: "repetition" } });
    expect(plain.ok && "kvTransferParams" in plain.value).toBe(false);
    expect(parseFinish({ finish_reason: "stop", usage, kv_transfer_params: 7 }, 1)).toMatchObject({ ok: false, message: /kv_transfer_params must be a map, not number 7/ });
  });
});
