// Requests first read in one event-loop turn are decided together, on the real event loop.
import { describe, expect, it } from "vitest";
import { DecisionTurn } from "../../../src/router/dispatch/decision-turn.js";
import { RoutingCore, Scheduler, type Attempt, type RoutablePrompt } from "../../../src/router/schedule/index.js";

const prompt = (tokens: number, overlaps: number[]): RoutablePrompt => ({ promptTokens: tokens, blocks: Math.floor(tokens / 16), overlaps });
// Arrival order: a prompt cached nowhere, then a long one with 400 blocks cached on engine 0.
const short = prompt(1600, [0, 0]);
const long = prompt(8000, [400, 0]);

function setup(roles?: ("prefill" | "decode")[]) {
  const scheduler = new Scheduler({ random: () => 0 });
  scheduler.setAvailable(0, true);
  scheduler.setAvailable(1, true);
  const core = new RoutingCore({ scheduler, cachedTokensFallback: "router", blockSize: () => 16, ...(roles ? { roles } : {}) });
  const decided: number[] = [];
  const turn = new DecisionTurn(core, (_seconds, requests) => decided.push(requests));
  return { core, turn, decided };
}

const requests = (c: RoutingCore) => c.scheduler.active.load(0).requests + c.scheduler.active.load(1).requests;

describe("decision turn", () => {
  it("decides the requests of one turn together, and resumes them in the order to send them", async () => {
    const { core, turn, decided } = setup();
    const resumed: string[] = [];
    const wait = (name: string, p: RoutablePrompt) => turn.begin(p, new AbortController().signal).then((a) => (resumed.push(name), a));
    // Three in one turn: the longer of two prompts cached nowhere is resumed after the shorter.
    const [a, b, c] = await Promise.all([wait("short", short), wait("long", long), wait("longer", prompt(3200, [0, 0]))]);
    expect(decided).toEqual([3]);
    // The cached prompt decided first and took its engine; the others were decided after it.
    expect(b!.engine).toBe(0);
    expect(b!.overlapBlocks).toBe(400);
    expect(a!.engine).toBe(1);
    expect(resumed).toEqual(["short", "long", "longer"]);
    expect(requests(core)).toBe(3);
    for (const x of [a, b, c]) x!.release();
  });

  it("decides requests of different turns one by one, in the order they came", async () => {
    const { turn, decided } = setup();
    const a = await turn.begin(short, new AbortController().signal);
    const b = await turn.begin(long, new AbortController().signal);
    expect(decided).toEqual([1, 1]);
    // Decided first, the prompt cached nowhere took engine 0.
    expect(a!.engine).toBe(0);
    for (const x of [a, b]) x!.release();
  });

  it("books nothing for a client that left before its turn ended, and decides the others", async () => {
    const { core, turn, decided } = setup();
    const gone = new AbortController();
    const left = turn.begin(long, gone.signal);
    const stays = turn.begin(short, new AbortController().signal);
    gone.abort();
    expect(await left).toBeNull();
    const attempt = (await stays) as Attempt;
    expect(attempt.engine).toBe(0);
    expect(decided).toEqual([1]);
    expect(requests(core)).toBe(1);
  });

  it("rejects every waiter of the turn when deciding throws, rather than leave them hanging", async () => {
    const { turn } = setup(["prefill", "decode"]);
    const results = await Promise.allSettled([turn.begin(short, new AbortController().signal), turn.begin(long, new AbortController().signal)]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/engine roles/);
  });
});
