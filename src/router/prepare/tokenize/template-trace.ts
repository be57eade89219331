// Rendering a chat template once for every message list of the same shape (roles, names, template
// arguments), with each message's content stood in for by a sentinel, and recording every way the
// template looked at the contents.
//
// Why the result is exact. The trace runs the template on sentinels s_i in place of contents c_i. Let
// subst(x) replace every s_i in x by c_i. Invariant: each string value of a render on the real contents
// equals subst() of the matching value in the traced render, and every other value is equal. Joining
// strings keeps the invariant (a sentinel is a run of private-use characters that no other input
// holds, so joins never make or break one). Passing values around (variables, loops, lists, macro
// arguments, attribute access on messages) keeps it. Any other use of a value holding a sentinel (a
// test, a comparison, a string method, a filter, truthiness) is recorded with its inputs and its traced
// result, and `replay` checks that the same use on the real contents gives subst() of that result. When
// every recorded use agrees, both renders take the same branches and the real output is subst() of the
// traced output. A use the tracer does not know how to record makes the shape untraceable: those
// requests are rendered in full.
import * as jinja from "@huggingface/jinja";
import type { Template } from "@huggingface/jinja";

/** The interpreter's runtime values, as far as the tracer reads them. */
interface Value {
  type: string;
  value: unknown;
  builtins: Map<string, Value>;
}
type Node = { type: string } & Record<string, unknown>;

/** The parts of the library's interpreter the tracer uses (its declarations do not resolve here). */
interface Environment {
  set(name: string, value: unknown): Value;
  lookupVariable(name: string): Value;
  tests: ReadonlyMap<string, (value: Value) => boolean>;
}
interface InterpreterApi {
  run(program: unknown): Value;
  evaluate(node: unknown, environment: Environment): Value;
  applyFilter(operand: Value, filter: Node, environment: Environment): Value;
}
const Environment = jinja.Environment as unknown as new () => Environment;
const Interpreter = jinja.Interpreter as unknown as new (env?: Environment) => InterpreterApi;

const MARK_START = "\ue000", MARK_END = "\ue001", DIGIT0 = 0xe010;
const MARKS = /[\ue000-\ue01f]/;
const SENTINELS = /\ue000([\ue010-\ue01f]+)\ue001/g;

/** The stand-in for message i's content: private-use characters, unchanged by case, trim and split. */
export function sentinel(i: number): string {
  let digits = "";
  do {
    digits = String.fromCharCode(DIGIT0 + (i & 15)) + digits;
    i >>>= 4;
  } while (i > 0);
  return MARK_START + digits + MARK_END;
}

/** Whether a string holds characters of the sentinels' range (then it cannot be traced safely). */
export function hasMarks(s: string): boolean {
  return MARKS.test(s);
}

/** Replaces every sentinel by its content. */
export function subst(s: string, contents: readonly string[]): string {
  if (!s.includes(MARK_START)) return s;
  return s.replace(SENTINELS, (_, digits: string) => contents[sentinelIndex(digits)]!);
}

function sentinelIndex(digits: string): number {
  let i = 0;
  for (let k = 0; k < digits.length; k++) i = i * 16 + (digits.charCodeAt(k) - DIGIT0);
  return i;
}

/** Whether every private-use mark in s belongs to a whole sentinel (else substitution is undefined). */
function wellFormed(s: string): boolean {
  return !hasMarks(s.replace(SENTINELS, ""));
}

/** The traced output cut at its sentinels: literal text and content indices, in order. */
export type Skeleton = (string | number)[];

export function skeletonOf(output: string): Skeleton {
  const parts: Skeleton = [];
  let at = 0;
  for (const m of output.matchAll(SENTINELS)) {
    if (m.index > at) parts.push(output.slice(at, m.index));
    parts.push(sentinelIndex(m[1]!));
    at = m.index + m[0].length;
  }
  if (at < output.length) parts.push(output.slice(at));
  return parts;
}

export function assemble(skeleton: Skeleton, contents: readonly string[]): string {
  let out = "";
  for (const part of skeleton) out += typeof part === "number" ? contents[part]! : part;
  return out;
}

/** A recorded use of a value holding sentinels, checked again on the real contents. */
type Observation =
  | { kind: "truth"; value: string }
  | { kind: "method"; target: string; name: string; args: Value[]; result: Value }
  | { kind: "filter"; filter: Node; operand: string; result: Value }
  | { kind: "test"; name: string; operand: string; result: boolean }
  | { kind: "compare"; operator: string; left: Value; right: Value; result: boolean };

