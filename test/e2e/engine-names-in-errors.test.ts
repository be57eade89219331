// What a client reads when its engine fails: the engine is named by its name (name=), never by its address.
// Real `kvroute sim` processes, msgpack and HTTP, behind a real `kvroute serve`; the engine serving a long
// stream is killed after its first token, so the failure reaches the client inside the stream.
import { afterEach, describe, expect, it } from "vitest";
import { startHttpSimProcess, startSimProcess, type RunningEngine } from "./engines.js";
import { startRouterProcess, until, type RunningRouter } from "./router-process.js";

const MODEL = "Qwen/Qwen3-0.6B";

let engines: RunningEngine[] = [];
let router: RunningRouter | null = null;

afterEach(async () => {
  await router?.stop();
  router = null;
  await Promise.all(engines.map((e) => e.stop("SIGKILL")));
  engines = [];
});

describe.each([
  { kind: "msgpack", start: () => startSimProcess(), said: /^engine gpu-[ab] disconnected \(.+\) after \d+ output tokens?$/ },
  { kind: "HTTP", start: () => startHttpSimProcess(["--speedup", "0.5", "--kv-events", "none", "--replay", "none"]), said: /^engine gpu-[ab]('s stream broke: .+| disconnected .*)$/ },
])("a $kind engine that dies mid-stream", ({ kind, start, said }) => {
  it("is named in the client's error by its name, with no address in it", async () => {
    engines = await Promise.all([start(), start()]);
    const names = ["gpu-a", "gpu-b"];
    router = await startRouterProcess([...engines.flatMap((e, i) => ["--engine", `${e.url},name=${names[i]}`]), "--workers", "1"]);
    const base = router.url;
    await until("both engines up", async () => {
      const health = (await (await fetch(`${base}/health`)).json()) as { engines: { state: string }[] };
      return health.engines.every((e) => e.state === "up") ? true : undefined;
    });
    const res = await fetch(`${base}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, prompt: "Tell me a long story.", max_tokens: 20_000, stream: true }),
    });
    const victim = names.indexOf(res.headers.get("x-kvroute-engine")!);
    expect(victim).toBeGreaterThanOrEqual(0);
    const reader = res.body!.getReader();
    await reader.read();
    engines[victim]!.child.kill("SIGKILL");
    let text = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const line = text.split("\n\n").find((event) => event.startsWith('data: {"error"'));
    expect(line, text.slice(-500)).toBeDefined();
    const message = (JSON.parse(line!.slice(6)) as { error: { message: string } }).error.message;
    expect(message).toMatch(said);
    expect(message).toContain(names[victim]);
    expect(message).not.toContain("127.0.0.1");
    expect(message).not.toContain(String(engines[victim]!.port));
    expect(message).not.toMatch(/(tcp|http):\/\//);
    console.log(`${kind} engine killed mid-stream; the client reads: ${message}`);
  }, 60_000);
});
