/**
 * Black-box findings 6 and 7: what a worker does about Redis itself.
 * 6. A worker started before Redis exited (code 1 after 3 s) instead of waiting for it.
 * 7. A Redis that lost its data went unnoticed: restarted without persistence, the worker logged
 *    nothing; after its next restart 500 of 1,000 seeds came back DORMANT, and re-sent commands
 *    were applied a second time. Now the layer's generation marker is required by every commit
 *    and checked every few seconds: the worker stops (exit 3) saying what happened and what to do.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterEach, describe, expect, test } from "vitest";
import { startRedisServer, type RedisServer } from "../support/redis-server.ts";
import { WorkerProcess } from "../support/worker-process.ts";
import { keysOf, lifecycle, resultOf, until, xadd } from "./outside.ts";

const cleanups: Array<() => Promise<unknown> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

const server = async (startNow: boolean): Promise<RedisServer> => {
  const redis = await startRedisServer({ startNow });
  cleanups.push(() => redis.stop("SIGKILL"));
  return redis;
};
const workerOn = (redis: RedisServer, namespace: string, seeds = 16) => {
  const w = new WorkerProcess({ redisUrl: redis.url, namespace, layers: ["L"], seeds });
  cleanups.push(() => w.killNow());
  return w;
};
const adminOf = (redis: RedisServer) => {
  const admin = new Redis(redis.url);
  cleanups.push(() => admin.disconnect());
  return admin;
};

describe("a worker started before Redis", () => {
  test("says once what it waits for, becomes ready when Redis comes, and answers", async () => {
    const redis = await server(false);
    const w = workerOn(redis, "late");
    await w.start(undefined, 60_000, false);
    const waiting = await w.nextLine(/waiting for Redis/);
    expect(waiting).toContain(redis.url);
    // A worker that gave up meanwhile would never say ready: the wait below proves it waited.
    await redis.start();
    await w.nextLine(/^ready$/, 30_000);
    const admin = adminOf(redis);
    const command = lifecycle("L", 0, "GERMINATED");
    await xadd(admin, keysOf("late", "L").control, command);
    expect(await resultOf(admin, keysOf("late", "L").events, command.message_id)).toMatchObject({ code: "ok" });
    expect(w.output.match(/waiting for Redis/g)).toHaveLength(1);
    expect(await w.terminate()).toBe(0);
  }, 90_000);
});

describe("a Redis that lost its data", () => {
  const grow = async (admin: Redis, k: ReturnType<typeof keysOf>, seeds: number) => {
    for (let seed = 0; seed < seeds; seed++) {
      const c = lifecycle("L", seed, "GERMINATED");
      await xadd(admin, k.control, c);
      await resultOf(admin, k.events, c.message_id);
    }
  };

  test("restarted without persistence under a running worker: the worker stops with exit code 3 and says what to do", async () => {
    const redis = await server(true);
    const w = workerOn(redis, "lost");
    await w.start(undefined);
    const admin = adminOf(redis);
    const k = keysOf("lost", "L");
    await grow(admin, k, 8);
    await redis.stop("SIGKILL");
    await redis.start();
    await w.whenExited();
    expect(w.lastExitCode).toBe(3);
    expect(w.output).toMatch(/Redis lost layer L's data/);
    expect(w.output).toMatch(/esper layer reset --layer L/);
    // Nothing was written over the loss: no partial state for a next worker to restore.
    expect(await admin.hlen(k.state)).toBe(0);
  }, 90_000);

  test("flushed under a running worker, a command arriving after: refused by the commit's marker check, nothing applied, the worker stops", async () => {
    const redis = await server(true);
    const w = workerOn(redis, "flushed");
    await w.start(undefined);
    const admin = adminOf(redis);
    const k = keysOf("flushed", "L");
    await grow(admin, k, 4);
    await admin.flushall();
    const again = lifecycle("L", 0, "GERMINATED");
    await xadd(admin, k.control, again);
    await until("the worker to stop", async () => !w.running, 30_000);
    expect(w.lastExitCode).toBe(3);
    expect(await admin.hlen(k.state)).toBe(0);
    expect(await admin.xlen(k.events)).toBe(0);
  }, 90_000);

  test("restarted from a backup behind its memory (the marker kept, the last writes gone): the worker notices at its next commit, stops with exit 3, and a new worker resumes from what Redis kept", async () => {
    const dir = await mkdtemp(join(tmpdir(), "esper-lagging-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const redis = await startRedisServer({ dir });
    cleanups.push(() => redis.stop("SIGKILL"));
    const w = workerOn(redis, "lagging");
    await w.start(undefined);
    const admin = adminOf(redis);
    const k = keysOf("lagging", "L");
    await grow(admin, k, 4);
    // What an AOF with appendfsync everysec, or an RDB, holds after a crash: everything up to a point, nothing after.
    await admin.save();
    for (let seed = 4; seed < 6; seed++) {
      const c = lifecycle("L", seed, "GERMINATED");
      await xadd(admin, k.control, c);
      await resultOf(admin, k.events, c.message_id);
    }
    await redis.stop("SIGKILL");
    await redis.start();
    expect(await admin.hlen(k.state)).toBe(4);
    const next = lifecycle("L", 6, "GERMINATED");
    await xadd(admin, k.control, next);
    await until("the worker to stop", async () => !w.running, 30_000);
    expect(w.lastExitCode).toBe(3);
    expect(w.output).toMatch(/Redis lost the latest writes of layer L/);
    // Nothing was applied on top of the older state.
    expect(await admin.hlen(k.state)).toBe(4);
    const again = workerOn(redis, "lagging");
    await again.start(undefined);
    // Seed 4's growth was lost with the writes: from what Redis kept, it is DORMANT and may grow again.
    const retry = lifecycle("L", 4, "GERMINATED");
    await xadd(admin, k.control, retry);
    expect(await resultOf(admin, k.events, retry.message_id)).toMatchObject({ code: "ok", details: { from_state: "DORMANT" } });
    expect(await resultOf(admin, k.events, next.message_id)).toMatchObject({ code: "ok" });
    expect(await again.terminate()).toBe(0);
  }, 90_000);

  test("a worker that starts on a store holding seeds but no marker refuses to restore it", async () => {
    const redis = await server(true);
    const admin = adminOf(redis);
    const k = keysOf("partial", "L");
    const first = workerOn(redis, "partial");
    await first.start(undefined);
    await grow(admin, k, 4);
    expect(await first.terminate()).toBe(0);
    // What a Redis that lost part of its data would hold: seeds without the meta key that held the marker.
    await admin.del(`partial.meta.layer.{L}`);
    const second = workerOn(redis, "partial");
    await expect(second.start(undefined, 30_000)).rejects.toThrow(/exited/);
    expect(second.lastExitCode).toBe(3);
    expect(second.output).toMatch(/no generation marker, but 4 seed snapshots/);
  }, 90_000);
});
