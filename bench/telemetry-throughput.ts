/**
 * telemetry-throughput: seed metric records published by Kasmina layers through Redis and
 * decoded by a Tamiyo consumer.
 *
 * Two processes, as deployed: the producing side (a trainer's Kasmina layers) runs in
 * bench/lib/telemetry-producer.ts, the consuming side (Tamiyo) in this process. A record is
 * one seed's metrics of one window (bench/lib/telemetry-workload.ts: 4 layers of 4096 seeds,
 * the telemetry tensor's 10 columns, 7.75 values a record on average).
 *
 *   esper    producer: the telemetry publisher (src/telemetry/publisher.ts, defaults: batches of
 *            up to 1024 records, one LayerHealthReport per entry) given each window's Float32Array
 *            rows. Consumer: makeTelemetryConsumer (XREADGROUP group tamiyo per layer, decode to
 *            frames, ack). From the command to the producer to the last record decoded here.
 *   no-fast  the same with fast paths off in both processes (src/protocol/fast/switch.ts): the
 *            publisher builds each report with the protocol's builders and msgpackr, the consumer
 *            decodes every entry through the Schema. What the fast paths are worth: `fast_ratio`.
 *   deflate  the same as esper with `compression: "deflate"` (level 1).
 *   raw      the very entries the first esper round wrote (same count, same bytes), XADDed by the
 *            producer with bare pipelined ioredis (64 per pipeline), read back here by one bare
 *            XREADGROUP loop over the layers' streams with XACK; nothing decoded: the ceiling for
 *            esper's format.
 *   naive    one msgpack record ({layer_id, seed_id, step, metrics}) per entry, bare ioredis,
 *            1000 per pipeline, read back and unpacked here: what the reference does.
 *   bullmq   BullMQ (peer): Queue.addBulk of the same record as job data in the producer, a
 *            Worker (concurrency 200, empty processor) here; until every job is processed.
 * Rounds alternate the arms; medians reported. naive and bullmq move fewer records (they are
 * slower); every figure is per second.
 */
import { Worker } from "bullmq";
import { Effect } from "effect";
import { Redis } from "ioredis";
import { Packr } from "msgpackr";
import { makeRedisBus } from "../src/bus/redis-bus.ts";
import { setFastPaths } from "../src/protocol/fast/switch.ts";
import { streams } from "../src/protocol/streams.ts";
import { makeTelemetryConsumer } from "../src/telemetry/consumer.ts";
import type { TelemetryContent } from "../src/telemetry/decode.ts";
import { median, round, type Benchmark } from "./harness.ts";
import { startChild, type Child } from "./lib/child.ts";
import { benchNamespace, connectAdmin, deleteKeys } from "./lib/redis.ts";
import { openScoped, sleep } from "./lib/scope.ts";
import { LAYERS, METRICS_PER_RECORD, SEEDS } from "./lib/telemetry-workload.ts";

interface Done {
  readonly done: string;
  readonly error?: string;
  readonly records?: number;
  readonly entries?: number;
  readonly bytes?: number;
  readonly dropped?: number;
}

const ask = async (producer: Child, command: string): Promise<Done> => {
  const answer = JSON.parse(await producer.request(command, 300_000)) as Done;
  if (answer.error !== undefined) throw new Error(`producer ${command}: ${answer.error}`);
  return answer;
};

/**
 * A count that resolves `reached` once it gets to `target`, told by whoever counts. Polling for
 * it instead (setImmediate) kept this process at 100% CPU for the whole round, taken from the
 * producer and Redis on a 2-core machine, in the arms that waited that way (esper, bullmq) and
 * not in the bare ones, which await their reads.
 */
const countTo = (target: number) => {
  let reach = () => {};
  const reached = new Promise<void>((resolve) => (reach = resolve));
  return { reached, check: (count: number) => void (count >= target && reach()) };
};

/**
 * esper: the producer publishes, the consumer here reads; seconds until every record is decoded.
 * `fast`: fast paths on or off, in this process and the producer's, for this round only.
 */
