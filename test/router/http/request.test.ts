import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ApiError } from "../../../src/router/http/errors.js";
import { parseRequest } from "../../../src/router/http/request.js";

function error(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error("expected an ApiError");
}

describe("completions bodies", () => {
  it("takes text, token ids, and batches of either", () => {
    expect(parseRequest("completions", { model: "m", prompt: "hi" }).prompts).toEqual([{ kind: "text", text: "hi" }]);
    const tokens = parseRequest("completions", { model: "m", prompt: [1, 2, 3] }).prompts;
    expect(tokens).toEqual([{ kind: "tokens", tokens: new Uint32Array([1, 2, 3]) }]);
    const batch = parseRequest("completions", { model: "m", prompt: ["a", [7, 8]] }).prompts;
    expect(batch.map((p) => p.kind)).toEqual(["text", "tokens"]);
  });

  it("fills defaults the way the OpenAI API does", () => {
    const r = parseRequest("completions", { model: "m", prompt: "x" });
    expect(r.sampling).toMatchObject({ maxTokens: 16, temperature: 1, topP: 1, topK: -1, seed: null, stop: [], ignoreEos: false, minTokens: 0 });
    expect(r.stream).toBe(false);
    expect(r.includeUsage).toBe(false);
    expect(parseRequest("chat", { model: "m", messages: [{ role: "user", content: "x" }] }).sampling.maxTokens).toBeNull();
  });

  it("reads sampling options, stream options and vLLM extensions", () => {
    const r = parseRequest("completions", {
      model: "m",
      prompt: "x",
      max_tokens: 5,
      temperature: 0,
      top_p: 0.5,
      top_k: 40,
      seed: 7,
      stop: "\n",
      stop_token_ids: [2],
      ignore_eos: true,
      min_tokens: 3,
      stream: true,
      stream_options: { include_usage: true },
      cache_salt: "tenant-a",
    });
    expect(r.sampling).toEqual({ maxTokens: 5, temperature: 0, topP: 0.5, topK: 40, seed: 7, stop: ["\n"], stopTokenIds: [2], ignoreEos: true, minTokens: 3 });
    expect(r).toMatchObject({ stream: true, includeUsage: true, cacheSalt: "tenant-a" });
  });

  const bad: [string, Record<string, unknown>, string, RegExp][] = [
    ["prompt a number", { prompt: 5 }, "prompt", /must be a string, an array of token ids/],
    ["prompt missing", {}, "prompt", /'prompt' is required/],
    ["empty text prompt", { prompt: "" }, "prompt", /must not be empty/],
    ["empty token array", { prompt: [] }, "prompt", /must not be empty/],
    ["negative token id", { prompt: [1, -2] }, "prompt", /'prompt\[1\]' must be a non-negative integer token id, got the integer -2/],
    ["fractional token id", { prompt: [1.5] }, "prompt", /got the number 1\.5/],
    ["token id above u32", { prompt: [2 ** 32] }, "prompt", /non-negative integer token id/],
    ["bad batch item", { prompt: ["a", 3] }, "prompt[1]", /must be a string or an array of token ids/],
    ["a batch too large", { prompt: Array.from({ length: 257 }, () => "x") }, "prompt", /a batch takes at most 256 prompts, got 257/],
    ["max_tokens a string", { prompt: "x", max_tokens: "10" }, "max_tokens", /must be an integer, got a string/],
    ["max_tokens 0", { prompt: "x", max_tokens: 0 }, "max_tokens", /from 1 to/],
    ["temperature too high", { prompt: "x", temperature: 2.5 }, "temperature", /between 0 and 2, got 2\.5/],
    ["temperature negative", { prompt: "x", temperature: -0.1 }, "temperature", /between 0 and 2/],
    ["top_p 0", { prompt: "x", top_p: 0 }, "top_p", /greater than 0/],
    ["top_k 0", { prompt: "x", top_k: 0 }, "top_k", /-1 \(disabled\) or at least 1/],
    ["n above 1", { prompt: "x", n: 3 }, "n", /'n' other than 1 is not supported/],
    ["too many stops", { prompt: "x", stop: ["a", "b", "c", "d", "e"] }, "stop", /at most 4/],
    ["min above max", { prompt: "x", max_tokens: 2, min_tokens: 5 }, "min_tokens", /must not exceed/],
    ["stream_options without stream", { prompt: "x", stream_options: { include_usage: true } }, "stream_options", /only allowed when 'stream' is true/],
    ["model missing", { prompt: "x", model: undefined }, "model", /'model' is required/],
    ["logprobs", { prompt: "x", logprobs: 2 }, "logprobs", /not supported/],
  ];
  for (const [what, body, param, message] of bad) {
    it(`rejects ${what}, naming '${param}'`, () => {
      const err = error(() => parseRequest("completions", { model: "m", ...body }));
      expect(err.status).toBe(400);
      expect(err.param).toBe(param);
      expect(err.message).toMatch(message);
      expect(err.toBody().error).toMatchObject({ type: "invalid_request_error", param });
    });
  }

  it("rejects a body that is not an object", () => {
    expect(error(() => parseRequest("completions", [1])).message).toMatch(/must be a JSON object/);
    expect(error(() => parseRequest("completions", "x")).param).toBe("body");
  });
});

