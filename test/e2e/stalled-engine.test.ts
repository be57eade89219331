// An engine that stops without dying (SIGSTOP), and then goes on (SIGCONT): real `kvroute sim` processes,
// msgpack and HTTP, behind a real `kvroute serve`. While it is stopped its streams make no progress; the
// router stops sending it new requests well before its connection times out (the engine protocol's
// heartbeat, HTTP engines' health poll: 5 s), says so in /health and /metrics, and takes it back once it
// moves again.
import { afterEach, describe, expect, it } from "vitest";
import { startHttpSimProcess, startSimProcess, type RunningEngine } from "./engines.js";
import { metric, postJson, startRouterProcess, until, type RunningRouter } from "./router-process.js";

const MODEL = "Qwen/Qwen3-0.6B";
/**
 * The router's default is 2.5 s; a shorter one here leaves the test room, on a loaded machine, to check
 * everything and resume the engine before the 5 s after which its connection would be given up on.
 */
const STALL_TIMEOUT_S = 1;
const CONNECTION_TIMEOUT_MS = 5000;

let engines: RunningEngine[] = [];
let router: RunningRouter | null = null;

afterEach(async () => {
  for (const e of engines) e.child.kill("SIGCONT");
  await router?.stop();
  router = null;
  await Promise.all(engines.map((e) => e.stop("SIGKILL")));
  engines = [];
});

interface Health {
  engines: { engine: string; state: string; reason?: string }[];
}

const stateOf = async (base: string, engine: string) => ((await (await fetch(`${base}/health`)).json()) as Health).engines.find((e) => e.engine === engine)!;
const routable = async (base: string) => ((await postJson(`${base}/v1/route`, { model: MODEL, prompt: "which engines?" })).json as { engines: { engine: string }[] }).engines.map((e) => e.engine);

describe.each([
  { kind: "msgpack", start: () => startSimProcess() },
  { kind: "HTTP", start: () => startHttpSimProcess(["--speedup", "0.5", "--kv-events", "none", "--replay", "none"]) },
])("a stopped $kind engine", ({ start }) => {
  it("gets no new requests while its streams make no progress, and comes back when they move again", async () => {
    engines = await Promise.all([start(), start()]);
    router = await startRouterProcess([...engines.flatMap((e, i) => ["--engine", `${e.url},name=e${i}`]), "--workers", "1", "--stall-timeout", String(STALL_TIMEOUT_S)]);
    const base = router.url;
    await until("both engines up", async () => ((await Promise.all(["e0", "e1"].map((e) => stateOf(base, e)))).every((e) => e.state === "up") ? true : undefined));

    // A long stream on one engine: thousands of tokens, a few milliseconds each.
    const controller = new AbortController();
    const res = await fetch(`${base}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, prompt: "Tell me a long story.", max_tokens: 20_000, stream: true }),
      signal: controller.signal,
    });
    const victim = res.headers.get("x-kvroute-engine")!;
    const other = victim === "e0" ? "e1" : "e0";
    const reader = res.body!.getReader();
    await reader.read();

    const stoppedAt = performance.now();
    engines[Number(victim.slice(1))]!.child.kill("SIGSTOP");
    const stalled = await until("the engine reported stalled", async () => {
      const s = await stateOf(base, victim);
      return s.state === "stalled" ? s : undefined;
    }, CONNECTION_TIMEOUT_MS);
    const detectedMs = performance.now() - stoppedAt;
    expect(stalled.reason).toMatch(/^no progress for \d+\.\d s on 1 of its 1 requests in flight$/);
    expect(metric(await (await fetch(`${base}/metrics`)).text(), "kvroute_engine_stalled", { engine: victim })).toBe(1);
    expect(await routable(base)).toEqual([other]);
    const meanwhile = await Promise.all(Array.from({ length: 4 }, (_, i) => postJson(`${base}/v1/completions`, { model: MODEL, prompt: `small ${i}`, max_tokens: 2 })));
    expect(meanwhile.map((r) => [r.status, r.headers.get("x-kvroute-engine")])).toEqual(Array.from({ length: 4 }, () => [200, other]));
    const checkedMs = performance.now() - stoppedAt;
    // All of the above happened before the connection would have timed out: the stall, not the timeout, kept requests away.
    expect(checkedMs).toBeLessThan(CONNECTION_TIMEOUT_MS);
    expect((await stateOf(base, victim)).state).toBe("stalled");

    engines[Number(victim.slice(1))]!.child.kill("SIGCONT");
    await until("the engine back", async () => ((await stateOf(base, victim)).state === "up" ? true : undefined));
    expect(metric(await (await fetch(`${base}/metrics`)).text(), "kvroute_engine_stalled", { engine: victim })).toBe(0);
    expect((await routable(base)).sort()).toEqual(["e0", "e1"]);
    // Its stream goes on where it was.
    const more = await reader.read();
    expect(more.done).toBe(false);
    expect(new TextDecoder().decode(more.value)).toMatch(/^data: \{"id"/);
    controller.abort();
    console.log(`stalled engine: reported ${detectedMs.toFixed(0)} ms after SIGSTOP (stall timeout ${STALL_TIMEOUT_S} s); checks done ${checkedMs.toFixed(0)} ms after it`);
  }, 60_000);
});