const esperRound = async (producer: Child, redisUrl: string, namespace: string, total: number, compression: "none" | "deflate", fast = true) => {
  const decoded = countTo(total);
  let records = 0;
  const onTelemetry = (content: TelemetryContent) => {
    records += content.snapshots.length;
    for (const frame of content.frames) records += frame.seeds.length;
    decoded.check(records);
  };
  const before = setFastPaths(fast);
  try {
    const consuming = await openScoped(
      Effect.gen(function* () {
        const bus = yield* makeRedisBus({ url: redisUrl });
        return yield* makeTelemetryConsumer(bus, { namespace, layers: LAYERS, consumer: "bench-tamiyo", blockMs: 100, count: 32, onTelemetry });
      }),
    );
    try {
      const consumer = consuming.value;
      // The readers create their groups; let them be there before the clock starts.
      await sleep(50);
      const start = performance.now();
      const [published] = await Promise.all([ask(producer, `esper ${compression}${fast ? "" : " nofast"}`), decoded.reached]);
      const seconds = (performance.now() - start) / 1000;
      if (published.dropped !== 0 || published.records !== total || consumer.stats().rejected > 0) {
        throw new Error(`esper: ${published.records} records published, ${published.dropped} dropped, ${consumer.stats().rejected} entries rejected`);
      }
      return { seconds, entries: published.entries!, bytes: published.bytes! };
    } finally {
      await consuming.close();
    }
  } finally {
    setFastPaths(before);
  }
};

/** A bare XREADGROUP loop over `keys` (group `raw`), acking each batch; seconds until `count` entries are read. */
const bareRound = async (producer: Child, admin: Redis, redisUrl: string, keys: readonly string[], command: string, count: number, perRead: number, unpack?: (data: Buffer) => unknown) => {
  await admin.del(...keys);
  for (const key of keys) await admin.xgroup("CREATE", key, "raw", "$", "MKSTREAM");
  const reader = new Redis(redisUrl);
  try {
    const start = performance.now();
    const producing = ask(producer, command);
    let read = 0;
    while (read < count) {
      const got = (await reader.xreadgroupBuffer("GROUP", "raw", "raw-1", "COUNT", perRead, "BLOCK", 1000, "STREAMS", ...keys, ...keys.map(() => ">"))) as [Buffer, [Buffer, Buffer[]][]][] | null;
      if (!got) continue;
      const pipeline = reader.pipeline();
      for (const [key, batch] of got) {
        if (unpack) for (const [, fields] of batch) unpack(fields[1]!);
        read += batch.length;
        pipeline.xack(key, "raw", ...batch.map(([id]) => id));
      }
      await pipeline.exec();
    }
    await producing;
    return (performance.now() - start) / 1000;
  } finally {
    reader.disconnect();
    await admin.del(...keys);
  }
};

const bullRound = async (producer: Child, redisUrl: string, namespace: string, jobs: number): Promise<number> => {
  const name = `telemetry${Date.now().toString(36)}`;
  let processed = 0;
  const done = countTo(jobs);
  const worker = new Worker(name, async () => done.check(++processed), {
    connection: new Redis(redisUrl, { maxRetriesPerRequest: null }),
    prefix: `${namespace}.bull`,
    concurrency: 200,
    removeOnComplete: { count: 0 },
  });
  try {
    await worker.waitUntilReady();
    const start = performance.now();
    await Promise.all([ask(producer, `bullmq ${jobs} ${name}`), done.reached]);
    return (performance.now() - start) / 1000;
  } finally {
    await worker.close();
  }
};

