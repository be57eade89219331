// A floor for bench:serve's router rows, as the bare server is for nginx's: engines that speak kvroute's
// engine protocol and answer every generate at once with one token, with no engine core, no KV events and
// no step loop behind them. Four of them listen in this one process; it prints their URLs on one line,
// comma-separated. Each event-loop turn's answers leave together, one write per connection, as the
// simulator's do.
import { createServer, type Socket } from "node:net";
import { DEFAULT_MAX_FRAME_BYTES, EngineSideConnection, PROTOCOL_VERSION, type EngineOutput, type EngineSide } from "../../src/engine-protocol/index.js";
import { MODEL } from "./loads.js";

const ENGINES = 4;

const answer = (promptTokens: number): EngineOutput => ({
  tokenIds: [1],
  text: " word",
  finish: { finishReason: "length", stopReason: null, usage: { promptTokens, completionTokens: 1, cachedTokens: 0 } },
});

async function listen(index: number): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const due = new Map<EngineSideConnection, Array<{ wireId: number; output: EngineOutput }>>();
  const flush = () => {
    for (const [connection, list] of due) connection.deliver(list);
    due.clear();
  };
  let nextId = 0;
  const side: EngineSide = {
    info: {
      protocolVersion: PROTOCOL_VERSION,
      engineId: `null-${index}@127.0.0.1:${port}`,
      engine: "kvroute bench null engine",
      model: MODEL,
      blockSize: 16,
      numBlocks: null,
      maxModelLen: 32_768,
      maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
      dataParallelStartRank: 0,
      dataParallelLocalSize: 1,
      kvEvents: null,
    },
    log: () => undefined,
    counters: { framesIn: 0, framesOut: 0, badFrames: 0, badMessages: 0 },
    reportCachedTokens: true,
    submit(connection, command) {
      connection.requests.set(command.id, nextId++);
      let list = due.get(connection);
      if (!list) {
        if (due.size === 0) setImmediate(flush);
        due.set(connection, (list = []));
      }
      list.push({ wireId: command.id, output: answer(command.request.promptTokenIds.length) });
      return null;
    },
    cancel: () => undefined,
  };
  server.on("connection", (socket: Socket) => new EngineSideConnection(socket, side, () => undefined));
  return `tcp://127.0.0.1:${port}`;
}

const urls: string[] = [];
for (let i = 0; i < ENGINES; i++) urls.push(await listen(i));
console.log(urls.join(","));
