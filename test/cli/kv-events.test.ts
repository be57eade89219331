// `kvroute kv-events` against real publishers: a ZMQ socket in the test sending a golden payload, and a
// `kvroute sim` process whose cache held a prompt before the command subscribed.
import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { expect, it } from "vitest";
import { XPublisher } from "zeromq";
import { EngineClient } from "../../src/index.js";
import { distFile, packageRoot } from "../../src/util/package-root.js";

const run = promisify(execFile);

it("kvroute kv-events prints what an engine's publisher sends", async () => {
  const pub = new XPublisher({ linger: 0 });
  await pub.bind("tcp://127.0.0.1:*");
  try {
    const child = spawn(process.execPath, [distFile("src/cli/main.js"), "kv-events", "--endpoint", pub.lastEndpoint!, "--model", "Qwen/Qwen3-0.6B", "--interval", "0.4", "--reports", "3"]);
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    await pub.receive(); // the command's subscription
    const seq = Buffer.alloc(8);
    await pub.send([Buffer.alloc(0), seq, readFileSync(join(packageRoot(), "test", "fixtures", "vllm-kv-events", "batch-v3.msgpack"))]);
    expect(await exited).toBe(0);
    expect(err).toBe("");
    const last = out.trim().split("\n").at(-1)!;
    expect(last).toContain("ranks connected@0");
    expect(last).toContain("batches 1  stored 2/4 blocks  removed 1/1 blocks  cleared 1  entries 0");
  } finally {
    pub.close();
  }
}, 30_000);

it("reports the blocks an engine cached before it started (learnt by replay) and since", async () => {
  const sim = spawn(process.execPath, [distFile("src/cli/main.js"), "sim", "--port", "0", "--speedup", "0", "--kv-events", "tcp://127.0.0.1:*"], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const line = await new Promise<string>((resolve) => createInterface({ input: sim.stdout! }).once("line", resolve));
    const { url, kv_events: kvEvents, replay, model } = JSON.parse(line) as { url: string; kv_events: string; replay: string; model: string };
    const client = new EngineClient(url);
    await client.connect();
    const send = async (first: number) => {
      for await (const event of client.generate({ promptTokenIds: Array.from({ length: 64 }, (_, i) => first + i), sampling: { maxTokens: 1 } })) void event;
    };
    await send(1); // cached before the subscriber starts: only the replay can tell it
    const watcher = spawn(
      process.execPath,
      [distFile("src/cli/main.js"), "kv-events", "--endpoint", kvEvents, "--replay", replay, "--model", model, "--interval", "0.5", "--reports", "40"],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const lines = createInterface({ input: watcher.stdout! });
    let sent = false;
    let last = "";
    for await (const line of lines) {
      last = line;
      // Once subscribed, a live batch (sequence 1) makes the fresh stream replay batch 0 before it.
      if (!sent && line.includes("ranks connected")) {
        sent = true;
        await send(1001);
      }
      if (/stored 2\/8 blocks/.test(line)) break;
    }
    watcher.kill();
    await client.close();
    // Two 64-token prompts: 4 full blocks each (one output token does not fill a fifth).
    expect(last).toMatch(/ranks connected@1/);
    expect(last).toMatch(/stored 2\/8 blocks/);
    expect(last).toMatch(/entries 8/);
    expect(last).toMatch(/replays 1\/1/);
  } finally {
    sim.kill();
  }
}, 60_000);

it("names a missing or bad option and exits 2", async () => {
  await expect(run(process.execPath, [distFile("src/cli/main.js"), "kv-events", "--model", "m"])).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/--endpoint and --model are required/) });
  await expect(run(process.execPath, [distFile("src/cli/main.js"), "kv-events", "--endpoint", "tcp://127.0.0.1:1", "--model", "m", "--interval", "x"])).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/--interval must be a number/) });
});
