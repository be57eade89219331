import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { XPublisher } from "zeromq";
import { distFile, packageRoot } from "../../src/util/package-root.js";

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

it("kvroute kv-events says what is missing", async () => {
  const child = spawn(process.execPath, [distFile("src/cli/main.js"), "kv-events", "--model", "m"]);
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  expect(await new Promise((resolve) => child.once("exit", resolve))).toBe(2);
  expect(err).toContain("--endpoint and --model are required");
});
