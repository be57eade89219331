// Text generators for the tokenizer's property tests: fragments that sit on every boundary the
// pre-tokenizers and normalizers care about, joined at random.
import fc from "fast-check";

export const SPECIAL_STRINGS = [
  "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>", "<|begin_of_text|>", "<|eot_id|>",
  "<|start_header_id|>", "<s>", "</s>", "<tool>", "<|im_", "|>", "<|", "<|im_start|", "<<|im_end|>>", "<|im_start|><|im_end|>",
];

const FRAGMENTS = [
  // words, cases, contractions
  "hello", "World", "HTTP", "the", "routing", " prefix", "don't", "it's", "THEY'RE", "we'LL", "I'd", "'s", "'T", "'x", "''", "'ve",
  // numbers
  "7", "42", "12345678", "3.14159", "1,000,000", "0x1F", "2024-06-01", "１２３",
  // whitespace
  " ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n\n", "   \n  ", " \t \n", "\u00a0", "\u0085", "\u2028", "\u3000", "\ufeff", "\u200b", "\v", "\f",
  // punctuation and code
  "(", ")", "{", "}", ";", "...", "!?", "->", "=>", "//", "#", "@", "\"", "`", "\\", "||", "&&",
  "function f(x) {\n  return x * 2;\n}\n", "if (a && b) { c++; }", "def f():\n\tpass\n", "SELECT * FROM t WHERE id = 1;", "<div class=\"x\">",
  // letters beyond ASCII, and what normalization changes
  "café", "naïve", "Straße", "ǅ", "ﬁ", "e\u0301", "\u212b", "①", "Ⅻ", "Ω", "ﬀ", "ｆｕｌｌ",
  // CJK, Hangul, other scripts
  "你好世界", "日本語のテキスト", "한국어", "Привет", "مرحبا", "שלום", "ภาษาไทย", "हिन्दी",
  // emoji and astral letters, digits
  "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "𝐀𝐁𝐂", "𝟙𝟚𝟛", "𐍈",
  // lone surrogates
  "\ud800", "\udc00", "a\ud83d",
  ...SPECIAL_STRINGS,
];

/** Long runs: words over the BPE's short-word limit, and long runs of one class. */
const LONG = [
  "a".repeat(100), "ab".repeat(70), "x".repeat(300), "😀".repeat(30), "=".repeat(80), " ".repeat(50), "\n".repeat(40), "9".repeat(60),
  "supercalifragilisticexpialidocious".repeat(4), "你好".repeat(60), " \t".repeat(30),
];

const fragment = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(...FRAGMENTS) },
  { weight: 1, arbitrary: fc.constantFrom(...LONG) },
  { weight: 3, arbitrary: fc.string({ unit: "binary", maxLength: 8 }) },
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom("a", "B", " ", "'", "s", "1", "\n", "\r", "\t", ".", "é", "好"), maxLength: 16 }) },
);

/** Text from 0 to 40 fragments. */
export const text = fc.array(fragment, { maxLength: 40 }).map((parts) => parts.join(""));

/** Characters that sit on the Qwen / Llama 3 regex's class boundaries, for testing its scanner. */
export const boundaryText = fc.string({
  unit: fc.constantFrom(
    "a", "Z", "s", "t", "S", "L", "l", "r", "e", "v", "m", "d", "'", "1", "٣", "①", " ", "  ", "\t", "\n", "\r", "\u00a0", "\u0085", "\u2028",
    "\u3000", "\ufeff", ".", "(", "'", "é", "好", "😀", "𝐀", "𝟙", "\ud800", "\udc00", "_", "-",
  ),
  maxLength: 60,
});
