// The fast byte-level encoder against @huggingface/tokenizers: the same ids for the same text, on the
// shipped Qwen3 tokenizer and on three tokenizers laid out like other model families.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as hf from "@huggingface/tokenizers";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { readTokenizerFiles, defaultTokenizerDir, TextTokenizer, type TokenizerFiles } from "../../../../src/router/prepare/tokenize/index.js";
import { LLAMA3_PATTERN, QWEN_PATTERN, WordScanner } from "../../../../src/router/prepare/tokenize/scanner.js";
import { packageRoot } from "../../../../src/util/package-root.js";
import { expectSameIds, gpt2Style, llama3Style, o200kStyle, withJson } from "./test-tokenizers.js";
import { boundaryText, text } from "./texts.js";

const tokenizers: Record<string, { files: TokenizerFiles; tok: TextTokenizer }> = {};
beforeAll(async () => {
  for (const [name, files] of [["qwen3", await readTokenizerFiles(defaultTokenizerDir())], ["llama3-style", llama3Style()], ["gpt2-style", gpt2Style()], ["o200k-style", o200kStyle()]] as const) {
    tokenizers[name] = { files, tok: new TextTokenizer(files, { cacheBytes: 0 }) };
  }
}, 60_000);

describe.each(["qwen3", "llama3-style", "gpt2-style", "o200k-style"])("the fast encoder on %s", (name) => {
  it("is the encoder in use, and says which pre-tokenizer runs", () => {
    const { tok } = tokenizers[name]!;
    expect(tok.encoder.kind).toBe("byte-level-bpe");
    const expected = { qwen3: "Qwen2 scanner", "llama3-style": "Llama 3 scanner", "gpt2-style": "1 regex stage", "o200k-style": "2 regex stages" }[name];
    expect(tok.encoder.note).toBe(expected);
  });

  it("gives the library's ids for random text, with and without special tokens", () => {
    const { tok } = tokenizers[name]!;
    fc.assert(
      fc.property(text, (t) => {
        expectSameIds(tok.encodeText(t, false), tok.encodeWithReference(t, false));
        expectSameIds(tok.encode(t), tok.encodeWithReference(t, true));
      }),
      { numRuns: 150 },
    );
  });

  it("gives the library's ids for a corpus: the project's docs and code, long words, numbers, scripts", () => {
    const { tok } = tokenizers[name]!;
    for (const t of corpus()) expectSameIds(tok.encodeText(t, false), tok.encodeWithReference(t, false));
  });
});

function corpus(): string[] {
  const root = packageRoot();
  const files = ["README.md", "docs/operations.md", "src/router/prepare/tokenize/bpe.ts", "wasm/assembly/kernel.ts", "python/kvroute_vllm/__main__.py"];
  const texts = files.map((f) => readFileSync(join(root, f), "utf8"));
  texts.push(
    "支持 KV 缓存感知的路由器。它把每个请求发送到已经缓存了最长前缀的引擎，同时权衡负载。这是一个很长的没有空格的中文句子用来测试长词".repeat(20),
    "Числа: 3141592653589793238462643383279 и 2718281828459045 — " + "0123456789".repeat(50),
    `${"a".repeat(5000)} ${"ab".repeat(3000)} ${"🙂".repeat(500)} ${"—".repeat(400)}`,
    "tab\tseparated\tvalues\n".repeat(200) + " \n \r\n\r\n  \t\t  \u3000\u3000 end",
  );
  return texts;
}

describe("the hand-written scanner", () => {
  const library = (pattern: string) => new (hf as unknown as { SplitPreTokenizer: new (c: object) => { pre_tokenize_text(t: string): string[] } }).SplitPreTokenizer({ type: "Split", pattern: { Regex: pattern }, behavior: "Isolated", invert: false });
  const pieces = (scanner: WordScanner, t: string) => {
    const out: string[] = [];
    scanner.reset(t);
    while (scanner.next()) out.push(t.slice(scanner.start, scanner.end));
    return out;
  };

  it.each([
    ["Qwen2", QWEN_PATTERN, 1],
    ["Llama 3", LLAMA3_PATTERN, 3],
  ])("cuts text as the library's compiled %s regex does", (_, pattern, digits) => {
    const reference = library(pattern);
    const scanner = new WordScanner(digits);
    fc.assert(fc.property(fc.oneof(boundaryText, text), (t) => {
      expect(pieces(scanner, t)).toEqual(reference.pre_tokenize_text(t));
    }), { numRuns: 2000 });
  });
});

describe("tokenizers the fast encoder does not reproduce", () => {
  let base: TokenizerFiles;
  beforeAll(() => {
    base = gpt2Style();
  });

  it.each([
    [
      "a Lowercase normalizer",
      (j: Record<string, unknown>) => {
        j.normalizer = { type: "Lowercase" };
        (j.added_tokens as Record<string, unknown>[])[0]!.normalized = false;
      },
      /Lowercase normalizer/,
    ],
    ["a token matched after normalization", (j: Record<string, unknown>) => (j.normalizer = { type: "NFC" }), /matched after normalization/],
    ["byte_fallback", (j: Record<string, unknown>) => ((j.model as Record<string, unknown>).byte_fallback = true), /byte_fallback/],
    ["a Whitespace pre-tokenizer", (j: Record<string, unknown>) => (j.pre_tokenizer = { type: "Whitespace" }), /does not end with ByteLevel/],
    ["a token that strips its neighbours", (j: Record<string, unknown>) => ((j.added_tokens as Record<string, unknown>[])[0]!.lstrip = true), /strips the whitespace/],
  ])("fall back to @huggingface/tokenizers on %s, say why, and still give its ids", (_, change, reason) => {
    const tok = new TextTokenizer(withJson(base, change), { cacheBytes: 0 });
    expect(tok.encoder.kind).toBe("huggingface");
    expect(tok.encoder.note).toMatch(reason);
    fc.assert(fc.property(text, (t) => {
        expectSameIds(tok.encode(t), tok.encodeWithReference(t, true));
      }), { numRuns: 20 });
  });
});
