#!/usr/bin/env node
// kvroute command line: `kvroute <command> [options]`.
import { kvEventsCommand } from "../kv-events/cli.js";

const USAGE = `usage: kvroute <command> [options]

commands:
  serve       run the router (OpenAI-compatible HTTP API)
  kv-events   subscribe to an engine's vLLM KV events and print what arrives

Run \`kvroute <command> --help\` for a command's options.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "serve":
      void rest;
      console.error("kvroute serve: no engines configured, and the HTTP frontend is not built yet; nothing to serve.");
      return 0;
    case "kv-events":
      return kvEventsCommand(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return 0;
    default:
      console.error(`kvroute: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

process.exitCode = await main(process.argv.slice(2));
