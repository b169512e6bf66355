/**
 * One measurement of pending-memory, in a process of its own so that its heap holds nothing
 * else (run with --expose-gc). Sends COUNT commands to a layer whose worker is stopped (the
 * group `kasmina` exists, nobody reads), keeps every one waiting for its result, and prints
 * one JSON line: the heap growth (after full GCs) and Redis's memory for the control stream.
 *   esper  src/client/client.ts on a RedisBus: `client.send` per command, promises held.
 *   raw    bare ioredis: XADD of the same bytes, a waiter per command in a Map with its timer.
 * Usage: pending-probe.ts esper|raw REDIS_URL NAMESPACE LAYER COUNT
 */
import { Effect, Exit, Scope } from "effect";
import { Redis } from "ioredis";
import { makeRedisBus } from "../../src/bus/redis-bus.ts";
import { encodeEntry } from "../../src/protocol/entry.ts";
import type { LifecycleTransitionCommand } from "../../src/protocol/messages.ts";
import { streams } from "../../src/protocol/streams.ts";
import { makeClient } from "../../src/client/client.ts";
import { lifecycleCommand } from "./commands.ts";

const [mode, url, namespace, layer, countText] = process.argv.slice(2) as [string, string, string, string, string];
const count = Number(countText);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");
const control = streams(namespace).control(layer);
const admin = new Redis(url);
await admin.xgroup("CREATE", control, "kasmina", "$", "MKSTREAM");

const command = (seed: number): LifecycleTransitionCommand => lifecycleCommand("bench.pending", layer, seed, "GERMINATED", { timeoutMs: 600_000 });

const settle = async (): Promise<number> => {
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
};

/** Waits until Redis holds `n` entries in the control stream: every publish has landed. */
const landed = async (n: number) => {
  while ((await admin.xlen(control)) < n) await new Promise((r) => setTimeout(r, 5));
};

const held: Promise<unknown>[] = [];
let before: number;
let pending: number;
let scope: Scope.Closeable | undefined;
if (mode === "esper") {
  scope = await Effect.runPromise(Scope.make());
  const client = await Effect.runPromise(
    Scope.provide(scope)(
      Effect.gen(function* () {
        const bus = yield* makeRedisBus({ url });
        return yield* makeClient(bus, { namespace });
      }),
    ),
  );
  // Warm: the follower of the layer's event stream, the code paths, one command that times out.
  await client.send(command(0), { timeoutMs: 1 });
  before = await settle();
  for (let i = 0; i < count; i++) held.push(client.send(command(i % 512), { timeoutMs: 600_000 }));
  await landed(count + 1);
  pending = client.pending();
} else {
  const writer = new Redis(url);
  const waiters = new Map<string, { resolve: () => void; timer: ReturnType<typeof setTimeout> }>();
  const data = Buffer.from(encodeEntry(command(0), { stream: control }).data);
  const send = (cid: string) =>
    new Promise<void>((resolve) => {
      waiters.set(cid, { resolve, timer: setTimeout(() => waiters.delete(cid), 600_000) });
      void writer.xadd(control, "MAXLEN", "~", "100000", "*", "data", data, "type", "LifecycleTransitionCommand", "enc", "msgpack", "cid", cid);
    });
  await writer.xadd(control, "*", "data", data, "type", "LifecycleTransitionCommand", "enc", "msgpack", "cid", "warm");
  before = await settle();
  for (let i = 0; i < count; i++) held.push(send(String(i)));
  await landed(count + 1);
  pending = waiters.size;
}
const after = await settle();
const redisBytes = Number(await admin.memory("USAGE", control, "SAMPLES", "0"));
process.stdout.write(`${JSON.stringify({ mode, count, pending, heap_bytes: after - before, redis_bytes: redisBytes, held: held.length })}\n`);
admin.disconnect();
process.exit(0);
