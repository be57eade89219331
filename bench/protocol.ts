// npm run bench:protocol: the generate → delta × N → finish round trip over loopback TCP, per wire codec,
// measured side by side in one run; then the same workload through EngineClient and the simulator.
import { createServer, connect, type Server, type Socket } from "node:net";
import { Packr, Unpackr } from "msgpackr";
import { Bench } from "tinybench";
import { decodeBody, encodeFrame, EngineClient, FrameDecoder, startSimulator, type EngineEvent, type WireMessage } from "../src/index.js";
import { frameBody } from "../src/engine-protocol/index.js";
import { fixed, machineLine, msPerOp, printTable, ratio } from "./lib/report.js";

const TIME_MS = Number(process.env.BENCH_TIME_MS ?? 1000);
const PROMPT_TOKENS = 1024;
const OUTPUT_TOKENS = 64;
const CONCURRENT = 16;
const FRAMES_PER_REQUEST = 1 + OUTPUT_TOKENS + 1;
const PROMPT = Array.from({ length: PROMPT_TOKENS }, (_, i) => (Math.imul(i + 1, 2654435761) >>> 0) % 151_643);

/** One way of putting messages on a byte stream; a fresh instance per connection end (records keep state). */
interface Codec {
  encode(message: object): Buffer;
  /** Feeds received bytes; returns the whole messages they complete. */
  decode(chunk: Buffer): object[];
}

type CodecFactory = () => Codec;

function msgpackPlain(): Codec {
  const frames = new FrameDecoder();
  return {
    encode: (m) => encodeFrame(m as WireMessage),
    decode: (chunk) => frames.push(chunk).map((f) => decodeBody(f) as object),
  };
}

function msgpackRecords(): Codec {
  // Sequential records: a map's keys are sent once per connection, then only its values.
  const packr = new Packr({ useRecords: true, sequential: true });
  const unpackr = new Unpackr({ useRecords: true, sequential: true, mapsAsObjects: true });
  const frames = new FrameDecoder();
  return {
    encode: (m) => frameBody(packr.pack(m)),
    decode: (chunk) => frames.push(chunk).map((f) => unpackr.unpack(f) as object),
  };
}

function jsonLines(): Codec {
  let pending = "";
  return {
    encode: (m) => Buffer.from(`${JSON.stringify(m)}\n`),
    decode: (chunk) => {
      pending += chunk.toString("utf8");
      const lines = pending.split("\n");
      pending = lines.pop()!;
      return lines.map((line) => JSON.parse(line) as object);
    },
  };
}

const CODECS: Array<[string, CodecFactory]> = [
  ["(a) msgpackr, plain maps (the protocol)", msgpackPlain],
  ["(b) msgpackr, records extension", msgpackRecords],
  ["(c) JSON lines", jsonLines],
];

/** An engine that answers each generate with OUTPUT_TOKENS one-token deltas and a finish. */
async function echoEngine(factory: CodecFactory): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    const codec = factory();
    socket.on("data", (chunk: Buffer) => {
      for (const message of codec.decode(chunk) as Array<{ type: string; id: number; prompt_token_ids: number[] }>) {
        if (message.type !== "generate") continue;
        const frames: Buffer[] = [];
        const seed = message.prompt_token_ids.length;
        for (let i = 0; i < OUTPUT_TOKENS; i++) {
          frames.push(codec.encode({ type: "delta", id: message.id, token_ids: [(seed * 31 + i * 7919) % 151_643], text: " word" }));
        }
        frames.push(
          codec.encode({
            type: "finish",
            id: message.id,
            finish_reason: "length",
            stop_reason: null,
            usage: { prompt_tokens: PROMPT_TOKENS, completion_tokens: OUTPUT_TOKENS, cached_tokens: 512 },
          }),
        );
        socket.write(Buffer.concat(frames));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as { port: number }).port };
}

interface Side {
  socket: Socket;
  codec: Codec;
  bytesOut: number;
  bytesIn: number;
  waiting: Map<number, () => void>;
  nextId: number;
}

async function routerSide(port: number, factory: CodecFactory): Promise<Side> {
  const socket = await new Promise<Socket>((resolve) => {
    const s = connect({ host: "127.0.0.1", port }, () => resolve(s));
  });
  socket.setNoDelay(true);
  const side: Side = { socket, codec: factory(), bytesOut: 0, bytesIn: 0, waiting: new Map(), nextId: 1 };
  socket.on("data", (chunk: Buffer) => {
    side.bytesIn += chunk.length;
    for (const m of side.codec.decode(chunk) as Array<{ type: string; id: number }>) {
      if (m.type === "finish") side.waiting.get(m.id)?.();
    }
  });
  return side;
}