export type Trace = { ok: true; skeleton: Skeleton; observations: Observation[] } | { ok: false; reason: string };

/** Globals the tracer cannot provide exactly (the clock, and `range`, which it does not reimplement). */
const UNTRACED_GLOBALS = ["strftime_now", "range"];

/** Why a template can never be traced, or null. */
export function untraceableTemplate(template: Template, source: string): string | null {
  if (hasMarks(source)) return "the template holds private-use characters the tracer uses as sentinels";
  const names = new Set<string>();
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (node instanceof Map) return [...node.entries()].forEach(walk);
    if (typeof node !== "object" || node === null) return;
    const n = node as Node;
    if (n.type === "Identifier" && typeof n.value === "string") names.add(n.value);
    for (const v of Object.values(n)) walk(v);
  };
  walk(template.parsed);
  const used = UNTRACED_GLOBALS.filter((g) => names.has(g));
  return used.length > 0 ? `the template calls ${used.join(" and ")}` : null;
}

/** Renders the template on sentinel contents. `items` are the render's variables, messages included. */
export function trace(template: Template, items: Record<string, unknown>): Trace {
  const env = new Environment();
  // What the library's own render sets up, less the globals excluded by untraceableTemplate.
  for (const [name, value] of [["false", false], ["true", true], ["none", null], ["True", true], ["False", false], ["None", null]] as const) env.set(name, value);
  env.set("raise_exception", (message: unknown) => {
    throw new Error(String(message));
  });
  for (const [key, value] of Object.entries(items)) env.set(key, value);
  const tracer = new Tracer(env);
  let output: Value;
  try {
    output = tracer.run(template.parsed);
  } catch (err) {
    return { ok: false, reason: tracer.failure ?? `the template failed on stand-in contents: ${(err as Error).message}` };
  }
  if (tracer.failure !== null) return { ok: false, reason: tracer.failure };
  const text = String(output.value);
  if (!wellFormed(text)) return { ok: false, reason: "the template cuts into message contents" };
  return { ok: true, skeleton: skeletonOf(text), observations: tracer.observations };
}

/** Whether every recorded use gives, on the real contents, what it gave on the sentinels. */
export function replay(observations: readonly Observation[], contents: readonly string[]): boolean {
  for (const o of observations) {
    switch (o.kind) {
      case "truth":
        if (subst(o.value, contents).length === 0) return false;
        break;
      case "method": {
        const real = subst(o.target, contents);
        // The library's own startswith/endswith with one string argument, without building a string value
        // and its table of methods for every request.
        const arg = o.args.length === 1 && o.args[0]!.type === "StringValue" ? (o.args[0]!.value as string) : null;
        if (arg !== null && (o.name === "startswith" || o.name === "endswith")) {
          if ((o.name === "startswith" ? real.startsWith(arg) : real.endsWith(arg)) !== o.result.value) return false;
          break;
        }
        const fn = stringValue(real).builtins.get(o.name);
        if (fn?.type !== "FunctionValue" || !sameUnderSubst(callFunction(fn, o.args), o.result, contents)) return false;
        break;
      }
      case "filter": {
        const real = replayInterpreter.applyFilter(stringValue(subst(o.operand, contents)), o.filter, new Environment());
        if (!sameUnderSubst(real, o.result, contents)) return false;
        break;
      }
      case "test":
        if (new Environment().tests.get(o.name)!(stringValue(subst(o.operand, contents))) !== o.result) return false;
        break;
      case "compare":
        if (compare(o.operator, realValue(o.left, contents), realValue(o.right, contents)) !== o.result) return false;
        break;
    }
  }
  return true;
}

const replayInterpreter = new Interpreter();

/** The interpreter's string value class, taken from a value it makes (the class is not exported). */
const StringValue = new Environment().set("s", "").constructor as new (s: string) => Value;

function stringValue(s: string): Value {
  return new StringValue(s);
}

function callFunction(fn: Value, args: Value[]): Value {
  return (fn.value as (args: Value[], env: Environment) => Value)(args, new Environment());
}

function realValue(v: Value, contents: readonly string[]): unknown {
  return v.type === "StringValue" ? subst(v.value as string, contents) : v.value;
}

