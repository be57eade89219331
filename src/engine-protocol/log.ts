// The one logging hook the protocol's parts take: the embedding program decides where lines go.

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFn = (level: LogLevel, message: string) => void;

/** Warnings and errors to stderr, with a prefix naming the part; debug and info are dropped. */
export function stderrLog(prefix: string): LogFn {
  return (level, message) => {
    if (level === "warn" || level === "error") console.error(`${prefix}: ${message}`);
  };
}
