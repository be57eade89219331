// Router replicas sharing load and approximate-mode predictions through NATS, every part a real process on
// 127.0.0.1: Debian's nats-server, two `kvroute sim` engines that publish no KV events (so they are routed in
// approximate mode), and two `kvroute serve --nats` replicas, A and B, in front of both (a third, C, joins late in
// one test).
import { connect, type NatsConnection } from "nats";
import { Packr } from "msgpackr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimProcess, type RunningEngine } from "./engines.js";
import { natsMissing, startNats, type RunningNats } from "./nats.js";
import { metric, postJson, startRouterProcess, tokenPrompt, until, type RunningRouter } from "./router-process.js";

const MODEL = "Qwen/Qwen3-0.6B";
const EXPIRY_S = 1.5;

const missing = natsMissing();
if (missing) console.warn(`skipping the tests of router replicas sharing load through NATS: ${missing}`);

interface Route {
  engine: string;
  engines: { engine: string; overlap_blocks: number; active_blocks: number; peer_blocks: number }[];
}
interface Health {
  status: string;
  reason?: string;
  replication: { replica: string; connected: boolean; reason: string | null; peers: { replica: string; engines: { engine: string; state: string }[] }[] };
}

const route = async (base: string, p: number[]) => (await postJson(`${base}/v1/route`, { model: MODEL, prompt: p })).json as Route;
const health = async (base: string) => (await (await fetch(`${base}/health`)).json()) as Health;
const metrics = async (base: string) => (await fetch(`${base}/metrics`)).text();
const on = (r: Route, engine: string) => r.engines.find((e) => e.engine === engine)!;

/** A long streaming completion, held open until aborted (or until its engine or router goes). */
function stream(base: string, p: number[], maxTokens: number): { abort(): Promise<void> } {
  const ac = new AbortController();
  const done = fetch(`${base}/v1/completions`, {
    method: "POST",
    signal: ac.signal,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, prompt: p, max_tokens: maxTokens, ignore_eos: true, stream: true }),
  })
    .then((res) => res.text())
    .catch(() => undefined);
  return {
    abort: async () => {
      ac.abort();
      await done;
    },
  };
}

/** The engine A has booked blocks on, and how many, once it has. */
async function bookedOnA(a: string): Promise<{ engine: string; blocks: number }> {
  return until("A's own booking", async () => {
    const busy = (await route(a, tokenPrompt(16, 999))).engines.find((e) => e.active_blocks > 0 && e.peer_blocks === 0);
    return busy ? { engine: busy.engine, blocks: busy.active_blocks } : undefined;
  });
}

