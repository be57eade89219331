// Checks shared by the commands' option parsers.

/** Bad command-line input: the command prints it with its usage and exits 2. */
export class UsageError extends Error {}

export interface NumberRule {
  integer?: boolean;
  min?: number;
  /** The value must be above `min`, not merely at least `min`. */
  above?: boolean;
  max?: number;
}

/** A numeric option's value, or undefined when it was not given; a UsageError names the option and the rule. */
export function numberOption(name: string, text: string | undefined, rule: NumberRule = {}): number | undefined {
  if (text === undefined) return undefined;
  const { integer = false, min, above = false, max } = rule;
  const value = Number(text);
  const fits =
    text.trim() !== "" &&
    Number.isFinite(value) &&
    (!integer || Number.isSafeInteger(value)) &&
    (min === undefined || (above ? value > min : value >= min)) &&
    (max === undefined || value <= max);
  if (!fits) {
    const range = [min === undefined ? "" : above ? ` above ${min}` : ` of at least ${min}`, max === undefined ? "" : `${min === undefined ? "" : " and"} at most ${max}`].join("");
    throw new UsageError(`--${name} must be ${integer ? "an integer" : "a number"}${range}, got ${JSON.stringify(text)}`);
  }
  return value;
}

/** An on/off option's value, `fallback` when it was not given; a UsageError names the option otherwise. */
export function onOffOption(name: string, text: string | undefined, fallback: boolean): boolean {
  if (text === undefined) return fallback;
  if (text === "on" || text === "off") return text === "on";
  throw new UsageError(`--${name} must be on or off, got ${JSON.stringify(text)}`);
}
