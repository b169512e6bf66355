/**
 * Redis for Promise code: a RedisBus without Effect. `startSystem({ bus })`, the client and the
 * worker's bridge take the bus it returns; `close()` closes every connection the bus opened
 * (never the caller's own ioredis connection, when one was given). Effect code uses
 * `makeRedisBus` in a Scope instead.
 *
 *   const redis = await connectRedis({ url: "redis://127.0.0.1:6379" });
 *   const system = await startSystem({ layers: [{ id: "dense1", seeds: 16 }], bus: redis.bus });
 *   ...
 *   await system.close();
 *   await redis.close();
 */
import { Effect } from "effect";
import type { Redis, RedisOptions } from "ioredis";
import { makeRedisBus, type RedisBus } from "./redis-bus.ts";
import type { RedisBusOptions } from "./redis-options.ts";
import { openScoped, type Closeable } from "../runtime/scoped.ts";

/** Where Redis is: a URL, ioredis options (host, port, password, tls...), or an ioredis connection whose options the bus copies. */
export type RedisTarget = { readonly url: string } | { readonly redis: Redis | RedisOptions };

/** A RedisBus opened from Promise code; `close()` closes the connections it opened. */
export interface RedisConnection extends Closeable {
  readonly bus: RedisBus;
}

const isClient = (value: Redis | RedisOptions): value is Redis => typeof (value as Redis).duplicate === "function";

/** Connects; rejects with the BusError (its message names where and why) when Redis cannot be reached. */
export const connectRedis = (target: RedisTarget, options: Omit<RedisBusOptions, "url" | "redis" | "redisOptions"> = {}): Promise<RedisConnection> => {
  const where: RedisBusOptions = "url" in target ? { url: target.url } : isClient(target.redis) ? { redis: target.redis } : { redisOptions: target.redis };
  return openScoped(Effect.map(makeRedisBus({ ...options, ...where }), (bus) => ({ bus })));
};
