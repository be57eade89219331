// Compiles the AssemblyScript kernel to wasm/build/kernel.wasm. Runs from `npm install` (prepare).
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import asc from "assemblyscript/asc";

const here = dirname(fileURLToPath(import.meta.url));
mkdirSync(join(here, "build"), { recursive: true });

const { error, stderr } = await asc.main([
  join(here, "assembly", "kernel.ts"),
  "--outFile", join(here, "build", "kernel.wasm"),
  "--textFile", join(here, "build", "kernel.wat"),
  "--optimizeLevel", "3",
  "--shrinkLevel", "0",
  "--runtime", "stub",
  "--noAssert",
  "--initialMemory", "1",
]);
if (error) {
  console.error(stderr.toString());
  console.error(`wasm kernel build failed: ${error.message}`);
  process.exit(1);
}
console.log("wasm kernel built: wasm/build/kernel.wasm");
