/**
 * How a bridge gets a planned commit into the store. A batch, once read, is held until its
 * commit lands or its entries are dead-lettered: nothing newer is read meanwhile, so a layer's
 * commands are applied in stream order whatever happens (docs/protocol.md "Order").
 *
 * - Redis away (`unavailable`), the outbox full, or Redis refusing writes (`OOM`, maxmemory with
 *   noeviction): not the batch's fault. It waits, on a capped backoff, and tries again, saying so
 *   in the log now and then. A retry first checks whether an attempt whose reply was lost landed
 *   after all (the commit's token in the layer's meta), so a commit never lands twice. This wait
 *   can be interrupted (a worker told to stop leaves the batch pending for the next worker,
 *   which applies it first).
 * - Any other failure (a script error, a key of the wrong type): the same commit is tried
 *   `maxCommitAttempts` times in all, then given up: the caller dead-letters the batch.
 * - A `conflict` (a precondition did not hold) is the caller's to judge at once, and so is a bus
 *   that was closed (the worker is stopping: the batch stays pending for the next reader).
 */
import { Effect, Schedule } from "effect";
import type { Bus, BusError, CommitOp } from "../bus/bus.ts";

export type Landing = { readonly landed: true } | { readonly landed: false; readonly error: BusError };

export interface CommitPolicy {
  readonly maxCommitAttempts: number;
  readonly maxRetryDelayMs: number;
  /** What the wait is for, for the log line: e.g. `layer a: batch of 12 entries`. */
  readonly what: string;
}

/** Failures that are not the batch's: wait for Redis and try again. */
export const waitable = (error: BusError): boolean =>
  error.reason === "unavailable" || error.reason === "outbox_full" || (error.reason === "command_failed" && /\bOOM\b/.test(error.message));

const LOG_EVERY_MS = 30_000;

/**
 * Commits `ops` until it lands, or fails in a way waiting does not mend. `landed` tells whether a
 * previous attempt landed (its token is stored). The first attempt runs as the caller runs it (a
 * bridge runs it uninterruptibly: a batch being committed is finished); the waits and retries
 * after it are `interruptible`.
 */
export const commitUntilLanded = (
  bus: Bus,
  ops: readonly CommitOp[],
  landed: Effect.Effect<boolean, BusError>,
  policy: CommitPolicy,
  interruptible: <A, E>(effect: Effect.Effect<A, E>) => Effect.Effect<A, E>,
): Effect.Effect<Landing> =>
  Effect.gen(function* () {
    const failureOf = <A>(effect: Effect.Effect<A, BusError>) => Effect.match(effect, { onFailure: (e): BusError | undefined => e, onSuccess: () => undefined });
    let attempts = 1;
    let error = yield* failureOf(bus.commit(ops));
    let loggedAt = Number.NEGATIVE_INFINITY;
    // Exponential from 20 ms, capped, jittered; it never ends (the wait is ended by Redis, or an interrupt).
    const delays = Schedule.min([Schedule.exponential("20 millis"), Schedule.spaced(policy.maxRetryDelayMs)]).pipe(Schedule.jittered);
    const sleep = yield* Schedule.toStepWithSleep(delays);
    while (error !== undefined) {
      // A precondition is the caller's to judge; a closed bus will not open again.
      if (error.reason === "conflict" || error.reason === "closed") return { landed: false, error } as const;
      if (!waitable(error)) {
        if (attempts >= policy.maxCommitAttempts) return { landed: false, error } as const;
        attempts++;
      }
      const now = yield* Effect.clockWith((clock) => Effect.succeed(clock.currentTimeMillisUnsafe()));
      if (now - loggedAt >= LOG_EVERY_MS) {
        loggedAt = now;
        yield* Effect.logWarning(
          waitable(error)
            ? `${policy.what}: ${error.message}; holding it and trying again (nothing newer is read meanwhile)`
            : `${policy.what}: ${error.message}; attempt ${attempts} of ${policy.maxCommitAttempts}`,
        );
      }
      yield* interruptible(Effect.ignore(sleep(undefined)));
      const retry = Effect.flatMap(landed, (done) => (done ? Effect.void : Effect.asVoid(bus.commit(ops))));
      error = yield* interruptible(failureOf(retry));
    }
    return { landed: true } as const;
  });
