import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

let cached: string | undefined;

/**
 * The kvroute package folder. Sources run from `src/` under the test runner and from `dist/src/` once
 * built, so assets (the WASM kernel, worker scripts) are found from the package root, not by relative depth.
 */
export function packageRoot(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest)) {
      const { name } = JSON.parse(readFileSync(manifest, "utf8")) as { name?: string };
      if (name === "kvroute") return (cached = dir);
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error("kvroute: cannot find the package root (package.json named kvroute)");
    dir = parent;
  }
}

/** A compiled JavaScript file of this package, e.g. `distFile("src/router/http/pool-worker.js")`. */
export function distFile(relative: string): string {
  return join(packageRoot(), "dist", relative);
}
