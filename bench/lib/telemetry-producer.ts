/**
 * The producing side of telemetry-throughput, in a process of its own as a trainer would be:
 * the Kasmina layers' publisher there, Tamiyo's reader in the benchmark's process. Takes one
 * command per stdin line, answers one JSON line on stdout when it is done:
 *   esper none|deflate [nofast]
 *                        publish every window of every layer through the telemetry publisher;
 *                        `nofast`: with fast paths off (src/protocol/fast/switch.ts)
 *   capture              keep the entries the last esper run wrote (XRANGE), for `raw`
 *   raw                  XADD the captured entries, byte for byte, to `<stream>.raw`, 64 per pipeline
 *   naive COUNT          XADD COUNT records, one msgpack record per entry, 1000 per pipeline
 *   bullmq COUNT QUEUE   Queue.addBulk of COUNT records as job data, 1000 per call
 * Usage: telemetry-producer.ts REDIS_URL NAMESPACE WINDOWS_PER_LAYER
 */
import { createInterface } from "node:readline";
import { Queue } from "bullmq";
import { Effect } from "effect";
import { Redis } from "ioredis";
import { Packr } from "msgpackr";
import { makeRedisBus } from "../../src/bus/redis-bus.ts";
import { setFastPaths } from "../../src/protocol/fast/switch.ts";
import { streams } from "../../src/protocol/streams.ts";
import { makeTelemetryPublisher } from "../../src/telemetry/publisher.ts";
import { openScoped } from "./scope.ts";
import { COLUMNS, LAYERS, SEEDS, recordOf, windowRows } from "./telemetry-workload.ts";

const [url, namespace, windowsText] = process.argv.slice(2) as [string, string, string];
const perLayer = Number(windowsText);
/** Sealed bytes the publisher may let wait for Redis before the producer yields: a trainer's pace, not a flood. */
const BACKLOG_BYTES = 16 * 1024 * 1024;
const windows = Array.from({ length: 8 }, (_, i) => windowRows(i));
const redis = new Redis(url);
const packr = new Packr({ useRecords: false });
let captured: { stream: string; fields: Buffer[] }[] = [];

const esper = async (compression: "none" | "deflate", fast: boolean) => {
  const before = setFastPaths(fast);
  const scoped = await openScoped(
    Effect.gen(function* () {
      const bus = yield* makeRedisBus({ url });
      return yield* makeTelemetryPublisher(bus, { namespace, compression });
    }),
  );
  try {
    const publisher = scoped.value;
    for (let w = 0; w < perLayer; w++) {
      for (const layer of LAYERS) {
        publisher.publishWindow(layer, { window: [w * 10 + 1, w * 10 + 10], step: w * 10 + 10, totalSeeds: SEEDS, activeSeeds: SEEDS / 4 }, { columns: COLUMNS, rows: windows[w % windows.length]! });
        if (publisher.backlogBytes() > BACKLOG_BYTES) await Effect.runPromise(publisher.backlogAtMost(BACKLOG_BYTES));
      }
    }
    await Effect.runPromise(publisher.flush);
    return publisher.stats();
  } finally {
    await scoped.close();
    setFastPaths(before);
  }
};

const pipelined = async (entries: ReadonlyArray<{ stream: string; fields: readonly (Buffer | string)[] }>, per: number) => {
  for (let i = 0; i < entries.length; i += per) {
    const pipeline = redis.pipeline();
    for (const e of entries.slice(i, i + per)) pipeline.xadd(e.stream, "MAXLEN", "~", "1000000", "*", ...e.fields);
    await pipeline.exec();
  }
};

const commands: Record<string, (args: string[]) => Promise<Record<string, unknown>>> = {
  esper: async ([compression, fast]) => ({ ...(await esper(compression === "deflate" ? "deflate" : "none", fast !== "nofast")) }),
  capture: async () => {
    captured = [];
    for (const layer of LAYERS) {
      const stream = streams(namespace).telemetry(layer);
      for (const [, fields] of await redis.xrangeBuffer(stream, "-", "+")) captured.push({ stream: `${stream}.raw`, fields });
    }
    return { entries: captured.length };
  },
  raw: async () => {
    await pipelined(captured, 64);
    return { entries: captured.length };
  },
  naive: async ([count]) => {
    const n = Number(count);
    const entries = Array.from({ length: n }, (_, i) => {
      const layer = LAYERS[i % LAYERS.length]!;
      return { stream: `${namespace}.naive.${layer}`, fields: ["data", packr.pack(recordOf(windows[0]!, i % SEEDS, layer, 10)) as Buffer, "type", "SeedMetrics", "enc", "msgpack"] };
    });
    await pipelined(entries, 1_000);
    return { entries: n };
  },
  bullmq: async ([count, name]) => {
    const n = Number(count);
    const queue = new Queue(name!, { connection: new Redis(url, { maxRetriesPerRequest: null }), prefix: `${namespace}.bull` });
    for (let i = 0; i < n; i += 1_000) {
      const jobs = Array.from({ length: Math.min(1_000, n - i) }, (_, k) => ({
        name: "record",
        data: recordOf(windows[0]!, (i + k) % SEEDS, LAYERS[(i + k) % LAYERS.length]!, 10),
        opts: { removeOnComplete: true, removeOnFail: true },
      }));
      await queue.addBulk(jobs);
    }
    await queue.close();
    return { jobs: n };
  },
};

process.stdout.write("ready\n");
for await (const line of createInterface({ input: process.stdin })) {
  const [name, ...args] = line.trim().split(/\s+/);
  if (name === "exit") break;
  try {
    const result = await commands[name!]!(args);
    process.stdout.write(`${JSON.stringify({ done: name, ...result })}\n`);
  } catch (error) {
    process.stdout.write(`${JSON.stringify({ done: name, error: String(error) })}\n`);
  }
}
redis.disconnect();
process.exit(0);
