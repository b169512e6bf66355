import { Redis } from "ioredis";
import { afterAll, beforeAll } from "vitest";
import { startRedisServer, type RedisServer } from "../support/redis-server.ts";
import { WorkerProcess, type WorkerOptions } from "../support/worker-process.ts";

export interface PrivateRedis {
  readonly url: string;
  /** A plain ioredis connection: the outside's hands. */
  readonly admin: Redis;
  /** A worker on this Redis, killed after the file's tests if still running. */
  readonly worker: (options: Omit<WorkerOptions, "redisUrl">) => WorkerProcess;
}

/**
 * A redis-server of the test file's own (black-box tests restart, fill and kill it), started
 * before the file's tests, and stopped by its PID after them with every worker it started.
 * Call it at the top of the file: it registers the hooks.
 */
export const privateRedis = (): PrivateRedis => {
  let server: RedisServer | undefined;
  let admin: Redis | undefined;
  const workers: WorkerProcess[] = [];
  beforeAll(async () => {
    server = await startRedisServer();
    admin = new Redis(server.url);
  });
  afterAll(async () => {
    for (const w of workers) w.killNow();
    admin?.disconnect();
    await server?.stop("SIGKILL");
  });
  return {
    get url() {
      return server!.url;
    },
    get admin() {
      return admin!;
    },
    worker: (options) => {
      const w = new WorkerProcess({ redisUrl: server!.url, ...options });
      workers.push(w);
      return w;
    },
  };
};