/** The library's semantics for these operators on plain values. */
function compare(operator: string, left: unknown, right: unknown): boolean {
  switch (operator) {
    case "==":
      // eslint-disable-next-line eqeqeq
      return left == right;
    case "!=":
      // eslint-disable-next-line eqeqeq
      return left != right;
    case "in":
      return (right as string).includes(left as string);
    default:
      return !(right as string).includes(left as string);
  }
}

function sameUnderSubst(real: Value, traced: Value, contents: readonly string[]): boolean {
  if (real.type !== traced.type) return false;
  switch (traced.type) {
    case "StringValue":
      return real.value === subst(traced.value as string, contents);
    case "ArrayValue":
    case "TupleValue": {
      const a = real.value as Value[], b = traced.value as Value[];
      return a.length === b.length && a.every((x, i) => sameUnderSubst(x, b[i]!, contents));
    }
    default:
      return real.value === traced.value;
  }
}

const CONTAINERS = new Set(["ArrayValue", "TupleValue", "ObjectValue", "KeywordArgumentsValue", "NamespaceValue"]);
/** Filters that pass a list or mapping's items through, or count them, without reading them. */
const ITEM_FILTERS = new Set(["list", "first", "last", "length", "reverse", "items"]);
/** Mapping methods that hand back values without reading them. */
const ITEM_METHODS = new Set(["get", "items", "keys", "values"]);
/** Results of traced string uses that replay can compare. */
const COMPARABLE = new Set(["StringValue", "BooleanValue", "IntegerValue", "FloatValue", "ArrayValue", "NullValue", "UndefinedValue"]);

/** Parents whose children's values are all kept, to be judged once the parent has finished. */
const JUDGED_AFTER = new Set(["CallExpression", "BinaryExpression", "FilterExpression", "TestExpression", "MemberExpression"]);

interface Frame {
  node: Node;
  /** For JUDGED_AFTER nodes: each child evaluated, with its value. */
  children: { node: Node; value: Value }[];
}

/** The interpreter, watching every value that holds a sentinel as it is used. */
class Tracer extends Interpreter {
  readonly observations: Observation[] = [];
  failure: string | null = null;
  readonly #stack: Frame[] = [];
  /** Functions looked up on a string holding sentinels (its methods), and on mappings holding them. */
  readonly #methods = new WeakMap<object, { target: string; name: string }>();
  readonly #itemMethods = new WeakMap<object, string>();
  readonly #macros = new WeakSet<object>();

  override evaluate(statement: unknown, environment: Environment): Value {
    const node = statement as Node | undefined;
    if (node === undefined || node === null || this.failure !== null) return super.evaluate(statement, environment);
    const frame: Frame = { node, children: [] };
    this.#stack.push(frame);
    let result: Value;
    try {
      result = super.evaluate(statement, environment);
    } finally {
      this.#stack.pop();
    }
    if (this.failure === null) this.#completed(frame, result, environment);
    const parent = this.#stack[this.#stack.length - 1];
    if (parent !== undefined && this.failure === null) {
      if (JUDGED_AFTER.has(parent.node.type)) parent.children.push({ node, value: result });
      else if (this.#holdsSentinel(result)) this.#used(parent.node, node, result);
    }
    return result;
  }

  #fail(why: string): void {
    this.failure ??= why;
  }

  #holdsSentinel(v: Value, seen = new Set<object>()): boolean {
    if (v.type === "StringValue") return (v.value as string).includes(MARK_START);
    if (v.type === "FunctionValue") return this.#methods.has(v) || this.#itemMethods.has(v);
    if (!CONTAINERS.has(v.type) || seen.has(v)) return false;
    seen.add(v);
    const items = v.value instanceof Map ? [...v.value.values()] : (v.value as Value[]);
    return items.some((x) => this.#holdsSentinel(x, seen));
  }

