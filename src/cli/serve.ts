// `kvroute serve`: the router, with simulated engines when none are given.
import { pino } from "pino";
import { startRouter, type RouterOptions, type RunningRouter } from "../router/serve.js";
import { parseServeArgs, SERVE_USAGE, type ServeOptions } from "./serve-options.js";

export async function runServe(argv: string[]): Promise<number> {
  let options: ServeOptions | "help";
  try {
    options = parseServeArgs(argv);
  } catch (err) {
    console.error(`kvroute serve: ${(err as Error).message}\n\n${SERVE_USAGE}`);
    return 2;
  }
  if (options === "help") {
    console.log(SERVE_USAGE);
    return 0;
  }
  const log = pino({ level: options.logLevel, base: undefined });
  let running: RunningRouter;
  try {
    running = await startRouter(options, log);
  } catch (err) {
    log.fatal((err as Error).message);
    return 1;
  }
  printWelcome(running, options);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, "shutting down");
      resolve();
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
  await running.close();
  return 0;
}

/** The first thing a new user needs, in plain text rather than a JSON log line. */
function printWelcome(running: RunningRouter, options: RouterOptions): void {
  const { url, modelName: model } = running;
  const auth = options.apiKey ? ` -H 'Authorization: Bearer ${options.apiKey.slice(0, 2)}…'` : "";
  process.stderr.write(
    `\nkvroute is serving ${model ?? "(waiting for engines)"} at ${url}\n` +
      `try:\n  curl -s ${url}/v1/chat/completions -H 'Content-Type: application/json'${auth} \\\n` +
      `    -d '{"model": "${model ?? "MODEL"}", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 32}'\n\n`,
  );
}
