/**
 * command-rtt: a controller sends LifecycleTransitionCommands over Redis to a layer worker in
 * another process and waits for each CommandResult, against the same round trip with bare
 * ioredis and no esper code.
 *
 *   esper  `esper worker` (src/cli/main.ts, its own process) hosts layers of 512 seeds; this
 *          process sends with the client of src/client/client.ts on a RedisBus. Every command
 *          is a forced transition that applies (the seeds walk DORMANT -> ... -> FOSSILIZED,
 *          seed after seed, layer after layer), so each round trip carries the worker's whole
 *          path: read, decode, dedupe lookup, seed actor, one commit (snapshot, event, result,
 *          dedupe record, ack), and the client's follower reading the event and the result.
 *   raw    bench/lib/raw-echo.ts (its own process): XREADGROUP BLOCK, XADD of the entry's
 *          fields to a reply stream, XACK, one pipeline per batch. The client XADDs the same
 *          bytes esper sends and waits for the echo on an XREAD BLOCK loop of its own.
 * Phases: sequential (one command in flight; p50/p99/p999), then a steady 1,000 commands/s
 * (many in flight; steady_p99). Latency runs from just before the send call to the result in
 * hand (the load generator's own timer lag is left out). Rounds alternate esper and raw per
 * phase; quantiles are over the samples of all rounds, so the tails have enough samples.
 */
import { Effect } from "effect";
import { Redis } from "ioredis";
import { makeRedisBus } from "../src/bus/redis-bus.ts";
import { encodeEntry } from "../src/protocol/entry.ts";
import type { LifecycleTransitionCommand } from "../src/protocol/messages.ts";
import { streams } from "../src/protocol/streams.ts";
import { makeClient } from "../src/client/client.ts";
import type { SeedState } from "../machines/lifecycle.ts";
import { quantile, round, type Benchmark } from "./harness.ts";
import { startChild, type Child } from "./lib/child.ts";
import { lifecycleCommand } from "./lib/commands.ts";
import { benchNamespace, connectAdmin, deleteKeys } from "./lib/redis.ts";
import { openScoped, sleep } from "./lib/scope.ts";

const PATH: readonly SeedState[] = ["GERMINATED", "TRAINING", "GRAFTING", "STABILIZATION", "EVALUATING", "FINE_TUNING", "FOSSILIZED"];
const SEEDS_PER_LAYER = 512;
const layerName = (i: number) => `L${i}`;

/** Commands in the order that makes each one a valid transition: per layer, per stage, per seed. */
const commandStream = () => {
  let n = 0;
  return (): LifecycleTransitionCommand => {
    const layer = Math.floor(n / (SEEDS_PER_LAYER * PATH.length));
    const inLayer = n % (SEEDS_PER_LAYER * PATH.length);
    n++;
    return lifecycleCommand("bench.command-rtt", layerName(layer), inLayer % SEEDS_PER_LAYER, PATH[Math.floor(inLayer / SEEDS_PER_LAYER)]!, { force: true });
  };
};

type Send = () => Promise<void>;

const sequential = async (send: Send, count: number): Promise<number[]> => {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    await send();
    out.push(performance.now() - start);
  }
  return out;
};

/** `count` sends at `rate` per second, each timed on its own, not waiting for the previous. */
const steady = async (send: Send, count: number, rate: number): Promise<number[]> => {
  const out: number[] = [];
  const inFlight: Promise<void>[] = [];
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const wait = start + (i * 1000) / rate - performance.now();
    if (wait >= 1) await sleep(wait);
    const sentAt = performance.now();
    inFlight.push(send().then(() => void out.push(performance.now() - sentAt)));
  }
  await Promise.all(inFlight);
  return out;
};

/** The raw client: XADD on one connection, replies matched by `cid` from an XREAD BLOCK loop on another. */
const rawClient = async (url: string, request: string, reply: string, data: Buffer) => {
  const writer = new Redis(url);
  const reader = new Redis(url);
  const waiting = new Map<string, () => void>();
  let last = "$";
  let running = true;
  const loop = (async () => {
    while (running) {
      const got = (await reader.xread("COUNT", 512, "BLOCK", 200, "STREAMS", reply, last)) as [string, [string, string[]][]][] | null;
      if (!got) continue;
      for (const [id, fields] of got[0]![1]) {
        last = id;
        const cid = fields[fields.indexOf("cid") + 1]!;
        waiting.get(cid)?.();
        waiting.delete(cid);
      }
    }
  })();
  // Position the reader at the stream's end before the first send.
  const tail = await writer.xrevrange(reply, "+", "-", "COUNT", 1);
  last = tail[0]?.[0] ?? "0-0";
  let seq = 0;
  const send: Send = () =>
    new Promise<void>((resolve, reject) => {
      const cid = String(seq++);
      waiting.set(cid, resolve);
      writer.xadd(request, "MAXLEN", "~", "100000", "*", "data", data, "type", "LifecycleTransitionCommand", "enc", "msgpack", "cid", cid).catch(reject);
    });
  return {
    send,
    close: async () => {
      running = false;
      await loop;
      writer.disconnect();
      reader.disconnect();
    },
  };
};