  /** A child's value holding sentinels went to its parent (not a JUDGED_AFTER one): is that a use the trace stands for? */
  #used(p: Node, child: Node, value: Value): void {
    const isString = value.type === "StringValue";
    const isContainer = CONTAINERS.has(value.type);
    const output = () => void (isString || this.#fail(`the template prints a ${value.type} holding message content`));
    switch (p.type) {
      case "Program":
        return output();
      case "If":
        return child === p.test ? this.#truth(value) : output();
      case "For": {
        const select = (p.iterable as Node).type === "SelectExpression" ? (p.iterable as Node) : null;
        if (child === p.iterable || child === select?.lhs) return void (isContainer || this.#fail("the template loops over message content"));
        if (child === select?.test) return this.#truth(value);
        return output();
      }
      case "Set":
        // The assigned value passes as it is, into a variable or a namespace attribute; the parts of a
        // `{% set x %}...{% endset %}` block are joined.
        return child === p.value || child === (p.assignee as Node).object ? undefined : output();
      case "UnaryExpression":
        return (p.operator as { value: string }).value === "not" ? this.#truth(value) : this.#fail("the template does arithmetic on message content");
      case "Ternary":
        return child === p.condition ? this.#truth(value) : undefined;
      case "SelectExpression":
        return child === p.test ? this.#truth(value) : undefined;
      case "ArrayLiteral":
      case "TupleLiteral":
        return;
      case "ObjectLiteral":
        for (const [key] of p.value as Map<Node, Node>) if (key === child) return this.#fail("the template makes a mapping key of message content");
        return;
      default:
        return this.#fail(`the template uses message content in a ${p.type}`);
    }
  }

  #truth(value: Value): void {
    if (value.type === "StringValue") this.observations.push({ kind: "truth", value: value.value as string });
    // A list or mapping is true when it has items, whatever they hold.
    else if (!CONTAINERS.has(value.type)) this.#fail(`the template tests the truth of a ${value.type} holding message content`);
  }

