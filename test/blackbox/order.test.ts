/**
 * Black-box finding 2: a layer's commands must be applied in stream order whatever happens. The
 * bridge read new entries at once and got a batch left pending back only through its janitor,
 * 30 s later: after a restart under a new consumer name (the default host-pid changes on every
 * start), after a commit Redis refused (maxmemory + noeviction), and now and then after SIGTERM.
 *
 * Each seed here walks GERMINATED -> TRAINING -> GRAFTING -> STABILIZATION -> EVALUATING
 * (forced: the graph holds, dwell times do not), one step per command, steps interleaved across
 * seeds; any reordering of a seed's steps is refused `invalid_transition`.
 */
import { describe, expect, test } from "vitest";
import { keysOf, lifecycle, results, until, xaddMany } from "./outside.ts";
import { privateRedis } from "./private-redis.ts";

const STEPS = ["GERMINATED", "TRAINING", "GRAFTING", "STABILIZATION", "EVALUATING"];

const env = privateRedis();

const chain = (layer: string, seeds: number) => STEPS.flatMap((target) => Array.from({ length: seeds }, (_, seed) => lifecycle(layer, seed, target)));

const answered = (events: string) => env.admin.xlen(events);

/** Every command answered ok, in the order sent, and every seed at the end of its walk. */
const expectAllInOrder = async (namespace: string, layer: string, commands: ReturnType<typeof chain>) => {
  const k = keysOf(namespace, layer);
  const got = await results(env.admin, k.events);
  const refused = got.filter((r) => r.code !== "ok");
  expect(refused.map((r) => `${r.code}: ${String(r.error)}`).slice(0, 5), `${refused.length} of ${got.length} refused`).toEqual([]);
  const firstAnswers = new Map<string, number>();
  got.forEach((r, i) => firstAnswers.has(r.correlation_id) || firstAnswers.set(r.correlation_id, i));
  expect(commands.every((c) => firstAnswers.has(c.message_id))).toBe(true);
  const order = commands.map((c) => firstAnswers.get(c.message_id)!);
  expect(order.every((at, i) => i === 0 || at > order[i - 1]!)).toBe(true);
};

const start = async (namespace: string, layer: string, seeds: number) => {
  const w = env.worker({ namespace, layers: [layer], seeds });
  // The default consumer name: host and pid, a new one on every start.
  await w.start(undefined);
  return w;
};

describe("esper worker keeps a layer's commands in stream order", () => {
  test("a worker under a new (default) consumer name applies what its predecessor held pending before anything newer", async () => {
    const [ns, layer, seeds] = ["order0", "L", 400];
    const k = keysOf(ns, layer);
    const commands = chain(layer, seeds);
    await xaddMany(env.admin, k.control, commands);
    // The predecessor read the first 300 and died before acking them.
    await env.admin.xgroup("CREATE", k.control, "kasmina", "0", "MKSTREAM");
    await env.admin.xreadgroup("GROUP", "kasmina", "some-host-4242", "COUNT", 300, "STREAMS", k.control, ">");
    expect((await env.admin.xpending(k.control, "kasmina"))[0]).toBe(300);
    const w = await start(ns, layer, seeds);
    await until("every command answered", async () => (await results(env.admin, k.events)).length >= commands.length, 120_000, 200);
    await expectAllInOrder(ns, layer, commands);
    await w.terminate();
  }, 240_000);

  test("across SIGKILL and a restart under a new (default) consumer name: what the dead worker held is applied first", async () => {
    const [ns, layer, seeds] = ["order1", "L", 1_000];
    const k = keysOf(ns, layer);
    const commands = chain(layer, seeds);
    let w = await start(ns, layer, seeds);
    const sending = xaddMany(env.admin, k.control, commands);
    await until("some commands answered", async () => (await answered(k.events)) >= 1_500 * 2);
    await w.kill();
    await sending;
    w = await start(ns, layer, seeds);
    await until("every command answered", async () => (await results(env.admin, k.events)).length >= commands.length, 120_000, 200);
    await expectAllInOrder(ns, layer, commands);
    await w.terminate();
  }, 240_000);

  test("after commits Redis refused (maxmemory with noeviction): the refused batch is applied before anything newer", async () => {
    const [ns, layer, seeds] = ["order2", "L", 600];
    const k = keysOf(ns, layer);
    const commands = chain(layer, seeds);
    await xaddMany(env.admin, k.control, commands);
    await env.admin.config("SET", "maxmemory-policy", "noeviction");
    const w = await start(ns, layer, seeds);
    await until("some commands answered", async () => (await answered(k.events)) >= 400);
    const used = Number(/used_memory:(\d+)/.exec(await env.admin.info("memory"))![1]);
    await env.admin.config("SET", "maxmemory", String(Math.max(1, used - 1_000_000)));
    try {
      await until("the worker to hold a refused commit", async () => /OOM/.test(w.output), 30_000);
    } finally {
      await env.admin.config("SET", "maxmemory", "0");
    }
    await until("every command answered", async () => (await results(env.admin, k.events)).length >= commands.length, 120_000, 200);
    await expectAllInOrder(ns, layer, commands);
    await w.terminate();
  }, 240_000);

  test("SIGTERM while a refused batch waits for Redis: the worker exits promptly, and the next applies that batch first", async () => {
    const [ns, layer, seeds] = ["order4", "L", 300];
    const k = keysOf(ns, layer);
    const commands = chain(layer, seeds);
    await xaddMany(env.admin, k.control, commands);
    const w = await start(ns, layer, seeds);
    await until("some commands answered", async () => (await answered(k.events)) >= 200);
    const used = Number(/used_memory:(\d+)/.exec(await env.admin.info("memory"))![1]);
    await env.admin.config("SET", "maxmemory", String(Math.max(1, used - 1_000_000)));
    try {
      await until("the worker to hold a refused commit", async () => /OOM/.test(w.output), 30_000);
      const asked = Date.now();
      expect(await w.terminate()).toBe(0);
      expect(Date.now() - asked).toBeLessThan(10_000);
    } finally {
      await env.admin.config("SET", "maxmemory", "0");
    }
    const next = await start(ns, layer, seeds);
    await until("every command answered", async () => (await results(env.admin, k.events)).length >= commands.length, 120_000, 200);
    await expectAllInOrder(ns, layer, commands);
    await next.terminate();
  }, 240_000);

  test("across SIGTERM, three times over, under a new consumer name each time", async () => {
    const [ns, layer, seeds] = ["order3", "L", 800];
    const k = keysOf(ns, layer);
    const commands = chain(layer, seeds);
    await xaddMany(env.admin, k.control, commands);
    for (const share of [0.2, 0.45, 0.7]) {
      const w = await start(ns, layer, seeds);
      await until(`${share * 100}% answered`, async () => (await answered(k.events)) >= share * commands.length * 2, 120_000, 20);
      expect(await w.terminate()).toBe(0);
    }
    const last = await start(ns, layer, seeds);
    await until("every command answered", async () => (await results(env.admin, k.events)).length >= commands.length, 120_000, 200);
    await expectAllInOrder(ns, layer, commands);
    expect((await env.admin.xpending(k.control, "kasmina"))[0]).toBe(0);
    await last.terminate();
  }, 240_000);
});
