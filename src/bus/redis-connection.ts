import { Effect, Exit, type Scope } from "effect";
import { Redis } from "ioredis";
import { BusError } from "./bus.ts";
import { toBusError } from "./redis-guard.ts";
import { connectionOptions, type ResolvedRedisBusOptions } from "./redis-options.ts";

/**
 * Connections of one RedisBus: opening, closing, and reconnecting on the reconnect Schedule.
 * ioredis is told never to reconnect by itself (see connectionOptions), so a dropped connection
 * ends (`status === "end"`) and stays down until `reconnect` brings it back.
 */

/** Connects a fresh connection; on failure it is disconnected and nothing is left behind. */
export const openConnection = (options: ResolvedRedisBusOptions, role: string): Effect.Effect<Redis, BusError> =>
  Effect.suspend(() => {
    const own = connectionOptions(options, role);
    // The caller's connection or options say where and how; the bus's own settings win (see connectionOptions).
    const redis = options.redis ? options.redis.duplicate(own) : options.redisOptions ? new Redis({ ...options.redisOptions, ...own }) : new Redis(options.url, own);
    // Errors reach us through the commands that fail; without a listener ioredis would log each one.
    redis.on("error", () => {});
    return connect(redis, options, `connect ${role} to ${options.url}`).pipe(
      Effect.as(redis),
      Effect.tapError(() => Effect.sync(() => redis.disconnect())),
    );
  });

const connect = (redis: Redis, options: ResolvedRedisBusOptions, what: string): Effect.Effect<void, BusError> =>
  Effect.tryPromise({ try: () => redis.connect(), catch: (e) => toBusError(e, what) }).pipe(
    Effect.timeoutOrElse({
      duration: options.connectTimeoutMs + 100,
      orElse: () => Effect.fail(new BusError({ reason: "unavailable", message: `${what}: timed out` })),
    }),
  );

/** QUIT lets replies in flight arrive; a connection that will not answer is cut. */
export const closeConnection = (redis: Redis): Effect.Effect<void> =>
  Effect.suspend(() =>
    redis.status === "end" || redis.status === "wait"
      ? Effect.void
      : Effect.tryPromise(() => redis.quit()).pipe(Effect.timeoutOption(1_000), Effect.ignore),
  ).pipe(Effect.ensuring(Effect.sync(() => redis.disconnect())));

/** One connect attempt if the connection is down; a no-op while it is up. */
export const ensureConnected = (redis: Redis, options: ResolvedRedisBusOptions, role: string): Effect.Effect<boolean, BusError> =>
  Effect.suspend(() => {
    if (redis.status === "ready") return Effect.succeed(false);
    if (redis.status !== "end" && redis.status !== "wait") {
      // Still closing or connecting: wait for it to settle one way or the other first.
      return Effect.flatMap(awaitStatus(redis, ["ready", "end"]), () => ensureConnected(redis, options, role));
    }
    return Effect.as(connect(redis, options, `reconnect ${role} to ${options.url}`), true);
  });

/** Reconnects on the reconnect Schedule until it succeeds; the schedule is meant never to give up. */
export const reconnect = (redis: Redis, options: ResolvedRedisBusOptions, role: string): Effect.Effect<void, BusError> =>
  Effect.asVoid(ensureConnected(redis, options, role).pipe(Effect.retry({ schedule: options.reconnect })));

const STATUS_EVENTS = { ready: "ready", end: "end" } as const;

/** Resolves once the connection reaches one of `statuses` (at once if it is there). */
export const awaitStatus = (redis: Redis, statuses: readonly ("ready" | "end")[]): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    if ((statuses as readonly string[]).includes(redis.status)) {
      resume(Effect.void);
      return;
    }
    const done = () => {
      for (const s of statuses) redis.off(STATUS_EVENTS[s], done);
      resume(Effect.void);
    };
    for (const s of statuses) redis.once(STATUS_EVENTS[s], done);
    return Effect.sync(() => {
      for (const s of statuses) redis.off(STATUS_EVENTS[s], done);
    });
  });

/**
 * Connections for blocking XREADs (readAfter with a wait): a blocking command holds its
 * connection, so it must not run on the shared one. Idle connections are reused; one whose
 * read was interrupted is still blocked server-side, so it is closed rather than reused.
 */
export interface BlockingPool {
  readonly use: <A>(f: (redis: Redis) => Effect.Effect<A, BusError>) => Effect.Effect<A, BusError>;
}

export const makeBlockingPool = (
  options: ResolvedRedisBusOptions,
  keepIdle = 4,
): Effect.Effect<BlockingPool, never, Scope.Scope> =>
  Effect.gen(function* () {
    const idle: Redis[] = [];
    const all = new Set<Redis>();
    let closed = false;
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        closed = true;
        return Effect.forEach([...all], closeConnection, { discard: true });
      }),
    );
    const acquire = Effect.suspend(() => {
      if (closed) return Effect.fail(new BusError({ reason: "closed", message: "the bus is closed" }));
      // An idle connection may have died with a Redis restart; it is dropped, not handed out.
      for (let redis = idle.pop(); redis !== undefined; redis = idle.pop()) {
        if (redis.status === "ready") return Effect.succeed(redis);
        all.delete(redis);
        redis.disconnect();
      }
      return openConnection(options, "follower").pipe(Effect.tap((redis) => Effect.sync(() => all.add(redis))));
    });
    const release = (redis: Redis, exit: Exit.Exit<unknown, unknown>) =>
      Effect.suspend(() => {
        if (Exit.isSuccess(exit) && !closed && redis.status === "ready" && idle.length < keepIdle) {
          idle.push(redis);
          return Effect.void;
        }
        all.delete(redis);
        // A failed or interrupted read may still be blocked server-side: QUIT would wait it out.
        return Exit.isSuccess(exit) ? closeConnection(redis) : Effect.sync(() => redis.disconnect());
      });
    return { use: (f) => Effect.acquireUseRelease(acquire, f, release) };
  });
