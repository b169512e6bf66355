/**
 * Black-box finding 1: a read batch that moved about 10,000 seeds made a commit ioredis could
 * not build (a RangeError for some 125,000 arguments), taken for an outage and retried forever
 * inside an uninterruptible section: the layer answered nothing more, logged nothing, ignored
 * SIGTERM, and a restarted worker froze again on the same entry.
 */
import { describe, expect, test } from "vitest";
import { emergencyStop, keysOf, lifecycle, resultOf, results, until, xadd } from "./outside.ts";
import { privateRedis } from "./private-redis.ts";

const env = privateRedis();

const worker = (namespace: string, layer: string, seeds: number) => {
  const w = env.worker({ namespace, layers: [layer], seeds });
  return w;
};

describe("esper worker with a layer of 10,000 seeds", () => {
  test("answers a command to every seed, then an emergency stop of them all, and goes on answering", async () => {
    const k = keysOf("freeze1", "big");
    const w = worker("freeze1", "big", 10_000);
    await w.start(undefined);
    const all = lifecycle("big", null, "GERMINATED");
    await xadd(env.admin, k.control, all);
    const moved = await resultOf(env.admin, k.events, all.message_id, 60_000);
    expect(moved).toMatchObject({ code: "ok", details: { moved: 10_000 } });
    const stop = emergencyStop("big");
    await xadd(env.admin, k.control, stop);
    expect(await resultOf(env.admin, k.events, stop.message_id, 60_000)).toMatchObject({ code: "ok", details: { stopped: true } });
    expect(await env.admin.hlen(k.state)).toBe(10_000);
    // Not frozen: the next command is answered.
    const next = lifecycle("big", 3, "GERMINATED");
    await xadd(env.admin, k.control, next);
    expect(await resultOf(env.admin, k.events, next.message_id)).toMatchObject({ code: "emergency_stopped" });
    // And SIGTERM stops it promptly, with exit code 0.
    const started = Date.now();
    expect(await w.terminate()).toBe(0);
    expect(Date.now() - started).toBeLessThan(15_000);
  }, 180_000);

  test("two whole-layer commands read in one batch on a 5,000-seed layer commit, and a restarted worker finds nothing left to do", async () => {
    const k = keysOf("freeze2", "wide");
    const first = lifecycle("wide", null, "GERMINATED");
    const second = lifecycle("wide", null, "TRAINING");
    // Queued before the worker starts, so one read takes both.
    await xadd(env.admin, k.control, first);
    await xadd(env.admin, k.control, second);
    const w = worker("freeze2", "wide", 5_000);
    await w.start(undefined);
    expect(await resultOf(env.admin, k.events, second.message_id, 60_000)).toMatchObject({ code: "ok", details: { moved: 5_000 } });
    expect((await results(env.admin, k.events)).map((r) => [r.correlation_id, r.code])).toEqual([
      [first.message_id, "ok"],
      [second.message_id, "ok"],
    ]);
    expect(await w.terminate()).toBe(0);
    const again = worker("freeze2", "wide", 5_000);
    await again.start(undefined);
    const probe = lifecycle("wide", 0, "CANCELLED");
    await xadd(env.admin, k.control, probe);
    expect(await resultOf(env.admin, k.events, probe.message_id)).toMatchObject({ code: "ok", details: { from_state: "TRAINING" } });
    await until("the pending list to empty", async () => (await env.admin.xpending(k.control, "kasmina"))[0] === 0);
    expect(await again.terminate()).toBe(0);
  }, 180_000);
});
