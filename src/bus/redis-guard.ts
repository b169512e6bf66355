import { Cause, Effect, Exit, Option, type Scope } from "effect";
import { CircuitBreaker } from "effect/persistence";
import { BusError } from "./bus.ts";
import type { ResolvedRedisBusOptions } from "./redis-options.ts";

/**
 * How every Redis call of the bus is guarded: a time limit, retries of transient failures on
 * the retry Schedule, and a circuit breaker that stops hammering a Redis that keeps failing.
 * Retry and timeout sit inside the breaker, so it sees one outcome per call.
 */
export interface RedisGuard {
  readonly run: <A>(what: string, call: () => Promise<A>, options?: GuardOptions) => Effect.Effect<A, BusError>;
  readonly breakerState: Effect.Effect<"Closed" | "Open" | "HalfOpen">;
}

export interface GuardOptions {
  /** Retry transient failures. Off for writes the outbox retries, and for reads a caller loops over. */
  readonly retry?: boolean;
  /** Overrides the call time limit (a blocking read adds its block time). */
  readonly timeoutMs?: number;
}

const BREAKER_KEY = "redis";

/** Server replies that mean "not now" rather than "never". */
const TRANSIENT_REPLY = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY)\b/;

/** Socket-level failures: the server could not be reached, or the connection went away mid-call. */
const NETWORK_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
]);
/** What ioredis says when a command meets a connection that is closed, closing or never opened. */
const CONNECTION_GONE = /Connection is closed|Stream isn't writeable|enableOfflineQueue|Connection ended|Socket closed unexpectedly|Connection lost|write after end/i;

/**
 * An outage is only what says so: a network error, a closed connection, or a transient server
 * reply. A reply error (wrong type, OOM, a script error) means the server answered and will
 * answer the same again; anything else (a RangeError from a call too big to build, a TypeError)
 * is a fault of the call itself. Neither is `unavailable`, so neither is retried as if Redis
 * were away: a commit retried forever on a RangeError froze a layer for good.
 */
export const toBusError = (error: unknown, what: string): BusError => {
  if (error instanceof BusError) return error;
  const e = error instanceof Error ? error : new Error(String(error));
  const code = (e as { code?: unknown }).code;
  const outage =
    e.name === "ReplyError"
      ? TRANSIENT_REPLY.test(e.message)
      : e.name === "MaxRetriesPerRequestError" || (typeof code === "string" && NETWORK_CODES.has(code)) || CONNECTION_GONE.test(e.message);
  return new BusError({ reason: outage ? "unavailable" : "command_failed", message: `${what}: ${e.message}`, cause: error });
};

/** The server answered, even with an error: Redis is healthy as far as the breaker cares. */
const classify = <A>(exit: Exit.Exit<A, BusError>): CircuitBreaker.Outcome => {
  if (Exit.isSuccess(exit)) return CircuitBreaker.success;
  const error = Cause.findErrorOption(exit.cause);
  return Option.isSome(error) && (error.value.reason === "command_failed" || error.value.reason === "conflict") ? CircuitBreaker.success : CircuitBreaker.failure();
};

export const makeGuard = (options: ResolvedRedisBusOptions): Effect.Effect<RedisGuard, never, Scope.Scope> =>
  Effect.gen(function* () {
    const breaker = yield* CircuitBreaker.make({
      tripPolicy: CircuitBreaker.consecutive(options.breakerFailures),
      openDuration: options.breakerOpen,
    }).pipe(Effect.provide(CircuitBreaker.layerStoreMemory()));

    const run = <A>(what: string, call: () => Promise<A>, guard: GuardOptions = {}): Effect.Effect<A, BusError> => {
      const timeoutMs = guard.timeoutMs ?? options.callTimeoutMs;
      const attempt = Effect.tryPromise({ try: call, catch: (e) => toBusError(e, what) }).pipe(
        Effect.timeoutOrElse({
          duration: timeoutMs,
          orElse: () => Effect.fail(new BusError({ reason: "unavailable", message: `${what}: no reply within ${timeoutMs} ms` })),
        }),
      );
      const retried = guard.retry
        ? Effect.retry(attempt, { schedule: options.retry, while: (e: BusError) => e.reason === "unavailable" })
        : attempt;
      return breaker.execute(retried, { key: BREAKER_KEY, classify }).pipe(
        Effect.catchTag("CircuitBreakerError", (e) =>
          Effect.fail(new BusError({ reason: "unavailable", message: `${what}: ${e.message}`, cause: e })),
        ),
      );
    };

    const breakerState = breaker.state(BREAKER_KEY).pipe(
      Effect.map((state) => state._tag),
      Effect.orElseSucceed(() => "Closed" as const),
    );
    return { run, breakerState };
  });