  /** A node finished: judge what it did with its children's values. */
  #completed(frame: Frame, result: Value, environment: Environment): void {
    switch (frame.node.type) {
      case "Macro":
        this.#macros.add(environment.lookupVariable((frame.node.name as { value: string }).value));
        return;
      case "MemberExpression":
        return this.#member(frame, result);
      case "CallExpression":
        return this.#call(frame, result);
      case "BinaryExpression":
        return this.#binary(frame, result);
      case "FilterExpression":
        return this.#filter(frame, result);
      case "TestExpression":
        return this.#test(frame, result);
      default:
        return;
    }
  }

  #member(frame: Frame, result: Value): void {
    const n = frame.node;
    for (const { node, value } of frame.children) {
      if (node === n.object || !this.#holdsSentinel(value)) continue;
      return this.#fail("the template indexes with message content");
    }
    const object = frame.children.find((c) => c.node === n.object)?.value;
    if (object === undefined || !this.#holdsSentinel(object)) return;
    const property = n.property as Node;
    const name = !n.computed && property.type === "Identifier" ? (property.value as string) : null;
    if (object.type === "StringValue") {
      if (name === null) return this.#fail("the template indexes or slices message content");
      if (result.type !== "FunctionValue") return this.#fail(`the template reads ${name} of message content`);
      this.#methods.set(result, { target: object.value as string, name });
    } else if (result.type === "FunctionValue" && name !== null) {
      this.#itemMethods.set(result, name);
    }
  }

  #call(frame: Frame, result: Value): void {
    const n = frame.node;
    const callee = frame.children.find((c) => c.node === n.callee)?.value;
    const args = n.args as Node[];
    const isArg = (node: Node) => args.some((a) => a === node || a.value === node || a.argument === node);
    const argValues = frame.children.filter((c) => isArg(c.node));
    // Children that are neither the callee nor arguments: a macro's body (joined into its result), the
    // caller block of a {% call %}, or a macro's parameter defaults.
    for (const c of frame.children) {
      if (c.node !== n.callee && !isArg(c.node) && this.#holdsSentinel(c.value) && c.value.type !== "StringValue") {
        return this.#fail(`the template prints or binds a ${c.value.type} holding message content`);
      }
    }
    const method = callee === undefined ? undefined : this.#methods.get(callee);
    if (method !== undefined) {
      if (args.some((a) => a.type === "KeywordArgumentExpression" || a.type.startsWith("Spread") || a.type === "KeywordSpreadExpression")) {
        return this.#fail(`the template calls ${method.name} on message content with keyword or spread arguments`);
      }
      if (argValues.some((a) => this.#holdsSentinel(a.value))) return this.#fail(`the template calls ${method.name} on message content with message content`);
      if (!this.#comparable(result)) return this.#fail(`the template's ${method.name} on message content gives a value the trace cannot compare`);
      this.observations.push({ kind: "method", target: method.target, name: method.name, args: argValues.map((a) => a.value), result });
      return;
    }
    const itemMethod = callee === undefined ? undefined : this.#itemMethods.get(callee);
    if (itemMethod !== undefined && !ITEM_METHODS.has(itemMethod)) return this.#fail(`the template calls ${itemMethod} on a mapping holding message content`);
    if (!argValues.some((a) => this.#holdsSentinel(a.value))) return;
    // Arguments holding sentinels may go to macros (whose bodies are traced) and to namespace() (storage).
    const calleeNode = n.callee as Node;
    if (callee !== undefined && this.#macros.has(callee)) return;
    if (calleeNode.type === "Identifier" && calleeNode.value === "namespace") return;
    this.#fail("the template passes message content to a function");
  }

  #comparable(v: Value): boolean {
    if (!COMPARABLE.has(v.type)) return false;
    if (v.type === "StringValue") return wellFormed(v.value as string);
    if (v.type === "ArrayValue") return (v.value as Value[]).every((x) => this.#comparable(x));
    return true;
  }

  #binary(frame: Frame, result: Value): void {
    const n = frame.node;
    const left = frame.children.find((c) => c.node === n.left)?.value;
    const right = frame.children.find((c) => c.node === n.right)?.value;
    const taintedLeft = left !== undefined && this.#holdsSentinel(left);
    const taintedRight = right !== undefined && this.#holdsSentinel(right);
    if (!taintedLeft && !taintedRight) return;
    const operator = (n.operator as { value: string }).value;
    // The left operand's truth decides; the operand chosen passes as it is.
    if (operator === "and" || operator === "or") return taintedLeft ? this.#truth(left!) : undefined;
    const strings = left?.type === "StringValue" && right?.type === "StringValue";
    if (operator === "+" || operator === "~") {
      if (strings || (left?.type === "ArrayValue" && right?.type === "ArrayValue" && operator === "+")) return;
      if ((left?.type === "StringValue" && !taintedRight) || (right?.type === "StringValue" && !taintedLeft)) {
        // A string joined with a number or boolean, which prints the same either way.
        const other = left?.type === "StringValue" ? right! : left!;
        if (["IntegerValue", "FloatValue", "BooleanValue"].includes(other.type)) return;
      }
      return this.#fail(`the template joins message content with a ${left?.type}/${right?.type}`);
    }
    const primitive = (v: Value) => v.type === "StringValue" || ["IntegerValue", "FloatValue", "BooleanValue", "NullValue"].includes(v.type);
    if ((operator === "==" || operator === "!=") && primitive(left!) && primitive(right!)) {
      this.observations.push({ kind: "compare", operator, left: left!, right: right!, result: result.value as boolean });
      return;
    }
    if ((operator === "in" || operator === "not in") && strings) {
      this.observations.push({ kind: "compare", operator, left: left!, right: right!, result: result.value as boolean });
      return;
    }
    this.#fail(`the template applies ${operator} to message content`);
  }

  #filter(frame: Frame, result: Value): void {
    const n = frame.node;
    if (frame.children.some((c) => c.node !== n.operand && this.#holdsSentinel(c.value))) return this.#fail("the template passes message content to a filter as an argument");
    const operand = frame.children.find((c) => c.node === n.operand)?.value;
    if (operand === undefined || !this.#holdsSentinel(operand)) return;
    const filter = n.filter as Node;
    const name = filter.type === "Identifier" ? (filter.value as string) : null;
    if (operand.type === "StringValue") {
      if (name === null) return this.#fail("the template filters message content with arguments");
      if (!this.#comparable(result)) return this.#fail(`the template's ${name} filter on message content gives a value the trace cannot compare`);
      this.observations.push({ kind: "filter", filter, operand: operand.value as string, result });
      return;
    }
    if (name !== null && ITEM_FILTERS.has(name)) return;
    if (name === "join" && operand.type === "ArrayValue" && (operand.value as Value[]).every((x) => x.type === "StringValue")) return;
    this.#fail(`the template applies the ${name ?? "called"} filter to a ${operand.type} holding message content`);
  }

  #test(frame: Frame, result: Value): void {
    const n = frame.node;
    const operand = frame.children.find((c) => c.node === n.operand)?.value;
    // Tests on lists and mappings look at their type (or identity), never at the items.
    if (operand?.type !== "StringValue" || !this.#holdsSentinel(operand)) return;
    const name = (n.test as { value: string }).value;
    const raw = (result.value as boolean) !== (n.negate === true);
    this.observations.push({ kind: "test", name, operand: operand.value as string, result: raw });
  }
}
