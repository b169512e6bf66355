/**
 * Redis from Promise code (black-box finding of issue 12: `startSystem({ bus: makeRedisBus(...) })`
 * failed with "yield* ... is not iterable", and a connection could only be a URL).
 */
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { BusError } from "../../src/bus/bus.ts";
import { connectRedis } from "../../src/bus/connect-redis.ts";
import { startSystem } from "../../src/runtime/system.ts";
import { connectOrFail, deleteNamespace, REDIS_URL } from "../support/redis.ts";

const NS = `cr${process.pid}${Date.now().toString(36)}`.slice(0, 32);
const admin = await connectOrFail();
afterAll(async () => {
  await deleteNamespace(admin, `${NS}.`);
  await admin.quit();
});

/** A layer on `bus`: a command goes through Redis and is answered. */
const roundTrip = async (bus: Parameters<typeof startSystem>[0]["bus"], layer: string) => {
  const system = await startSystem({ layers: [{ id: layer, seeds: 4 }], bus, namespace: NS, inspect: "" });
  try {
    const result = await system.transition(layer, 1, "GERMINATED");
    expect(result).toMatchObject({ success: true, code: "ok" });
    expect(await admin.xlen(`${NS}.event.layer.{${layer}}`)).toBeGreaterThan(0);
  } finally {
    await system.close();
  }
};

describe("connectRedis", () => {
  it("from a URL: a bus startSystem takes, closed by close()", async () => {
    const redis = await connectRedis({ url: REDIS_URL });
    await roundTrip(redis.bus, "byurl");
    await redis.close();
    await expect(redis.close()).resolves.toBeUndefined();
  });

  it("from ioredis options, as BullMQ takes them", async () => {
    const url = new URL(REDIS_URL);
    const redis = await connectRedis({ redis: { host: url.hostname, port: Number(url.port || 6379) } });
    await roundTrip(redis.bus, "byoptions");
    await redis.close();
  });

  it("from the caller's own ioredis connection, which it copies and never closes", async () => {
    const mine = new Redis(REDIS_URL);
    try {
      const redis = await connectRedis({ redis: mine });
      await roundTrip(redis.bus, "byclient");
      await redis.close();
      expect(mine.status).toBe("ready");
      expect(await mine.ping()).toBe("PONG");
    } finally {
      mine.disconnect();
    }
  });

  it("rejects with a BusError naming where, when nothing listens there", async () => {
    const error = await connectRedis({ redis: { host: "127.0.0.1", port: 1 } }, { connectTimeoutMs: 500 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BusError);
    expect((error as BusError).message).toMatch(/redis:\/\/127\.0\.0\.1:1/);
  });
});
