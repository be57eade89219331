#!/usr/bin/env node
// kvroute command line: `kvroute <command> [options]`.

const USAGE = `usage: kvroute <command> [options]

commands:
  serve       run the router (OpenAI-compatible HTTP API)
  replay      replay a recorded trace against an OpenAI-compatible endpoint
  simulate    compare routing policies on a trace, with simulated engines on virtual time
  sim         run a simulated vLLM engine (engine protocol + vLLM KV events)
  kv-events   subscribe to an engine's vLLM KV events and print what arrives

Run \`kvroute <command> --help\` for a command's options.`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "serve":
      return (await import("./serve.js")).runServe(rest);
    case "replay":
      // Loaded on demand: the HTTP client and histograms are not needed by the other commands.
      return (await import("./replay.js")).replayCommand(rest);
    case "simulate":
      return (await import("./simulate.js")).simulateCommand(rest);
    case "sim":
      return (await import("./sim.js")).runSim(rest);
    case "kv-events":
      return (await import("./kv-events.js")).kvEventsCommand(rest);
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
