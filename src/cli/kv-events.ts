// `kvroute kv-events`: subscribe to one engine's KV-event publisher through the KV-event thread and print
// what arrives, to check that a vLLM deployment's events reach the router and decode.

import { parseArgs } from "node:util";
import { PrefixIndex } from "../router/kv-index/prefix-index/index.js";
import { KvEventThread, type KvEventThreadStats } from "../router/kv-index/kv-events/index.js";
import { numberOption } from "./usage.js";

export const KV_EVENTS_USAGE = `usage: kvroute kv-events --endpoint URL --model NAME [options]

Subscribes to an engine's vLLM KV-event publisher and prints a line of counters every interval.

options:
  --endpoint URL      the publisher, e.g. tcp://10.0.0.5:5557 (rank r of a data-parallel engine: port + r)
  --model NAME        the model the engine serves (seeds the router's block hashes)
  --block-size N      the engine's KV block size in tokens (default 16)
  --replay URL        the engine's replay endpoint, e.g. tcp://10.0.0.5:5558
  --dp N              data-parallel ranks (default 1)
  --topic T           subscription topic (default: every topic)
  --all-media         count CPU and other tiers as held, not only GPU blocks
  --capacity N        index entries (default 1000000)
  --interval S        seconds between lines (default 5)
  --reports N         stop after N lines (default: run until interrupted)`;

export async function kvEventsCommand(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        endpoint: { type: "string" },
        model: { type: "string" },
        "block-size": { type: "string", default: "16" },
        replay: { type: "string" },
        dp: { type: "string", default: "1" },
        topic: { type: "string", default: "" },
        "all-media": { type: "boolean", default: false },
        capacity: { type: "string", default: "1000000" },
        interval: { type: "string", default: "5" },
        reports: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (err) {
    console.error(`kvroute kv-events: ${(err as Error).message}\n\n${KV_EVENTS_USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(KV_EVENTS_USAGE);
    return 0;
  }
  const number = (name: string, text: string, min: number): number => numberOption(name, text, { min })!;
  let writer: KvEventThread | undefined;
  try {
    if (values.endpoint === undefined || values.model === undefined) throw new RangeError("--endpoint and --model are required");
    const intervalMs = number("interval", values.interval, 0.01) * 1000;
    const reports = values.reports === undefined ? Infinity : number("reports", values.reports, 1);
    writer = await KvEventThread.start({ capacity: number("capacity", values.capacity, 16), maxEngines: 1, gpuOnly: !values["all-media"] });
    await writer.addEngine({
      id: 0,
      model: values.model,
      blockSize: number("block-size", values["block-size"], 1),
      endpoint: values.endpoint,
      dataParallelSize: number("dp", values.dp, 1),
      replayEndpoint: values.replay,
      topic: values.topic,
    });
    const index = PrefixIndex.attach(writer.shared);
    let stop = false;
    const interrupt = () => (stop = true);
    process.once("SIGINT", interrupt);
    for (let n = 0; n < reports && !stop; n++) {
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
      console.log(report(await writer.stats(), index.size));
    }
    process.off("SIGINT", interrupt);
    return 0;
  } catch (err) {
    console.error(`kvroute kv-events: ${(err as Error).message}`);
    return 2;
  } finally {
    await writer?.close();
  }
}

function report(s: KvEventThreadStats, entries: number): string {
  const ranks = s.engines[0]?.ranks ?? [];
  const state = ranks.map((r) => `${r.state}@${r.lastSequence}`).join(",");
  const error = ranks.map((r) => r.lastError).find((e) => e !== null);
  return [
    `ranks ${state}`,
    `batches ${s.batchesApplied}`,
    `stored ${s.eventsBlockStored}/${s.blocksStored} blocks`,
    `removed ${s.eventsBlockRemoved}/${s.blocksRemoved} blocks`,
    `cleared ${s.eventsAllBlocksCleared}`,
    `entries ${entries}`,
    `rejected ${s.payloadsRejected}`,
    `skipped parent ${s.unknownParent} block ${s.unknownBlock} lora ${s.unknownLora} size ${s.blockSizeMismatch + s.tokenCountMismatch}`,
    `gaps ${s.sequenceGaps}`,
    `replays ${s.replaysSucceeded}/${s.replaysRequested}`,
    `drops ${s.drops}`,
    ...(error === undefined ? [] : [`last error: ${error}`]),
  ].join("  ");
}
