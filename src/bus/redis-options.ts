import { Schedule, type Duration } from "effect";
import type { Redis, RedisOptions } from "ioredis";
import { DEFAULT_MAXLEN } from "./bus.ts";

/** Everything RedisBus can be told. Every default is written once, in REDIS_BUS_DEFAULTS. */
export interface RedisBusOptions {
  /** Default `process.env.REDIS_URL ?? "redis://127.0.0.1:6379"`. Ignored when `redis` or `redisOptions` is given. */
  readonly url?: string;
  /**
   * ioredis options to connect with (host, port, username, password, tls, db...), as BullMQ takes
   * them. esper's own settings (no offline queue, no ioredis reconnects: see connectionOptions)
   * are laid over them.
   */
  readonly redisOptions?: RedisOptions;
  /**
   * An ioredis connection of the caller's: the bus opens its own connections with its options
   * (`duplicate`), and never uses or closes this one.
   */
  readonly redis?: Redis;
  /** `MAXLEN ~` when a publish names none. Default DEFAULT_MAXLEN (100000). */
  readonly maxLen?: number;
  /** Commands and events that may wait in the outbox while Redis is unreachable. Default 10000. */
  readonly outboxLimit?: number;
  /** Entries of droppable (telemetry) streams kept while Redis is unreachable; the oldest go first. Default 1000. */
  readonly droppableLimit?: number;
  /** Which streams may lose entries under pressure. Default: streams named `*.telemetry.*`. */
  readonly isDroppable?: (stream: string) => boolean;
  /** Delays between reconnect attempts; it should never end. Default: exponential from 100 ms, capped at 5 s, jittered. */
  readonly reconnect?: Schedule.Schedule<unknown, unknown>;
  /** Retries of a call that failed for a transient reason. Default: exponential from 25 ms, jittered, 3 retries. */
  readonly retry?: Schedule.Schedule<unknown, unknown>;
  /** Time limit of one Redis call (a blocking read gets its block time on top). Default 5000 ms. */
  readonly callTimeoutMs?: number;
  /** Time limit of establishing a connection. Default 5000 ms. */
  readonly connectTimeoutMs?: number;
  /** Consecutive failed calls that open the circuit breaker. Default 5. */
  readonly breakerFailures?: number;
  /** How long the breaker stays open, per consecutive opening. Default: exponential from 500 ms, capped at 10 s. */
  readonly breakerOpen?: Duration.Input | Schedule.Schedule<unknown, number>;
  /** Most outbox entries written in one pipeline when Redis returns. Default 512. */
  readonly flushBatch?: number;
  /** Prefix of CLIENT SETNAME for this bus's connections. Default "esper". */
  readonly connectionName?: string;
}

export type ResolvedRedisBusOptions = Required<Omit<RedisBusOptions, "redis" | "redisOptions">> & Pick<RedisBusOptions, "redis" | "redisOptions">;

export const REDIS_BUS_DEFAULTS: Omit<ResolvedRedisBusOptions, "url" | "redis" | "redisOptions"> = {
  maxLen: DEFAULT_MAXLEN,
  outboxLimit: 10_000,
  droppableLimit: 1_000,
  isDroppable: (stream) => stream.includes(".telemetry."),
  reconnect: Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")]).pipe(Schedule.jittered),
  retry: Schedule.exponential("25 millis").pipe(Schedule.jittered, Schedule.upTo({ times: 3 })),
  callTimeoutMs: 5_000,
  connectTimeoutMs: 5_000,
  breakerFailures: 5,
  breakerOpen: Schedule.min([Schedule.exponential("500 millis"), Schedule.spaced("10 seconds")]),
  flushBatch: 512,
  connectionName: "esper",
};

export const resolveOptions = (options: RedisBusOptions): ResolvedRedisBusOptions => ({
  url: options.url ?? (options.redis ? describe(options.redis.options) : options.redisOptions ? describe(options.redisOptions) : (process.env.REDIS_URL ?? "redis://127.0.0.1:6379")),
  ...REDIS_BUS_DEFAULTS,
  ...(Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as RedisBusOptions),
});

/** Where ioredis options point, as a URL for messages (never with the password). */
const describe = (o: RedisOptions): string => (o.path ? `unix://${o.path}` : `redis${o.tls ? "s" : ""}://${o.host ?? "127.0.0.1"}:${o.port ?? 6379}`);

/**
 * ioredis settings for every connection of the bus. ioredis must neither queue commands while
 * disconnected nor reconnect on its own timer: the outbox is the only queue (bounded, counted,
 * visible), and reconnects follow the reconnect Schedule, so nothing waits silently.
 */
export const connectionOptions = (options: ResolvedRedisBusOptions, role: string): RedisOptions => ({
  lazyConnect: true,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  retryStrategy: () => null,
  connectTimeout: options.connectTimeoutMs,
  connectionName: `${options.connectionName}:${role}`,
});
