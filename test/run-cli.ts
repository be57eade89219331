// Runs the built `kvroute` command line as a child process, for the commands' tests.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { distFile } from "../src/util/package-root.js";

const run = promisify(execFile);

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Asynchronous, so a server the test runs in its own process keeps answering; bounded at 60 s. */
export async function kvroute(args: string[]): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [distFile("src/cli/main.js"), ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}