const telemetryThroughput: Benchmark = async ({ quick, log, redisUrl }) => {
  const [perLayer, rounds, naiveCount, bullCount] = quick ? [1, 1, 1_000, 200] : [64, 3, 100_000, 20_000];
  const total = perLayer * LAYERS.length * SEEDS;
  const namespace = benchNamespace("telemetry");
  const keys = LAYERS.map((l) => streams(namespace).telemetry(l));
  const rawKeys = keys.map((k) => `${k}.raw`);
  const naiveKeys = LAYERS.map((l) => `${namespace}.naive.${l}`);
  const admin = await connectAdmin(redisUrl);
  const producer = startChild("bench/lib/telemetry-producer.ts", [redisUrl, namespace, String(perLayer)], { input: true });
  const packr = new Packr({ useRecords: false });
  const arms = { esper: [] as number[], entries: [] as number[], noFast: [] as number[], deflate: [] as number[], raw: [] as number[], naive: [] as number[], bullmq: [] as number[] };
  let entries = 0;
  let bytesPerRecord = 0;
  let noFastEntries = 0;
  let noFastBytesPerRecord = 0;
  let deflateBytesPerRecord = 0;
  try {
    await producer.waitFor((l) => l === "ready");
    log(`${LAYERS.length} layers x ${SEEDS} seeds, ${perLayer} windows each: ${total} records per esper round; naive ${naiveCount}, bullmq ${bullCount}; ${rounds} rounds${quick ? "" : " + warm-up"}`);
    for (let r = quick ? 1 : 0; r <= rounds; r++) {
      await admin.del(...keys);
      const e = await esperRound(producer, redisUrl, namespace, total, "none");
      if (entries === 0) {
        entries = (await ask(producer, "capture")).entries!;
        if (entries !== e.entries) throw new Error(`captured ${entries} entries, esper wrote ${e.entries}`);
        bytesPerRecord = e.bytes / total;
      }
      await admin.del(...keys);
      const slow = await esperRound(producer, redisUrl, namespace, total, "none", false);
      noFastEntries = slow.entries;
      noFastBytesPerRecord = slow.bytes / total;
      await admin.del(...keys);
      const d = await esperRound(producer, redisUrl, namespace, total, "deflate");
      deflateBytesPerRecord = d.bytes / total;
      await admin.del(...keys);
      const rawSeconds = await bareRound(producer, admin, redisUrl, rawKeys, "raw", entries, 64);
      const naiveSeconds = await bareRound(producer, admin, redisUrl, naiveKeys, `naive ${naiveCount}`, naiveCount, 1_000, (data) => packr.unpack(data));
      const bullSeconds = await bullRound(producer, redisUrl, namespace, bullCount);
      const rates = { esper: total / e.seconds, noFast: total / slow.seconds, deflate: total / d.seconds, raw: total / rawSeconds, naive: naiveCount / naiveSeconds, bullmq: bullCount / bullSeconds };
      log(
        `${r === 0 ? "warm-up" : `round ${r}`}: esper ${Math.round(rates.esper)} records/s (${Math.round(e.entries / e.seconds)} entries/s), fast paths off ${Math.round(rates.noFast)} (fast ratio ${round(rates.esper / rates.noFast, 2)}), deflate ${Math.round(rates.deflate)}, raw ${Math.round(rates.raw)} (ratio ${round(rates.esper / rates.raw, 3)}), naive ${Math.round(rates.naive)}, bullmq ${Math.round(rates.bullmq)} jobs/s`,
      );
      if (r === 0) continue;
      arms.esper.push(rates.esper);
      arms.entries.push(e.entries / e.seconds);
      arms.noFast.push(rates.noFast);
      arms.deflate.push(rates.deflate);
      arms.raw.push(rates.raw);
      arms.naive.push(rates.naive);
      arms.bullmq.push(rates.bullmq);
    }
  } finally {
    await producer.kill();
    await deleteKeys(admin, `${namespace}.`);
    admin.disconnect();
  }
  return {
    layers: LAYERS.length,
    seeds_per_layer: SEEDS,
    records_per_round: total,
    entries_per_round: entries,
    metrics_per_record: METRICS_PER_RECORD,
    bytes_per_record: round(bytesPerRecord, 1),
    deflate_bytes_per_record: round(deflateBytesPerRecord, 1),
    rounds,
    records_per_s: Math.round(median(arms.esper)),
    entries_per_s: Math.round(median(arms.entries)),
    raw_records_per_s: Math.round(median(arms.raw)),
    ratio: round(median(arms.esper.map((e, i) => e / arms.raw[i]!)), 3),
    deflate_records_per_s: Math.round(median(arms.deflate)),
    records_per_s_no_fast: Math.round(median(arms.noFast)),
    entries_per_round_no_fast: noFastEntries,
    bytes_per_record_no_fast: round(noFastBytesPerRecord, 1),
    fast_ratio: round(median(arms.esper.map((e, i) => e / arms.noFast[i]!)), 2),
    naive_records_per_s: Math.round(median(arms.naive)),
    bullmq_jobs_per_s: Math.round(median(arms.bullmq)),
  };
};

export default telemetryThroughput;
