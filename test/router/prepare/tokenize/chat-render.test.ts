// Chat rendering from traced shapes is exactly the template's own render, for the shipped Qwen3 template,
// a Llama 3 style one, and templates that use message contents in every way the tracer must catch.
import { Template } from "@huggingface/jinja";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { ChatRenderer, type ChatMessage } from "../../../../src/router/prepare/tokenize/chat-render.js";
import { defaultTokenizerDir, readTokenizerFiles } from "../../../../src/router/prepare/tokenize/index.js";
import { llama3Style } from "./test-tokenizers.js";
import { SPECIAL_STRINGS, text } from "./texts.js";

const SPECIALS = { bos_token: "<|begin_of_text|>", eos_token: "<|im_end|>" };

function fullRender(template: Template, messages: ChatMessage[], kwargs: Record<string, unknown>): string {
  return template.render({ ...SPECIALS, ...kwargs, messages, add_generation_prompt: kwargs.add_generation_prompt ?? true });
}

const content = fc.oneof(
  text,
  fc.constantFrom("", " ", "\n", "\nleading newline", "trailing newline\n", "  padded  ", "<tool_response>\nok\n</tool_response>", "<think>\nhm\n</think>\n\nanswer", "a</think>b", "user", "x"),
  fc.constantFrom(...SPECIAL_STRINGS),
);
const shape = fc.record({
  roles: fc.array(fc.constantFrom("system", "user", "assistant", "tool"), { minLength: 1, maxLength: 6 }),
  names: fc.array(fc.option(fc.constantFrom("alice", "bob"), { nil: undefined }), { minLength: 6, maxLength: 6 }),
  kwargs: fc.record({ enable_thinking: fc.boolean(), add_generation_prompt: fc.boolean(), note: fc.string({ maxLength: 5 }) }, { requiredKeys: [] }),
});
/** A shape and several message lists of that shape, so that traces are made and then reused. */
const requests = shape.chain((s) =>
  fc.array(fc.array(content, { minLength: s.roles.length, maxLength: s.roles.length }), { minLength: 1, maxLength: 4 }).map((contentLists) => ({
    kwargs: s.kwargs as Record<string, unknown>,
    lists: contentLists.map((contents) =>
      s.roles.map((role, i): ChatMessage => (s.names[i] === undefined ? { role, content: contents[i]! } : { role, content: contents[i]!, name: s.names[i]! })),
    ),
  })),
);

function checkAgainstFullRender(source: string, runs: number): ChatRenderer {
  const template = new Template(source);
  const renderer = new ChatRenderer(template, source, SPECIALS);
  fc.assert(
    fc.property(requests, ({ kwargs, lists }) => {
      for (const messages of lists) {
        let expected: string | Error;
        try {
          expected = fullRender(template, messages, kwargs);
        } catch (err) {
          expected = err as Error;
        }
        if (expected instanceof Error) expect(() => renderer.render(messages, kwargs)).toThrow(expected.message);
        else expect(renderer.render(messages, kwargs)).toBe(expected);
      }
    }),
    { numRuns: runs },
  );
  return renderer;
}

let qwen3Template: string;
beforeAll(async () => {
  qwen3Template = (await readTokenizerFiles(defaultTokenizerDir())).chatTemplate!;
});