describe.skipIf(missing !== null)("router replicas through NATS", () => {
  let nats: RunningNats;
  let engines: RunningEngine[] = [];
  let a: RunningRouter;
  let b: RunningRouter;

  beforeAll(async () => {
    nats = await startNats();
    // A decode step of about 20 ms: a long request stays in flight for seconds.
    engines = await Promise.all([0, 1].map(() => startSimProcess(["--speedup", "0.1", "--kv-events", "none"])));
    // kv-blocks: the cost counts blocks, so booked load and held prefixes decide whatever the time model learned.
    const args = [...engines.flatMap((e, i) => ["--engine", `${e.url},name=e${i}`]), "--nats", nats.url, "--replica-expiry", String(EXPIRY_S), "--policy", "kv-blocks", "--workers", "1"];
    [a, b] = await Promise.all([startRouterProcess(args), startRouterProcess(args)]);
    for (const r of [a, b]) {
      await until("both engines up and the other replica heard from", async () => {
        const h = await health(r.url);
        return h.status === "ok" && h.replication.peers.length === 1 && h.replication.peers[0]!.engines.every((e) => e.state === "up") ? true : undefined;
      }, 30_000);
    }
  }, 90_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all(engines.map((e) => e.stop("SIGKILL")));
    await nats?.stop();
  });

  it("shows load booked on A in B's /v1/route active_blocks, and B routes around it", async () => {
    const s = stream(a.url, tokenPrompt(1024, 1), 400);
    const { engine } = await bookedOnA(a.url);
    // B's view of the engine is A's own bookings: the same figure, read from A before and after B.
    const seen = await until("B's view equal to A's bookings", async () => {
      const before = on(await route(a.url, tokenPrompt(16, 999)), engine).active_blocks;
      const viaB = on(await route(b.url, tokenPrompt(16, 999)), engine);
      const after = on(await route(a.url, tokenPrompt(16, 999)), engine).active_blocks;
      return before === after && viaB.peer_blocks === before ? viaB : undefined;
    });
    expect(seen.active_blocks).toBe(seen.peer_blocks); // B booked nothing itself
    expect(seen.peer_blocks).toBeGreaterThanOrEqual(1024 / 16);
    const other = (await route(b.url, tokenPrompt(64, 2))).engine;
    expect(other).not.toBe(engine);
    const text = await metrics(b.url);
    expect(metric(text, "kvroute_engine_peer_blocks", { engine, phase: "prefill" }) + metric(text, "kvroute_engine_peer_blocks", { engine, phase: "decode" })).toBeGreaterThan(0);
    // Released on A: gone from B too.
    await s.abort();
    await until("A's load released on B", async () => ((await route(b.url, tokenPrompt(16, 999))).engines.every((e) => e.peer_blocks === 0) ? true : undefined));
  }, 30_000);

  it("routes B's requests by the predictions A made for engines without KV events", async () => {
    const p = tokenPrompt(2048, 3);
    const first = await postJson(`${a.url}/v1/completions`, { model: MODEL, prompt: p, max_tokens: 1 });
    expect(first.status).toBe(200);
    const engine = first.headers.get("x-kvroute-engine")!;
    // B never saw this prompt: it knows where it went from A's prediction. The prediction and the release of
    // A's booking travel in separate messages; until the release arrives, A's 128 prefill blocks still weigh
    // on the engine as peer load and tie its cost with the other engine's.
    await until("A's prediction on B, A's booking released", async () => {
      const seen = on(await route(b.url, p), engine);
      return seen.overlap_blocks === 128 && seen.peer_blocks === 0 ? true : undefined;
    });
    expect((await route(b.url, p)).engine).toBe(engine);
    const second = await postJson(`${b.url}/v1/completions`, { model: MODEL, prompt: p, max_tokens: 1 });
    expect(second.headers.get("x-kvroute-engine")).toBe(engine);
    // The engine's own count: the prefix really was there.
    expect(second.headers.get("x-kvroute-cached-tokens-source")).toBe("engine");
    expect(second.json.usage.prompt_tokens_details.cached_tokens).toBe(2048 - 16);
    const text = await metrics(b.url);
    expect(metric(text, "kvroute_replica_predictions_total", { result: "applied" })).toBeGreaterThanOrEqual(1);
    expect(metric(text, "kvroute_approx_predictions_total")).toBeGreaterThanOrEqual(2);
  }, 30_000);

  it("drops and counts garbage, other versions and absurd numbers on the subject, and applies none of them", async () => {
    const nc: NatsConnection = await connect({ servers: nats.url });
    const packr = new Packr({ useRecords: false });
    const entry = { engine: "e0", prefill_blocks: 5e12, prefill_tokens: 0, decode_blocks: 0, decode_requests: 0, requests: 1 };
    const before = await metrics(b.url);
    nc.publish("kvroute.replicas", new Uint8Array([0xc1, 0xff, 0x00]));
    nc.publish("kvroute.replicas", packr.pack({ v: 9, kind: "state", replica: "x", seq: 0, engines: [], health: [] }));
    nc.publish("kvroute.replicas", packr.pack({ v: 1, kind: "state", replica: "x", seq: 1, engines: [entry], health: [] }));
    nc.publish("kvroute.replicas", packr.pack({ v: 1, kind: "state", replica: "x", seq: 2, engines: [{ ...entry, prefill_blocks: 10, requests: "one" }], health: [] }));
    await nc.flush();
    await nc.close();
    const dropped = (text: string, reason: string) => metric(text, "kvroute_replica_messages_dropped_total", { reason });
    for (const reason of ["undecodable", "version", "out_of_range", "malformed"]) {
      await until(`a message dropped as ${reason}`, async () => (dropped(await metrics(b.url), reason) > dropped(before, reason) ? true : undefined));
    }
    expect((await route(b.url, tokenPrompt(16, 999))).engines.every((e) => e.peer_blocks === 0)).toBe(true);
    expect((await health(b.url)).replication.peers.map((p) => p.replica)).toEqual([(await health(a.url)).replication.replica]);
  }, 30_000);

  it("routes alone while NATS is down (degraded, with the reason), and shares again once it is back", async () => {
    await nats.kill();
    for (const r of [a, b]) {
      const h = await until("degraded", async () => {
        const h = await health(r.url);
        return h.status === "degraded" ? h : undefined;
      });
      expect(h.reason).toMatch(/NATS/);
      expect(h.replication).toMatchObject({ connected: false, peers: [] });
      const text = await metrics(r.url);
      expect(metric(text, "kvroute_nats_connected")).toBe(0);
      expect(metric(text, "kvroute_nats_disconnects_total")).toBeGreaterThanOrEqual(1);
      // The log line travels through the router's stdout pipe, apart from the /health answer: it may lag.
      await until("the outage logged", async () => (r.logs.some((l) => l.msg === "NATS unreachable: routing alone (other replicas' load is not counted) until it is back") ? true : undefined), 5_000);
      expect((await postJson(`${r.url}/v1/completions`, { model: MODEL, prompt: tokenPrompt(64, 5), max_tokens: 1 })).status).toBe(200);
    }
    // A's load is A's alone now.
    const s = stream(a.url, tokenPrompt(1024, 6), 400);
    const { engine } = await bookedOnA(a.url);
    expect(on(await route(b.url, tokenPrompt(16, 999)), engine).peer_blocks).toBe(0);
    await nats.start();
    for (const r of [a, b]) {
      await until("reconnected", async () => {
        const h = await health(r.url);
        return h.status === "ok" && h.replication.peers.length === 1 ? true : undefined;
      }, 15_000);
    }
    // The state A sends on reconnecting carries the load it booked while cut off.
    await until("A's load on B again", async () => (on(await route(b.url, tokenPrompt(16, 999)), engine).peer_blocks > 0 ? true : undefined));
    await s.abort();
  }, 45_000);

  it("lets a replica that joins late learn the others' bookings by asking for them", async () => {
    const s = stream(b.url, tokenPrompt(1024, 8), 400);
    const busy = await until("B's own booking", async () => (await route(b.url, tokenPrompt(16, 999))).engines.find((e) => e.active_blocks > 0 && e.peer_blocks === 0));
    const hellosBefore = metric(await metrics(b.url), "kvroute_replica_messages_total", { direction: "in", kind: "hello" });
    const c = await startRouterProcess([...engines.flatMap((e, i) => ["--engine", `${e.url},name=e${i}`]), "--nats", nats.url, "--replica-expiry", String(EXPIRY_S), "--policy", "kv-blocks", "--workers", "1"]);
    try {
      // C booked nothing: what it sees on the engine is its peers' bookings, B's stream among them.
      const seen = await until("B's load on C", async () => {
        const e = on(await route(c.url, tokenPrompt(16, 999)), busy.engine);
        return e.peer_blocks > 0 ? e : undefined;
      });
      expect(seen.active_blocks).toBe(seen.peer_blocks);
      expect(seen.peer_blocks).toBeGreaterThanOrEqual(1024 / 16);
      expect(metric(await metrics(b.url), "kvroute_replica_messages_total", { direction: "in", kind: "hello" })).toBeGreaterThan(hellosBefore);
      expect((await health(c.url)).replication.peers.map((p) => p.replica)).toContain((await health(b.url)).replication.replica);
    } finally {
      await c.stop();
      await s.abort();
    }
  }, 45_000);

  it("drops a killed replica's load within the expiry", async () => {
    stream(a.url, tokenPrompt(1024, 7), 400);
    const { engine } = await bookedOnA(a.url);
    await until("A's load on B", async () => (on(await route(b.url, tokenPrompt(16, 999)), engine).peer_blocks > 0 ? true : undefined));
    const killedAt = Date.now();
    a.child.kill("SIGKILL"); // no goodbye: only the expiry can drop its load
    await until("A's load drained from B", async () => (on(await route(b.url, tokenPrompt(16, 999)), engine).peer_blocks === 0 ? true : undefined), 10_000);
    const drained = Date.now() - killedAt;
    // The bound: the expiry after A's last message, checked four times a second (plus slack for a loaded machine).
    expect(drained).toBeLessThan(EXPIRY_S * 1000 + 250 + 1000);
    await until("the expiry logged", async () => (b.logs.some((l) => l.msg === "replica silent for the expiry: its bookings are dropped") ? true : undefined), 5_000);
    expect((await health(b.url)).replication.peers).toEqual([]);
  }, 30_000);
});
