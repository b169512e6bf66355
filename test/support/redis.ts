import { Redis } from "ioredis";

/**
 * The shared Redis the integration tests run against. Tests never skip when it is missing:
 * they fail, saying how to start it, because a suite that silently skips proves nothing.
 */
export const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

export const START_REDIS = `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no`;

/** A connected admin client, or an Error that says how to get one. Close it with `quit()`. */
export const connectOrFail = async (url: string = REDIS_URL): Promise<Redis> => {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 2_000,
  });
  let cause = "";
  redis.on("error", (error: Error) => {
    cause = error.message;
  });
  try {
    await redis.connect();
    await redis.ping();
    return redis;
  } catch (error) {
    redis.disconnect();
    throw new Error(
      `Redis is not reachable at ${url} (${cause || (error instanceof Error ? error.message : String(error))}).\n` +
        `These tests need a real Redis. Start one with:\n  ${START_REDIS}\n` +
        `or set REDIS_URL to one that runs.`,
    );
  }
};

/** A key prefix no other test (or parallel test file) uses. No glob characters, so it can be SCANned. */
export const uniqueNamespace = (label: string): string =>
  `esper-test-${label}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/** Deletes every key under `prefix` (the benchmarks' helper: one SCAN-and-DEL for both). */
export { deleteKeys as deleteNamespace } from "../../bench/lib/redis.ts";
