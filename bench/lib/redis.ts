/**
 * Redis for benchmarks: an admin connection, a namespace of their own, and deleting its keys
 * afterwards (docs/benchmarks.md "How to run").
 */
import { Redis } from "ioredis";

/** A namespace no other run uses: `b-<tag>-<pid>-<time>`, at most 32 characters (docs/protocol.md). */
export const benchNamespace = (tag: string): string => `b-${tag}-${process.pid}-${Date.now().toString(36)}`.slice(0, 32).replace(/-$/, "");

export const connectAdmin = async (url: string): Promise<Redis> => {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null, connectTimeout: 2_000 });
  redis.on("error", () => {});
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    redis.disconnect();
    throw new Error(`Redis is not reachable at ${url} (${error instanceof Error ? error.message : String(error)}); start one (redis-server) or set REDIS_URL`);
  }
  return redis;
};

/** Deletes every key starting with `prefix` (SCAN, so it never blocks Redis for long). */
export const deleteKeys = async (redis: Redis, prefix: string): Promise<number> => {
  let cursor = "0";
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== "0");
  return deleted;
};
