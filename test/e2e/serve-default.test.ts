// `npm start` with no engines given: the router starts simulated engines in a thread of its own and
// serves at once.
import { afterAll, beforeAll, expect, it } from "vitest";
import { postJson, startRouterProcess, type RunningRouter } from "./router-process.js";

let router: RunningRouter;
beforeAll(async () => {
  router = await startRouterProcess(["--sim", "2", "--sim-speedup", "0", "--workers", "1"]);
});
afterAll(async () => {
  expect(await router.stop()).toBe(0); // a clean shutdown on SIGTERM
});

it("serves a chat through its own simulated engines and prints a curl line to try", async () => {
  const health = (await (await fetch(`${router.url}/health`)).json()) as { engines: { engine: string; state: string }[] };
  expect(health.engines.map((e) => e.engine)).toEqual(["sim-0", "sim-1"]);
  const r = await postJson(`${router.url}/v1/chat/completions`, { model: "Qwen/Qwen3-0.6B", messages: [{ role: "user", content: "Hello!" }], max_tokens: 8 });
  expect(r.status).toBe(200);
  expect(r.json.choices[0].message.content.length).toBeGreaterThan(0);
  expect(router.stderr()).toContain(`curl -s ${router.url}/v1/chat/completions`);
});
