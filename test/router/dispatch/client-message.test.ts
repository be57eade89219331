// Engine failures as clients read them: the engine's name stays, every other address is masked.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { clientMessage } from "../../../src/router/dispatch/client-message.js";

describe("clientMessage", () => {
  it("masks addresses in the reasons engines' errors carry, and keeps the engine's name", () => {
    expect(clientMessage("engine gpu-a could not be reached: ECONNREFUSED: connect ECONNREFUSED 10.0.0.5:9000", "gpu-a")).toBe(
      "engine gpu-a could not be reached: ECONNREFUSED: connect ECONNREFUSED (address hidden)",
    );
    expect(clientMessage("engine b disconnected (tcp://10.0.0.6:9000 closed) after 3 output tokens", "b")).toBe("engine b disconnected ((address hidden) closed) after 3 output tokens");
    expect(clientMessage("engine c: fetch http://gpu-c.internal:8000/v1/completions failed", "c")).toBe("engine c: fetch (address hidden) failed");
    expect(clientMessage("connect ECONNREFUSED [fd00::5]:8000", "c")).toBe("connect ECONNREFUSED (address hidden)");
    // The default name is HOST:PORT: it is the name, and shown as such.
    expect(clientMessage("engine 10.0.0.5:9000 disconnected (the heartbeat timed out)", "10.0.0.5:9000")).toBe("engine 10.0.0.5:9000 disconnected (the heartbeat timed out)");
    expect(clientMessage("prompt_token_ids[2] is 150500, outside the vocabulary [0, 150000)", "e0")).toBe("prompt_token_ids[2] is 150500, outside the vocabulary [0, 150000)");
  });

  it("leaves no IPv4 address or URL anywhere but in the name", () => {
    const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join("."));
    const address = fc.oneof(
      ipv4,
      fc.tuple(ipv4, fc.integer({ min: 1, max: 65535 })).map(([ip, port]) => `${ip}:${port}`),
      fc.tuple(fc.constantFrom("http", "https", "tcp"), fc.stringMatching(/^[a-z0-9.-]{1,12}$/), fc.integer({ min: 1, max: 65535 })).map(([s, h, p]) => `${s}://${h}:${p}/x`),
    );
    const text = fc.stringMatching(/^[a-zA-Z ():,]{0,20}$/);
    fc.assert(
      fc.property(fc.array(fc.tuple(text, address), { minLength: 1, maxLength: 4 }), text, (pieces, tail) => {
        const message = `engine e0 ${pieces.map(([t, a]) => `${t} ${a}`).join(" ")} ${tail}`;
        const out = clientMessage(message, "e0");
        for (const [, a] of pieces) expect(out).not.toContain(a);
        expect(out).toMatch(/^engine e0 /);
      }),
    );
  });
});