describe("the Qwen3 template", () => {
  it("renders from traces exactly as it renders itself, for any roles, contents and arguments", () => {
    const renderer = checkAgainstFullRender(qwen3Template, 400);
    const stats = renderer.stats();
    expect(stats.untraceable).toBeNull();
    // Most renders come from traces; the rest are contents the trace's checks turned away (a user message
    // that is a tool response, an assistant message holding </think>, ...).
    expect(stats.reused).toBeGreaterThan(stats.full);
  });

  it("traces a system prompt and a question once, then only checks and fills in contents", () => {
    const renderer = new ChatRenderer(new Template(qwen3Template), qwen3Template, SPECIALS);
    const system = "You are terse. ".repeat(100);
    for (const q of ["one", "two", "three"]) renderer.render([{ role: "system", content: system }, { role: "user", content: q }], {});
    expect(renderer.stats()).toMatchObject({ shapes: 1, reused: 3, full: 0 });
  });

  it("renders in full when a content's checked use differs from the trace's (a tool response)", () => {
    const template = new Template(qwen3Template);
    const renderer = new ChatRenderer(template, qwen3Template, SPECIALS);
    const messages = [{ role: "user", content: "<tool_response>42</tool_response>" }];
    expect(renderer.render(messages, {})).toBe(fullRender(template, messages, {}));
    expect(renderer.stats()).toMatchObject({ reused: 0, full: 1 });
  });
});

describe("a Llama 3 style template (contents trimmed)", () => {
  it("renders from traces exactly as it renders itself", () => {
    const stats = checkAgainstFullRender(llama3Style().chatTemplate!, 200).stats();
    expect(stats.reused).toBeGreaterThan(0);
  });
});

describe("templates that use contents in ways a trace cannot stand for", () => {
  // The last column: why tracing must give up on this template, or "traced" when it must not.
  const cases: [string, string, RegExp | "traced"][] = [
    ["prints the messages as JSON", "{{ messages | tojson }}", /tojson filter/],
    ["loops over a content's words", "{% for m in messages %}{% for w in m.content.split() %}[{{ w }}]{% endfor %}{% endfor %}", "traced"],
    ["indexes a content", "{% for m in messages %}{{ m.content[0] }}{% endfor %}", /indexes or slices/],
    ["slices a content", "{% for m in messages %}{{ m.content[1:3] }}{% endfor %}", /indexes or slices/],
    ["reads a content's length", "{% for m in messages %}{{ m.content | length }}{% endfor %}", "traced"],
    ["compares contents", "{% for m in messages %}{% if m.content == 'x' %}X{% else %}{{ m.content }}{% endif %}{% endfor %}", "traced"],
    ["replaces inside a content", "{% for m in messages %}{{ m.content | replace('a', 'b') }}{% endfor %}", /filters message content with arguments/],
    ["upper-cases a content", "{% for m in messages %}{{ m.content.upper() }}{% endfor %}", "traced"],
    ["splits and joins a content", "{% for m in messages %}{{ m.content.split('\\n') | join('|') }}{% endfor %}", /called filter/],
    ["uses a content as a key", "{% set d = {messages[0].content: 1} %}{{ d | length }}", /mapping key/],
    ["passes a content to a macro", "{% macro show(x) %}<{{ x | trim }}>{% endmacro %}{% for m in messages %}{{ show(m.content) }}{% endfor %}", "traced"],
    ["stores contents in a namespace", "{% set ns = namespace(last='') %}{% for m in messages %}{% set ns.last = m.content %}{% set ns.n = 1 %}{% endfor %}{{ ns.last }}", "traced"],
    ["tests a content", "{% for m in messages %}{% if m.content is string and m.content is lower %}L{% endif %}{{ m.content }}{% endfor %}", "traced"],
    ["raises with a content", "{% if messages[0].role == 'tool' %}{{ raise_exception('bad: ' + messages[0].content) }}{% endif %}{{ messages[0].content }}", "traced"],
    ["joins a content with the message list", "{{ messages[0].content ~ messages }}", /joins message content with a StringValue\/ArrayValue/],
    ["reads the clock", "{{ strftime_now('%Y') }}{{ messages[0].content }}", /calls strftime_now/],
  ];

  it.each(cases)("a template that %s still renders exactly", (_, source, expected) => {
    const renderer = checkAgainstFullRender(source, 60);
    const m = [{ role: "user", content: "hello" }];
    renderer.render(m, {});
    if (expected === "traced") expect(renderer.shapeFailure(m, {})).toBeNull();
    else expect(renderer.shapeFailure(m, {})).toMatch(expected);
  });
});
