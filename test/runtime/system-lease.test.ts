/**
 * A system on Redis owns its layers as `esper worker` does, under their leases: a second system (or
 * a worker) for the same layer does not split the brain. The second system is refused
 * `layer_owned`, naming the holder; once the first closes, the layer is free again.
 */
import { afterEach, describe, expect, test } from "vitest";
import { connectRedis, type RedisConnection } from "../../src/bus/connect-redis.ts";
import { startSystem, SystemConfigError } from "../../src/runtime/system.ts";
import { lifecycleCommand } from "../../src/protocol/make.ts";
import { REDIS_URL, uniqueNamespace } from "../support/redis.ts";
import { startRedisServer } from "../support/redis-server.ts";

const opened: Array<{ close: () => Promise<void> }> = [];
afterEach(async () => {
  for (const o of opened.splice(0).reverse()) await o.close();
});

describe("startSystem on Redis: one owner per layer", () => {
  test("a second system for a layer the first holds is refused layer_owned; after the first closes it starts and serves", async () => {
    const namespace = uniqueNamespace("syslease").slice(0, 32);
    const redis: RedisConnection = await connectRedis({ url: REDIS_URL });
    opened.push(redis);
    const first = await startSystem({ layers: [{ id: "owned", seeds: 2 }], bus: redis.bus, namespace, inspect: "" });
    const refused = await startSystem({ layers: [{ id: "owned", seeds: 2 }], bus: redis.bus, namespace, inspect: "" }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(SystemConfigError);
    expect(refused).toMatchObject({ reason: "layer_owned" });
    expect((refused as SystemConfigError).message).toMatch(/layer owned is owned by .+\/system-\w+ \(an esper worker or another system/);
    // The first serves on, undisturbed.
    expect(await first.send(lifecycleCommand({ layer_id: "owned", seed_id: 0, target_state: "GERMINATED" }))).toMatchObject({ code: "ok" });
    await first.close();

    const second = await startSystem({ layers: [{ id: "owned", seeds: 2 }], bus: redis.bus, namespace, inspect: "" });
    opened.push(second);
    expect(second.layer("owned").seeds()[0]!.state).toBe("GERMINATED");
    expect(await second.send(lifecycleCommand({ layer_id: "owned", seed_id: 1, target_state: "GERMINATED" }))).toMatchObject({ code: "ok" });
  });
});

describe("startSystem on Redis: a lease that lapsed while Redis was away", () => {
  test("Redis stalled past the lease (nobody took it meanwhile): the system takes its holding up again and its layer serves on", async () => {
    const server = await startRedisServer();
    opened.push({ close: () => server.stop("SIGKILL") });
    const redis = await connectRedis({ url: server.url });
    opened.push(redis);
    const namespace = "lapsed";
    const system = await startSystem({ layers: [{ id: "kept", seeds: 2 }], bus: redis.bus, namespace, inspect: "" });
    opened.push(system);
    expect(await system.send(lifecycleCommand({ layer_id: "kept", seed_id: 0, target_state: "GERMINATED" }))).toMatchObject({ code: "ok" });
    // Stalled longer than the lease (3 s): the lease key expires; the layer's next read finds it gone.
    process.kill(server.pid()!, "SIGSTOP");
    await new Promise((resolve) => setTimeout(resolve, 4_500));
    process.kill(server.pid()!, "SIGCONT");
    const after = await system.send(lifecycleCommand({ layer_id: "kept", seed_id: 1, target_state: "GERMINATED", timeout_ms: 20_000 }));
    expect(after).toMatchObject({ code: "ok" });
    expect(system.layer("kept").seeds().map((s) => s.state)).toEqual(["GERMINATED", "GERMINATED"]);
  }, 60_000);
});
