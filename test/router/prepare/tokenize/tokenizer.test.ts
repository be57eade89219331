import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultTokenizerDir, loadTokenizer, type TextTokenizer } from "../../../../src/router/prepare/tokenize/index.js";

let qwen: TextTokenizer;
beforeAll(async () => {
  qwen = await loadTokenizer();
});

describe("the shipped Qwen3 tokenizer", () => {
  it("encodes text to Qwen3's ids (the ids Hugging Face's tokenizer gives)", () => {
    expect(Array.from(qwen.encode("Hello World"))).toEqual([9707, 4337]);
    expect(qwen.decode(qwen.encode("Routing by prefix, 42 times."))).toBe("Routing by prefix, 42 times.");
  });

  it("knows its vocabulary and context length", () => {
    expect(qwen.vocabSize).toBe(151669); // 151,643 regular ids plus the added special tokens
    expect(qwen.modelMaxLength).toBe(131072);
  });

  it("renders chats with the model's template and encodes the special tokens as single ids", () => {
    const messages = [
      { role: "system", content: "You are terse." },
      { role: "user", content: "Hi" },
    ];
    expect(qwen.renderChat(messages)).toBe(
      "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    );
    const ids = Array.from(qwen.encodeChat(messages));
    expect(ids[0]).toBe(151644); // <|im_start|>
    expect(ids.filter((id) => id === 151645)).toHaveLength(2); // <|im_end|>
    expect(ids.slice(-3)).toEqual([151644, 77091, 198]); // "<|im_start|>assistant\n"
  });

  it("passes template options through (Qwen3's enable_thinking)", () => {
    const text = qwen.renderChat([{ role: "user", content: "Hi" }], { enable_thinking: false });
    expect(text.endsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n")).toBe(true);
  });
});

describe("--tokenizer DIR", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "kvroute-tok-"));
    await cp(join(defaultTokenizerDir(), "tokenizer.json"), join(dir, "tokenizer.json"));
    await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify({ eos_token: "<|im_end|>", model_max_length: 4096 }));
    await writeFile(join(dir, "chat_template.jinja"), "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{{ eos_token }}");
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("loads a Hugging Face folder, taking the chat template from chat_template.jinja", async () => {
    const tok = await loadTokenizer(dir);
    expect(tok.modelMaxLength).toBe(4096);
    expect(tok.renderChat([{ role: "user", content: "yo" }])).toBe("[user]yo<|im_end|>");
  });

  it("says which file is missing or broken", async () => {
    await expect(loadTokenizer(join(dir, "nope"))).rejects.toThrow(/cannot read .*tokenizer\.json/);
    const broken = await mkdtemp(join(tmpdir(), "kvroute-tok-"));
    await writeFile(join(broken, "tokenizer.json"), "{not json");
    await expect(loadTokenizer(broken)).rejects.toThrow(/not valid tokenizer JSON/);
    await rm(broken, { recursive: true, force: true });
  });

  it("a model without a chat template refuses chats clearly", async () => {
    const plain = await mkdtemp(join(tmpdir(), "kvroute-tok-"));
    await cp(join(defaultTokenizerDir(), "tokenizer.json"), join(plain, "tokenizer.json"));
    const tok = await loadTokenizer(plain);
    expect(tok.hasChatTemplate).toBe(false);
    expect(() => tok.renderChat([{ role: "user", content: "x" }])).toThrow(/has no chat template/);
    await rm(plain, { recursive: true, force: true });
  });
});