describe("chat bodies", () => {
  it("takes string and text-part content, and template options", () => {
    const r = parseRequest("chat", {
      model: "m",
      messages: [
        { role: "system", content: "be brief" },
        { role: "user", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] },
      ],
      chat_template_kwargs: { enable_thinking: false },
      max_completion_tokens: 9,
    });
    expect(r.prompts).toEqual([
      {
        kind: "chat",
        messages: [
          { role: "system", content: "be brief" },
          { role: "user", content: "ab" },
        ],
        templateKwargs: { enable_thinking: false },
      },
    ]);
    expect(r.sampling.maxTokens).toBe(9);
  });

  const bad: [string, unknown, string, RegExp][] = [
    ["messages not an array", { role: "user" }, "messages", /must be an array, got an object/],
    ["empty messages", [], "messages", /must not be empty/],
    ["unknown role", [{ role: "wizard", content: "x" }], "messages[0].role", /must be one of system, developer, user, assistant, tool, got "wizard"/],
    ["missing role", [{ content: "x" }], "messages[0].role", /is required/],
    ["image content", [{ role: "user", content: [{ type: "image_url", image_url: {} }] }], "messages[0].content[0]", /other content types are not supported/],
    ["message not an object", ["hi"], "messages[0]", /must be an object/],
  ];
  for (const [what, messages, param, message] of bad) {
    it(`rejects ${what}, naming '${param}'`, () => {
      const err = error(() => parseRequest("chat", { model: "m", messages }));
      expect(err.param).toBe(param);
      expect(err.message).toMatch(message);
    });
  }
});

describe("fields kvroute cannot honour", () => {
  // Per field: a value that asks for the feature, and the values that ask for nothing.
  const refused: [string, unknown, unknown[]][] = [
    ["n", 2, [1]],
    ["best_of", 3, [1]],
    ["use_beam_search", true, [false]],
    ["echo", true, [false]],
    ["suffix", "tail", [""]],
    ["presence_penalty", 0.5, [0]],
    ["frequency_penalty", -1, [0]],
    ["repetition_penalty", 1.2, [1]],
    ["min_p", 0.1, [0]],
    ["logit_bias", { "17": 5 }, [{}]],
    ["logprobs", true, [false]],
    ["top_logprobs", 3, [0]],
    ["prompt_logprobs", 1, []],
    ["tools", [{ type: "function", function: { name: "f" } }], [[]]],
    ["tool_choice", "required", ["none", "auto"]],
    ["functions", [{ name: "f" }], [[]]],
    ["function_call", { name: "f" }, ["none", "auto"]],
    ["response_format", { type: "json_object" }, [{ type: "text" }]],
    ["guided_json", { type: "object" }, []],
    ["guided_regex", "a+", []],
    ["guided_choice", ["a", "b"], []],
    ["guided_grammar", "root ::= x", []],
    ["structured_outputs", { json: {} }, []],
  ];
  const chat = (extra: Record<string, unknown>) => ({ model: "m", messages: [{ role: "user", content: "x" }], ...extra });
  const completion = (extra: Record<string, unknown>) => ({ model: "m", prompt: "x", ...extra });

  for (const [key, asking, unused] of refused) {
    it(`refuses '${key}' with one error whatever the type of its value, and takes the values that ask for nothing`, () => {
      const expected = error(() => parseRequest("chat", chat({ [key]: asking })));
      expect(expected.toBody().error).toMatchObject({ type: "invalid_request_error", param: key, code: "unsupported_value" });
      expect(expected.message).toContain(`'${key}'`);
      for (const endpoint of ["chat", "completions"] as const) {
        const body = endpoint === "chat" ? chat : completion;
        for (const v of [null, ...unused]) expect(() => parseRequest(endpoint, body({ [key]: v }))).not.toThrow();
        fc.assert(
          fc.property(
            fc.jsonValue().filter((v) => v !== null && !unused.some((u) => JSON.stringify(u) === JSON.stringify(v))),
            (v) => {
              // Completions count logprobs; 0 asks for none there.
              if (endpoint === "completions" && key === "logprobs" && v === 0) return;
              const err = error(() => parseRequest(endpoint, body({ [key]: v })));
              expect({ status: err.status, message: err.message, param: err.param, code: err.code }).toEqual({
                status: 400,
                message: expected.message,
                param: key,
                code: "unsupported_value",
              });
            },
          ),
          { numRuns: 60 },
        );
      }
    });
  }

  it("refuses chat 'tools' given as a string exactly as it refuses a tools array", () => {
    const asString = error(() => parseRequest("chat", chat({ tools: "x" })));
    const asArray = error(() => parseRequest("chat", chat({ tools: [{ type: "function", function: { name: "f" } }] })));
    expect(asString.toBody()).toEqual(asArray.toBody());
  });
});