const commandRtt: Benchmark = async ({ quick, log, redisUrl }) => {
  const [warmup, seqCount, steadyCount, rounds] = quick ? [10, 30, 50, 1] : [300, 1_000, 3_000, 3];
  const rate = 1_000;
  const total = warmup + rounds * (seqCount + steadyCount);
  const layers = Math.ceil(total / (SEEDS_PER_LAYER * PATH.length));
  const namespace = benchNamespace("rtt");
  const names = streams(namespace);
  const admin = await connectAdmin(redisUrl);
  const children: Child[] = [];
  let closeClient: (() => Promise<void>) | undefined;
  let raw: Awaited<ReturnType<typeof rawClient>> | undefined;
  try {
    const layerIds = Array.from({ length: layers }, (_, i) => layerName(i));
    log(`starting esper worker (${layers} layers x ${SEEDS_PER_LAYER} seeds) and the raw echo`);
    const worker = startChild("src/cli/main.ts", ["worker", "--redis", redisUrl, "--layer", layerIds.join(","), "--seeds", String(SEEDS_PER_LAYER), "--namespace", namespace, "--consumer", "bench-worker"]);
    children.push(worker);
    const request = `${namespace}.raw.request`;
    const reply = `${namespace}.raw.reply`;
    const echo = startChild("bench/lib/raw-echo.ts", [redisUrl, request, reply]);
    children.push(echo);
    await Promise.all([worker.waitFor((l) => l === "ready"), echo.waitFor((l) => l === "ready")]);

    const client = await openScoped(
      Effect.gen(function* () {
        const bus = yield* makeRedisBus({ url: redisUrl });
        return yield* makeClient(bus, { namespace });
      }),
    );
    closeClient = client.close;
    const next = commandStream();
    let refused = 0;
    const esperSend: Send = async () => {
      const result = await client.value.send(next());
      if (!result.success) refused++;
    };
    const sample = next();
    raw = await rawClient(redisUrl, request, reply, Buffer.from(encodeEntry(sample, { stream: names.control(sample.layer_id) }).data));
    // The sample above took the first command; send it, so the seeds stay in step.
    await client.value.send(sample);

    log(`warm-up: ${warmup} commands each`);
    await sequential(esperSend, warmup - 1);
    await sequential(raw.send, warmup);

    const esperSeq: number[] = [];
    const rawSeq: number[] = [];
    const esperSteady: number[] = [];
    const rawSteady: number[] = [];
    for (let r = 1; r <= rounds; r++) {
      esperSeq.push(...(await sequential(esperSend, seqCount)));
      rawSeq.push(...(await sequential(raw.send, seqCount)));
      esperSteady.push(...(await steady(esperSend, steadyCount, rate)));
      rawSteady.push(...(await steady(raw.send, steadyCount, rate)));
      const q = (v: number[], p: number) => round(quantile(v, p), 3);
      log(`round ${r}: sequential p50 ${q(esperSeq, 0.5)} / raw ${q(rawSeq, 0.5)} ms, p99 ${q(esperSeq, 0.99)} / raw ${q(rawSeq, 0.99)} ms; steady p99 ${q(esperSteady, 0.99)} / raw ${q(rawSteady, 0.99)} ms`);
    }
    if (refused > 0) throw new Error(`${refused} commands were refused; every command should be a valid transition`);
    const p99 = quantile(esperSeq, 0.99);
    const rawP99 = quantile(rawSeq, 0.99);
    return {
      layers,
      seeds_per_layer: SEEDS_PER_LAYER,
      rounds,
      sequential_per_round: seqCount,
      steady_per_round: steadyCount,
      steady_rate_per_s: rate,
      p50_ms: round(quantile(esperSeq, 0.5), 3),
      p99_ms: round(p99, 3),
      p999_ms: round(quantile(esperSeq, 0.999), 3),
      steady_p50_ms: round(quantile(esperSteady, 0.5), 3),
      steady_p99_ms: round(quantile(esperSteady, 0.99), 3),
      raw_p50_ms: round(quantile(rawSeq, 0.5), 3),
      raw_p99_ms: round(rawP99, 3),
      raw_p999_ms: round(quantile(rawSeq, 0.999), 3),
      raw_steady_p99_ms: round(quantile(rawSteady, 0.99), 3),
      ratio_p99: round(p99 / rawP99, 3),
      steady_ratio_p99: round(quantile(esperSteady, 0.99) / quantile(rawSteady, 0.99), 3),
    };
  } finally {
    await raw?.close();
    await closeClient?.();
    await Promise.all(children.map((c) => c.kill()));
    await deleteKeys(admin, `${namespace}.`);
    admin.disconnect();
  }
};

export default commandRtt;
