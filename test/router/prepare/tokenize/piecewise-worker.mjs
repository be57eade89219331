// A thread encoding a big prompt piecewise while answering pings, as a preparation pool thread would.
// Messages in: { kind: "encode", text, maxTokens, sliceChars, cancel (SharedArrayBuffer) } and
// { kind: "ping" }. Messages out: { kind: "ready" }, { kind: "pong", counted }, { kind: "result", result }.
import { parentPort } from "node:worker_threads";
import { distFile } from "../../../../dist/src/util/package-root.js";

const { loadTokenizer } = await import(distFile("src/router/prepare/tokenize/index.js"));
const tokenizer = await loadTokenizer();
let encoding = null;

parentPort.on("message", async (message) => {
  if (message.kind === "ping") {
    parentPort.postMessage({ kind: "pong", counted: encoding?.countedTokens ?? null });
    return;
  }
  const cancel = new Int32Array(message.cancel);
  encoding = tokenizer.startEncoding(message.text, { maxTokens: message.maxTokens, sliceChars: message.sliceChars });
  const { runPiecewise } = await import(distFile("src/router/prepare/tokenize/index.js"));
  const result = await runPiecewise(encoding, () => Atomics.load(cancel, 0) !== 0);
  encoding = null;
  parentPort.postMessage({ kind: "result", result: result.status === "ok" ? { status: "ok", length: result.tokens.length } : result });
});
parentPort.postMessage({ kind: "ready" });
