import { describe, expect, it } from "vitest";
import { parseServeArgs } from "../../src/cli/serve-options.js";
import { checkRoles, parseEngineSpec } from "../../src/router/dispatch/engine-spec.js";

describe("kvroute serve options", () => {
  it("has the defaults the README describes", () => {
    expect(parseServeArgs([], {})).toMatchObject({
      engines: [],
      sim: 4,
      simSpeedup: 1,
      host: "127.0.0.1",
      port: 8000,
      policy: "kv",
      overlapWeight: 1,
      evictionWeight: 2,
      prefillGate: true,
      temperature: 0,
      cachedTokensFallback: "router",
      maxBodyBytes: 16 * 1024 * 1024,
      bodyLaneBytes: 1024 * 1024,
      inlineMaxTokens: 8192,
      tokenizeCacheMb: 32,
      specialTokensInContent: "parse",
      apiKey: undefined,
      simHttp: false,
      engineMetricsIntervalMs: 1000,
      stallTimeoutMs: 2500,
      blockSize: null,
    });
  });

  it("reads the tokenization cache size, 0 turning it off", () => {
    expect(parseServeArgs(["--tokenize-cache-mb", "0"], {})).toMatchObject({ tokenizeCacheMb: 0 });
    expect(parseServeArgs(["--tokenize-cache-mb", "256"], {})).toMatchObject({ tokenizeCacheMb: 256 });
  });

  it("reads the eviction weight, 0 routing by time alone", () => {
    expect(parseServeArgs(["--eviction-weight", "0"], {})).toMatchObject({ evictionWeight: 0 });
    expect(parseServeArgs(["--eviction-weight=2.5"], {})).toMatchObject({ evictionWeight: 2.5 });
    expect(() => parseServeArgs(["--eviction-weight", "-1"], {})).toThrow(/--eviction-weight/);
  });

  it("reads the prefill gate, on or off", () => {
    expect(parseServeArgs(["--prefill-gate", "off"], {})).toMatchObject({ prefillGate: false });
    expect(parseServeArgs(["--prefill-gate=on"], {})).toMatchObject({ prefillGate: true });
    expect(() => parseServeArgs(["--prefill-gate", "yes"], {})).toThrow(/--prefill-gate must be on or off, got "yes"/);
  });

  it("takes engines back from long prompts unless told not to", () => {
    expect(parseServeArgs([], {})).toMatchObject({ takeBack: true });
    expect(parseServeArgs(["--take-back", "off"], {})).toMatchObject({ takeBack: false });
    expect(() => parseServeArgs(["--take-back", "maybe"], {})).toThrow(/--take-back must be on or off, got "maybe"/);
  });

  it("reads the body lane's threshold, 0 turning the lane off", () => {
    expect(parseServeArgs(["--body-lane-bytes", "0"], {})).toMatchObject({ bodyLaneBytes: 0 });
    expect(parseServeArgs(["--body-lane-bytes", "65536"], {})).toMatchObject({ bodyLaneBytes: 65536 });
    expect(() => parseServeArgs(["--body-lane-bytes", "-5"], {})).toThrow(/--body-lane-bytes/);
  });

  it("reads the stall timeout, 0 turning the watch off", () => {
    expect(parseServeArgs(["--stall-timeout", "0"], {})).toMatchObject({ stallTimeoutMs: 0 });
    expect(parseServeArgs(["--stall-timeout", "1.5"], {})).toMatchObject({ stallTimeoutMs: 1500 });
    expect(() => parseServeArgs(["--stall-timeout=-1"], {})).toThrow(/--stall-timeout must be a number of at least 0/);
  });

  it("reads how special-token text in chat messages is tokenized", () => {
    expect(parseServeArgs(["--special-tokens-in-content", "plain"], {})).toMatchObject({ specialTokensInContent: "plain" });
    expect(parseServeArgs(["--special-tokens-in-content", "parse"], {})).toMatchObject({ specialTokensInContent: "parse" });
  });

  it("reads engines, simulated-engine settings and the API key from the environment", () => {
    const o = parseServeArgs(["--engine", "tcp://10.0.0.5:9000,kv=tcp://10.0.0.5:5557,name=a", "--engine", "tcp://h:1", "--sim-blocks", "20000", "--sim-max-model-len", "131072"], { KVROUTE_API_KEY: "k" });
    if (o === "help") throw new Error("unexpected help");
    expect(o.engines).toEqual([
      { url: "tcp://10.0.0.5:9000", kind: "msgpack", name: "a", kvEndpoint: "tcp://10.0.0.5:5557", noKvEvents: false, replayEndpoint: null, role: "both" },
      { url: "tcp://h:1", kind: "msgpack", name: "h:1", kvEndpoint: null, noKvEvents: false, replayEndpoint: null, role: "both" },
    ]);
    expect(o).toMatchObject({ simBlocks: 20000, simMaxModelLen: 131072, apiKey: "k" });
  });

  const bad: [string[], RegExp][] = [
    [["--port", "70000"], /--port must be an integer of at least 0 and at most 65535, got "70000"/],
    [["--policy", "fastest"], /--policy must be one of kv, kv-blocks, round-robin, random, least-loaded/],
    [["--cached-tokens-fallback", "maybe"], /--cached-tokens-fallback must be router or none/],
    [["--workers", "1.5"], /--workers must be an integer/],
    [["--tokenize-cache-mb=-1"], /--tokenize-cache-mb must be a number of at least 0/],
    [["--temperature=-1"], /--temperature must be a number of at least 0/],
    [["--engine", "ftp://h:1"], /expected tcp:\/\/HOST:PORT .* or http:\/\/HOST:PORT/],
    [["--engine", "http://h"], /expected tcp:\/\/HOST:PORT/],
    [["--engine", "http://h:1,replay=tcp://h:2"], /replay= needs kv= as well/],
    [["--engine-metrics-interval=-1"], /--engine-metrics-interval must be a number of at least 0/],
    [["--engine", "tcp://h:1,colour=red"], /unknown option "colour"/],
    [["--engine", "tcp://h:1,kv=h:2"], /kv= must be tcp:\/\/HOST:PORT or none/],
    [["--engine", "tcp://h:1,kv=none,replay=tcp://h:3"], /kv=none follows no KV events; it cannot go with a kv= endpoint or replay=/],
    [["--engine", "tcp://h:1,role=leader"], /role= must be prefill, decode or both, got "leader"/],
    [["--sim-prefill", "2"], /--sim-prefill and --sim-decode go together/],
    [["--sim-prefill", "1", "--sim-decode", "1", "--sim", "3"], /leave out --sim and --sim-engine-speeds/],
    [["--disagg-min-prefill-tokens=-5"], /--disagg-min-prefill-tokens must be an integer of at least 0/],
    [["--approx-ttl=-1"], /--approx-ttl must be a number of at least 0/],
    [["--nats", "http://h:4222"], /--nats must be nats:\/\/HOST:PORT/],
    [["--nats", "nats://h:4222,nats://h"], /--nats must be nats:\/\/HOST:PORT .*got "nats:\/\/h"/],
    [["--nats-subject", "kvroute.>"], /--nats-subject must be dot-separated tokens/],
    [["--replica-expiry", "0"], /--replica-expiry must be a number of at least 0.1/],
    [["--nope"], /Unknown option '--nope'/],
    [["--special-tokens-in-content", "escape"], /--special-tokens-in-content must be parse or plain, got "escape"/],
  ];
  for (const [args, message] of bad) {
    it(`refuses ${args.join(" ")}`, () => {
      expect(() => parseServeArgs(args, {})).toThrow(message);
    });
  }

  it("reads HTTP engines (vLLM, SGLang) beside msgpack ones, and the simulated engines' API", () => {
    const o = parseServeArgs(["--engine", "http://10.0.0.6:8000,kv=tcp://10.0.0.6:5557,replay=tcp://10.0.0.6:5558", "--engine", "https://[::1]:8443/", "--engine-metrics-interval", "0.5", "--sim-http"], {});
    if (o === "help") throw new Error("unexpected help");
    expect(o.engines).toEqual([
      { url: "http://10.0.0.6:8000", kind: "http", name: "10.0.0.6:8000", kvEndpoint: "tcp://10.0.0.6:5557", noKvEvents: false, replayEndpoint: "tcp://10.0.0.6:5558", role: "both" },
      { url: "https://[::1]:8443", kind: "http", name: "[::1]:8443", kvEndpoint: null, noKvEvents: false, replayEndpoint: null, role: "both" },
    ]);
    expect(o).toMatchObject({ engineMetricsIntervalMs: 500, simHttp: true });
  });

  it("reads kv=none and the approximate-mode TTL, 0 turning the mode off", () => {
    expect(parseEngineSpec("tcp://h:1,kv=none")).toMatchObject({ kvEndpoint: null, noKvEvents: true });
    expect(parseServeArgs([], {})).toMatchObject({ approxTtlMs: 120_000 });
    expect(parseServeArgs(["--approx-ttl", "0"], {})).toMatchObject({ approxTtlMs: 0 });
    expect(parseServeArgs(["--approx-ttl", "2.5"], {})).toMatchObject({ approxTtlMs: 2500 });
  });

  it("reads the replica options: NATS servers, subject and expiry", () => {
    expect(parseServeArgs([], {})).toMatchObject({ nats: null, natsSubject: "kvroute.replicas", replicaExpiryMs: 3000 });
    expect(parseServeArgs(["--nats", "nats://10.0.0.9:4222,nats://[::1]:4223", "--nats-subject", "fleet-a.replicas", "--replica-expiry", "1.5"], {})).toMatchObject({
      nats: "nats://10.0.0.9:4222,nats://[::1]:4223",
      natsSubject: "fleet-a.replicas",
      replicaExpiryMs: 1500,
    });
  });

  it("parses engine specs on their own", () => {
    expect(parseEngineSpec("tcp://[::1]:9000").name).toBe("[::1]:9000");
    expect(() => parseEngineSpec("tcp://h:0")).toThrow(/expected tcp/);
  });

  it("reads engine roles, simulated prefill and decode pools, and the disaggregation settings", () => {
    const o = parseServeArgs(["--engine", "http://p:8000,kv=tcp://p:5557,role=prefill", "--engine", "tcp://d:9000,role=decode,name=d", "--disagg-min-prefill-tokens", "512"], {});
    if (o === "help") throw new Error("unexpected help");
    expect(o.engines.map((e) => [e.name, e.role])).toEqual([["p:8000", "prefill"], ["d", "decode"]]);
    expect(o).toMatchObject({ disaggMinPrefillTokens: 512, simPrefill: 0, simDecode: 0, simNoCachedTokens: false });
    expect(parseServeArgs(["--sim-prefill", "2", "--sim-decode", "3", "--sim-no-cached-tokens"], {})).toMatchObject({ simPrefill: 2, simDecode: 3, simNoCachedTokens: true });
  });

  it("refuses a fleet whose roles cannot serve a request", () => {
    const specs = (...roles: string[]) => roles.map((role, i) => parseEngineSpec(`tcp://h:${i + 1},role=${role}`));
    expect(() => checkRoles(specs("prefill", "prefill"))).toThrow(/role=prefill need at least one engine that can decode/);
    expect(() => checkRoles(specs("decode"))).toThrow(/role=decode need at least one engine that can prefill/);
    expect(() => checkRoles(specs("prefill", "both"))).not.toThrow();
    expect(() => checkRoles(specs("both", "decode"))).not.toThrow();
    expect(() => checkRoles(specs("prefill", "decode"))).not.toThrow();
  });
});