/** CONCURRENT requests on one connection, each to its finish. */
function roundTrips(side: Side): Promise<void> {
  const done: Promise<void>[] = [];
  const frames: Buffer[] = [];
  for (let i = 0; i < CONCURRENT; i++) {
    const id = side.nextId++;
    done.push(new Promise<void>((resolve) => side.waiting.set(id, resolve)));
    frames.push(side.codec.encode({ type: "generate", id, prompt_token_ids: PROMPT, sampling: { max_tokens: OUTPUT_TOKENS }, overlap_blocks: 32 }));
  }
  const bytes = Buffer.concat(frames);
  side.bytesOut += bytes.length;
  side.socket.write(bytes);
  return Promise.all(done).then(() => {
    side.waiting.clear();
  });
}

/** Bytes of one request's frames in each direction, per codec (a fresh codec: records count their keys once). */
function wireBytes(factory: CodecFactory): { generate: number; perToken: number } {
  const router = factory();
  const engine = factory();
  const generate = router.encode({ type: "generate", id: 1, prompt_token_ids: PROMPT, sampling: { max_tokens: OUTPUT_TOKENS }, overlap_blocks: 32 }).length;
  let out = 0;
  for (let r = 0; r < 2; r++) {
    // The second request is what a long-lived connection pays; records have sent their keys by then.
    out = 0;
    for (let i = 0; i < OUTPUT_TOKENS; i++) out += engine.encode({ type: "delta", id: 1 + r, token_ids: [100_000 + i], text: " word" }).length;
    out += engine.encode({ type: "finish", id: 1 + r, finish_reason: "length", stop_reason: null, usage: { prompt_tokens: PROMPT_TOKENS, completion_tokens: OUTPUT_TOKENS, cached_tokens: 512 } }).length;
  }
  return { generate, perToken: out / OUTPUT_TOKENS };
}

console.log(
  `bench:protocol  ${CONCURRENT} concurrent requests per iteration, ${PROMPT_TOKENS}-token prompts, ${OUTPUT_TOKENS} one-token deltas + finish each; loopback TCP; ${machineLine()}; ${TIME_MS} ms per task`,
);

const bench = new Bench({ time: TIME_MS, warmup: true });
const open: Array<{ server: Server; side: Side }> = [];
for (const [name, factory] of CODECS) {
  const { server, port } = await echoEngine(factory);
  const side = await routerSide(port, factory);
  open.push({ server, side });
  bench.add(name, () => roundTrips(side));
}
await bench.run();

const base = msPerOp(bench.tasks[0]);
const rows = bench.tasks.map((task, i) => {
  const ms = msPerOp(task);
  const bytes = wireBytes(CODECS[i]![1]);
  const framesPerSec = (CONCURRENT * FRAMES_PER_REQUEST * 1000) / ms;
  return [task.name, fixed(framesPerSec / 1000), fixed(bytes.perToken), fixed(bytes.generate / PROMPT_TOKENS, 2), ratio(ms / base)];
});
printTable(
  "codec round trip (frames: generate + deltas + finish)",
  ["codec", "k frames/s", "bytes/output token", "bytes/prompt token", "time vs (a)"],
  rows,
);
for (const { server, side } of open) {
  side.socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

// The same workload through the real stack: EngineClient to the simulator at full speed. The simulator's
// scheduling and bookkeeping are included, so this is the ceiling a router sees from one engine process.
const sim = await startSimulator({ kvEventsEndpoint: null, speedup: 0 });
const client = new EngineClient(sim.url);
await client.connect();
const drain = async (stream: AsyncIterable<EngineEvent>): Promise<void> => {
  for await (const event of stream) if (event.type === "error") throw new Error(event.message);
};
let salt = 0;
const full = new Bench({ time: TIME_MS, warmup: true });
full.add("EngineClient ↔ simulator", () =>
  Promise.all(
    Array.from({ length: CONCURRENT }, () => {
      const p = PROMPT.slice();
      p[0] = salt++ % 151_643;
      return drain(client.generate({ promptTokenIds: p, sampling: { maxTokens: OUTPUT_TOKENS } }));
    }),
  ).then(() => undefined),
);
await full.run();
const fullMs = msPerOp(full.tasks[0]);
printTable("end to end (one connection, simulator at speed-up 0)", ["stack", "k frames/s", "k output tokens/s", "time vs (a)"], [
  [full.tasks[0]!.name, fixed((CONCURRENT * FRAMES_PER_REQUEST * 1000) / fullMs / 1000), fixed((CONCURRENT * OUTPUT_TOKENS * 1000) / fullMs / 1000), ratio(fullMs / base)],
]);
await client.close();
await sim.close();
