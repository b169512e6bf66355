/**
 * What every Redis-facing subcommand shares: the common flags, and running an Effect program
 * in a Scope that SIGTERM/SIGINT close gracefully (in-flight work finishes, acks, connections close).
 */
import { readFileSync } from "node:fs";
import { Cause, Effect, Exit, Fiber, type Scope } from "effect";
import { BusError } from "../bus/bus.ts";
import { makeRedisBus, type RedisBus } from "../bus/redis-bus.ts";
import { REDIS_BUS_DEFAULTS } from "../bus/redis-options.ts";
import { isCodec } from "../protocol/codec.ts";
import { isTopology, namespaceFromEnv, topologyFromEnv, TOPOLOGIES } from "../protocol/streams.ts";
import { LayerDataLost } from "../bridge/restore.ts";
import { UsageError, type ConnectionFlags, type Connection } from "./flags.ts";

/** Exit code of a worker that stopped because Redis lost a layer's data (docs/operations.md). */
export const EXIT_DATA_LOST = 3;

/** A URL ioredis can connect to: redis://, rediss:// or unix://. Anything else is refused before any connection. */
export const checkRedisUrl = (url: string, flag = "--redis"): string => {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`${flag} ${url}: not a URL; give a Redis URL such as redis://127.0.0.1:6379`);
  }
  if (!["redis:", "rediss:", "unix:"].includes(parsed.protocol)) {
    throw new UsageError(`${flag} ${url}: ${parsed.protocol} is not a Redis scheme; use redis://host:port, rediss://host:port or unix:///path/to/socket`);
  }
  return url;
};

export const connectionFrom = (values: ConnectionFlags): Connection => {
  const url = checkRedisUrl(values.redis ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379", values.redis === undefined ? "REDIS_URL" : "--redis");
  const namespace = values.namespace ?? namespaceFromEnv();
  if (values.topology !== undefined && !isTopology(values.topology)) throw new UsageError(`--topology ${values.topology}: use ${TOPOLOGIES.join(" or ")}`);
  let topology = values.topology;
  try {
    topology ??= topologyFromEnv();
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  // Reference readers read plain JSON: under the reference topology that is the default.
  const codec = values.codec ?? (topology === "reference" ? "reference" : "msgpack");
  if (!isCodec(codec)) throw new UsageError(`--codec ${codec}: use msgpack or json`);
  const keyFile = values.hmacKeyFile;
  let hmacKey: string | undefined;
  try {
    hmacKey = keyFile === undefined ? undefined : readFileSync(keyFile, "utf8").trim();
  } catch (error) {
    throw new UsageError(`--hmac-key-file ${keyFile}: cannot read it (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
  }
  if (hmacKey !== undefined && hmacKey.length < 16) throw new UsageError(`--hmac-key-file ${keyFile}: the key must be at least 16 characters`);
  return { url, namespace, topology, codec, ...(hmacKey !== undefined ? { hmacKey } : {}) };
};

/**
 * A Redis bus, once Redis answers: while it does not, one line says what the command waits for,
 * and it tries again on the bus's reconnect schedule (capped, jittered). Ended by SIGTERM/SIGINT.
 */
export const connectWaiting = (url: string, what: string): Effect.Effect<RedisBus, never, Scope.Scope> =>
  Effect.suspend(() => {
    let said = false;
    return makeRedisBus({ url }).pipe(
      Effect.tapError((error) =>
        Effect.sync(() => {
          if (said) return;
          said = true;
          console.error(`${what}: waiting for Redis at ${url} (${error.message}); retrying until it answers, Ctrl-C to give up`);
        }),
      ),
      Effect.retry({ schedule: REDIS_BUS_DEFAULTS.reconnect }),
      Effect.tap(() => Effect.sync(() => said && console.error(`${what}: Redis at ${url} answers`))),
      Effect.orDie,
    );
  });

/** What to do next when Redis could not be reached at `url`. */
export const redisHint = (url: string): string => {
  let port = "6379";
  try {
    port = new URL(url).port || "6379";
  } catch {
    // a unix:// or odd URL: the default port is the best guess
  }
  return `is Redis running at ${url}? start one with: redis-server --daemonize yes --port ${port} (or pass --redis / REDIS_URL to point at yours)`;
};

/**
 * Runs `program` until it ends or a signal arrives; the Scope closes either way. Returns the exit
 * code. `redisUrl`: the Redis the program talks to, named with what to do when it cannot be reached.
 */
export const runUntilSignal = async (program: Effect.Effect<number, unknown, Scope.Scope>, redisUrl?: string): Promise<number> => {
  const fiber = Effect.runFork(Effect.scoped(program));
  const stop = () => {
    void Effect.runPromise(Fiber.interrupt(fiber));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  const exit = await Effect.runPromise(Fiber.await(fiber));
  process.off("SIGTERM", stop);
  process.off("SIGINT", stop);
  if (Exit.isSuccess(exit)) return exit.value;
  if (Cause.hasInterruptsOnly(exit.cause)) return 0;
  const error = Cause.squash(exit.cause);
  const unreachable = redisUrl !== undefined && error instanceof BusError && (error.reason === "unavailable" || error.reason === "closed");
  console.error(`${error instanceof Error ? error.message : String(error)}${unreachable ? `\n${redisHint(redisUrl)}` : ""}`);
  return error instanceof LayerDataLost ? EXIT_DATA_LOST : 1;
};
