/**
 * Doing something only while holding a lease (Bus.lease): ask for it; while someone else holds
 * it, wait as a standby and ask again every `pollMs`; once held, run `serve(token)` and renew the
 * holding every `pollMs` until it is lost (or cannot be renewed for a whole lease), or `serve`
 * ends; then stand by again. Closing the Scope stops `serve` and gives the lease up. The layer's
 * owner (bridge/owner.ts) and the leading Tamiyo (tamiyo/leader.ts) are both this.
 */
import { randomUUID } from "node:crypto";
import { Clock, Effect, Result, type Scope } from "effect";
import type { Bus, BusError, Lease } from "../bus/bus.ts";

export interface HoldingOptions {
  /** The lease hash and its token counter (Bus.lease). */
  readonly key: string;
  readonly counter: string;
  /** Who asks; made unique to this process's life (a restarted process is a new holder). */
  readonly name: string;
  /** How long a holding lasts unless renewed. Default 3,000 ms. */
  readonly leaseMs?: number;
  /** How often the holder renews and a standby asks. Default 1,000 ms. */
  readonly pollMs?: number;
  /** Told when this process becomes a standby (with who holds the lease). */
  readonly onStandby?: (holder: string | null) => void;
}

export const HOLDING_DEFAULTS = { leaseMs: 3_000, pollMs: 1_000 } as const;

export interface Holding {
  /** The full holder id (`name/random`), as the lease records it. */
  readonly holder: string;
  readonly role: () => "starting" | "holder" | "standby";
}

/**
 * Runs `serve(token, fence)` whenever this process holds the lease; `fence` is what the holding's
 * commits may `expect` (`holder#token`). `serve` says why it ended (a string); its failure ends the
 * whole loop with that failure. Returns at once; the loop runs in the current Scope.
 */
export const whileHolding = <E>(
  bus: Bus,
  options: HoldingOptions,
  serve: (token: number, fence: string) => Effect.Effect<string, E, Scope.Scope>,
  onFailure: (error: E) => Effect.Effect<void>,
): Effect.Effect<Holding, never, Scope.Scope> =>
  Effect.gen(function* () {
    const leaseMs = options.leaseMs ?? HOLDING_DEFAULTS.leaseMs;
    const pollMs = options.pollMs ?? HOLDING_DEFAULTS.pollMs;
    const holder = `${options.name}/${randomUUID().slice(0, 8)}`;
    const ask = (op: "acquire" | "renew" | "release", token?: number): Effect.Effect<Lease, BusError> =>
      bus.lease({ op, key: options.key, counter: options.counter, holder, ttlMs: leaseMs, ...(token !== undefined ? { token } : {}) });
    const clock = yield* Clock.Clock;
    const now = () => clock.currentTimeMillisUnsafe();
    let role: "starting" | "holder" | "standby" = "starting";
    let heldBy: string | null | undefined;

    /** Renews holding `token` every pollMs; ends when it is lost, or could not be renewed for a whole lease. */
    const keepHolding = (token: number) =>
      Effect.gen(function* () {
        let renewedAt = now();
        for (;;) {
          yield* Effect.sleep(pollMs);
          const renewal = yield* Effect.result(ask("renew", token));
          if (Result.isSuccess(renewal) && renewal.success.held) renewedAt = now();
          else if (Result.isSuccess(renewal)) return `the lease is held by ${renewal.success.holder ?? "nobody"} now`;
          else if (now() - renewedAt >= leaseMs) return `the lease could not be renewed for ${leaseMs} ms (${renewal.failure.message})`;
        }
      });

    const loop = Effect.gen(function* () {
      for (;;) {
        const asked = yield* Effect.result(ask("acquire"));
        if (Result.isFailure(asked)) {
          yield* Effect.sleep(pollMs); // Redis away: ask again when it is back
          continue;
        }
        const lease = asked.success;
        if (!lease.held) {
          if (role !== "standby" || heldBy !== lease.holder) options.onStandby?.(lease.holder);
          role = "standby";
          heldBy = lease.holder;
          yield* Effect.sleep(pollMs);
          continue;
        }
        role = "holder";
        heldBy = holder;
        const ended = yield* Effect.scoped(Effect.raceFirst(keepHolding(lease.token), serve(lease.token, `${holder}#${lease.token}`)));
        yield* Effect.logWarning(`${options.key}: ${holder} no longer holds it: ${ended}`);
        role = "standby";
        heldBy = undefined;
      }
    });

    // Given up last (registered first): after `serve` finished and stopped.
    yield* Effect.addFinalizer(() => Effect.ignore(ask("release")));
    yield* Effect.forkScoped(Effect.catch(loop, onFailure));
    return { holder, role: () => role };
  });
