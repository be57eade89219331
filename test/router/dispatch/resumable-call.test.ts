// The engine calls of an attempt that may be taken back: a pause aborts the call under way and tells it
// apart from the client's leaving; a paused attempt waits for its resumption or for its client to leave.
import { describe, expect, it } from "vitest";
import { ResumableCall } from "../../../src/router/dispatch/resumable-call.js";
import { LeanAbortSignal } from "../../../src/util/abort.js";

describe("ResumableCall", () => {
  it("aborts the call under way on a pause, and goes on with a new one once resumed", async () => {
    const client = new LeanAbortSignal();
    const calls = new ResumableCall(client);
    expect(calls.resumed()).toBe(true);
    const first = calls.start();
    calls.handler.pause();
    expect(first.aborted).toBe(true);
    expect(calls.tookBack(first)).toBe(true);
    const waiting = calls.resumed();
    expect(waiting).toBeInstanceOf(Promise);
    calls.handler.resume();
    expect(await waiting).toBe(true);
    const second = calls.start();
    expect(second.aborted).toBe(false);
    expect(calls.tookBack(second)).toBe(false);
    calls.close();
    expect(client.listenerCount).toBe(0);
  });

  it("tells the client's leaving apart from a pause, and ends a wait for resumption when the client leaves", async () => {
    const client = new LeanAbortSignal();
    const calls = new ResumableCall(client);
    const call = calls.start();
    calls.handler.pause();
    const waiting = calls.resumed();
    client.abort(new Error("gone"));
    expect(await waiting).toBe(false);
    expect(calls.resumed()).toBe(false);
    const again = new ResumableCall(client).start();
    expect(again.aborted).toBe(true);

    const other = new LeanAbortSignal();
    const c = new ResumableCall(other);
    const running = c.start();
    other.abort(new Error("gone"));
    expect(running.aborted).toBe(true);
    expect(c.tookBack(running)).toBe(false);
    expect(calls.tookBack(call)).toBe(true);
  });

  it("waits when paused before its first call, and says how long its call has been running", async () => {
    const calls = new ResumableCall(new LeanAbortSignal());
    calls.handler.pause();
    const waiting = calls.resumed();
    calls.handler.resume();
    expect(await waiting).toBe(true);
    calls.start();
    expect(calls.handler.elapsedMs()).toBeGreaterThanOrEqual(0);
    expect(calls.handler.elapsedMs()).toBeLessThan(1_000);
  });
});
