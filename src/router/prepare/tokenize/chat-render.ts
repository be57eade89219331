// Chat rendering that runs the template once per message-list shape rather than once per request.
//
// A shape is everything the template sees except the message contents: the template arguments and each
// message's other fields, in order. The first request of a shape traces the template (template-trace.ts);
// later ones check the trace's recorded uses of the contents against their own contents and, when all
// agree, put their contents into the traced output. Invariant: render() returns exactly what
// template.render() returns for the same arguments; where that cannot be shown for a request (an
// untraceable template or shape, a recorded use that disagrees), it calls template.render().
import type { Template } from "@huggingface/jinja";
import { assemble, hasMarks, replay, sentinel, trace, untraceableTemplate, type Trace } from "./template-trace.js";

export interface ChatMessage {
  role: string;
  content: string;
  name?: string;
}

export interface ChatRenderStats {
  /** Shapes traced and kept. */
  shapes: number;
  /** Renders made by putting contents into a traced output. */
  reused: number;
  /** Renders made by the template itself: untraceable template or shape, or contents that disagree. */
  full: number;
  /** Why the template is never traced, or null. */
  untraceable: string | null;
}

/** Traced shapes kept per thread (a shape costs about one rendered prompt without its contents). */
const SHAPES = 256;

export class ChatRenderer {
  readonly #untraceable: string | null;
  readonly #shapes = new Map<string, Trace>();
  #reused = 0;
  #full = 0;

  constructor(
    private readonly template: Template,
    source: string,
    private readonly specialTokens: Record<string, string>,
  ) {
    this.#untraceable = untraceableTemplate(template, source);
  }

  render(messages: ChatMessage[], templateKwargs: Record<string, unknown>): string {
    const items = (msgs: unknown[]) => ({
      ...this.specialTokens,
      ...templateKwargs,
      messages: msgs,
      add_generation_prompt: templateKwargs.add_generation_prompt ?? true,
    });
    const contents = messages.map((m) => m.content);
    if (this.#untraceable !== null || !contents.every((c) => typeof c === "string")) return this.#fullRender(items(messages));
    const key = shapeKey(messages, templateKwargs);
    if (key === null) return this.#fullRender(items(messages));
    let shape = this.#shapes.get(key);
    if (shape === undefined) {
      shape = trace(this.template, items(messages.map((m, i) => ({ ...m, content: sentinel(i) }))));
      if (this.#shapes.size >= SHAPES) this.#shapes.delete(this.#shapes.keys().next().value!);
    } else {
      this.#shapes.delete(key); // re-inserted below as the most recently used
    }
    this.#shapes.set(key, shape);
    if (!shape.ok || !replaySafely(shape.observations, contents)) return this.#fullRender(items(messages));
    this.#reused++;
    return assemble(shape.skeleton, contents);
  }

  stats(): ChatRenderStats {
    return { shapes: this.#shapes.size, reused: this.#reused, full: this.#full, untraceable: this.#untraceable };
  }

  /** Why a shape was not traced, for tests and logs: null when it was. */
  shapeFailure(messages: ChatMessage[], templateKwargs: Record<string, unknown>): string | null {
    const key = shapeKey(messages, templateKwargs);
    const shape = key === null ? undefined : this.#shapes.get(key);
    return shape === undefined ? (this.#untraceable ?? "not traced yet") : shape.ok ? null : shape.reason;
  }

  #fullRender(items: Record<string, unknown>): string {
    this.#full++;
    return this.template.render(items);
  }
}

/** A recorded use that throws on the real contents cannot vouch for them: the template decides. */
function replaySafely(observations: Parameters<typeof replay>[0], contents: string[]): boolean {
  try {
    return replay(observations, contents);
  } catch {
    return false;
  }
}

const UNDEFINED = { "\u0000undefined": true };
const json = (v: unknown) => JSON.stringify(v, (_, x: unknown) => (x === undefined ? UNDEFINED : x));

/**
 * Everything but the contents, in an encoding that tells apart what the template can tell apart (a field
 * set to undefined is not an absent one; the content field keeps its place among the others, as a
 * template may walk a message's items in order). Null when an input holds the sentinels' characters.
 */
function shapeKey(messages: ChatMessage[], templateKwargs: Record<string, unknown>): string | null {
  let key = json(templateKwargs);
  for (const m of messages) {
    key += "|";
    for (const field in m) {
      const value = (m as unknown as Record<string, unknown>)[field];
      key += field === "content" ? ",content" : typeof value === "string" ? `,${JSON.stringify(field)}:${JSON.stringify(value)}` : `,${JSON.stringify(field)}=${json(value)}`;
    }
  }
  return hasMarks(key) ? null : key;
}
