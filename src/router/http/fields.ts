import { badField } from "./errors.js";

/** Reads typed fields of a JSON request body; every error names the field and what was wrong with it. */
export class Fields {
  constructor(
    private readonly body: Record<string, unknown>,
    private readonly prefix = "",
  ) {}

  static of(value: unknown): Fields {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw badField("body", "the request body must be a JSON object", "invalid_type");
    }
    return new Fields(value as Record<string, unknown>);
  }

  name(key: string): string {
    return this.prefix + key;
  }

  has(key: string): boolean {
    return this.body[key] !== undefined && this.body[key] !== null;
  }

  raw(key: string): unknown {
    return this.body[key];
  }

  string(key: string): string | undefined {
    const v = this.body[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") throw this.typeError(key, "a string", v);
    return v;
  }

  requiredString(key: string): string {
    const v = this.string(key);
    if (v === undefined) throw badField(this.name(key), `'${this.name(key)}' is required`, "missing_required_parameter");
    return v;
  }

  boolean(key: string): boolean | undefined {
    const v = this.body[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "boolean") throw this.typeError(key, "a boolean", v);
    return v;
  }

  number(key: string, min: number, max: number): number | undefined {
    const v = this.body[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v)) throw this.typeError(key, "a number", v);
    if (v < min || v > max) throw badField(this.name(key), `'${this.name(key)}' must be between ${min} and ${max}, got ${v}`);
    return v;
  }

  integer(key: string, min: number, max: number): number | undefined {
    const v = this.body[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v)) throw this.typeError(key, "an integer", v);
    if (v < min || v > max) throw badField(this.name(key), `'${this.name(key)}' must be an integer from ${min} to ${max}, got ${v}`);
    return v;
  }

  object(key: string): Fields | undefined {
    const v = this.body[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "object" || Array.isArray(v)) throw this.typeError(key, "an object", v);
    return new Fields(v as Record<string, unknown>, `${this.name(key)}.`);
  }

  record(key: string): Record<string, unknown> | undefined {
    return this.object(key)?.body;
  }

  typeError(key: string, expected: string, got: unknown) {
    return badField(this.name(key), `'${this.name(key)}' must be ${expected}, got ${kindOf(got)}`, "invalid_type");
  }
}

export function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return `a string`;
  if (typeof v === "number") return Number.isInteger(v) ? `the integer ${v}` : `the number ${v}`;
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}
