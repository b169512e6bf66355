/**
 * Doing something only while holding a lease (Bus.lease): ask for it; while someone else holds
 * it, wait as a standby and ask again every `pollMs`; once held, run `serve(token)` and renew the
 * holding every `pollMs` until it is lost (or cannot be renewed for a whole lease), or `serve`
 * ends; then stand by again. Closing the Scope stops `serve` and gives the lease up. The layer's
 * owner (bridge/owner.ts) and the leading Tamiyo (tamiyo/leader.ts) are both this.
 */
import { randomUUID } from "node:crypto";
import { Clock, Effect, Result, type Scope } from "effect";
import type { Bus, BusError, Lease, LeaseRequest } from "../bus/bus.ts";

export interface HoldingOptions {
  /** The lease hash and its token counter (Bus.lease). */
  readonly key: string;
  readonly counter: string;
  /** Who asks; made unique to this process's life (a restarted process is a new holder). */
  readonly name: string;
  /** The full holder id as the lease records it, when the caller makes one itself. Default: `{name}/{8 random hex}`. */
  readonly holder?: string;
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

/** One holder's requests on the lease, and the renewal of a holding. */
const leaseOf = (bus: Bus, options: HoldingOptions) =>
  Effect.gen(function* () {
    const leaseMs = options.leaseMs ?? HOLDING_DEFAULTS.leaseMs;
    const pollMs = options.pollMs ?? HOLDING_DEFAULTS.pollMs;
    const holder = options.holder ?? `${options.name}/${randomUUID().slice(0, 8)}`;
    const ask = (op: LeaseRequest["op"], token?: number): Effect.Effect<Lease, BusError> =>
      bus.lease({ op, key: options.key, counter: options.counter, holder, ttlMs: leaseMs, ...(token !== undefined ? { token } : {}) });
    const clock = yield* Clock.Clock;
    const now = () => clock.currentTimeMillisUnsafe();
    /** Renews holding `token` every pollMs; ends, saying why, when it is lost or could not be renewed for a whole lease. */
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
    return { holder, pollMs, ask, keepHolding };
  });

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
    const { holder, pollMs, ask, keepHolding } = yield* leaseOf(bus, options);
    let role: "starting" | "holder" | "standby" = "starting";
    let heldBy: string | null | undefined;

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

/** What `holdOnce` got: a holding and its fence, or who holds the lease instead. */
export type Held =
  | {
      readonly held: true;
      readonly token: number;
      readonly fence: string;
      /** Takes the holding up again if it lapsed and nobody held the lease since: true while held, false once lost; fails while Redis is away. */
      readonly resume: Effect.Effect<boolean, BusError>;
    }
  | { readonly held: false; readonly holder: string | null };

/**
 * Asks for the lease once, for a process that serves only if it holds from the start (`startSystem`
 * on Redis): when granted, keeps it in the current Scope (given up when the Scope closes) and tells
 * `onLost` why once it is lost; when another holds it, says who. It keeps it through a Redis
 * outage longer than the lease: the holding is resumed, same token and fence, if nobody took the
 * lease meanwhile (Bus.lease `resume`), so what it serves goes on where a standby loop would start
 * over.
 */
export const holdOnce = (bus: Bus, options: Omit<HoldingOptions, "onStandby">, onLost: (why: string) => void): Effect.Effect<Held, BusError, Scope.Scope> =>
  Effect.gen(function* () {
    const { holder, pollMs, ask } = yield* leaseOf(bus, options);
    const lease = yield* ask("acquire");
    if (!lease.held) return { held: false, holder: lease.holder };
    yield* Effect.addFinalizer(() => Effect.ignore(ask("release")));
    const resume = ask("resume", lease.token);
    const keep = Effect.gen(function* () {
      for (;;) {
        yield* Effect.sleep(pollMs);
        // Redis away: ask again at the next poll; only an answer that it is gone ends the holding.
        const kept = yield* Effect.result(resume);
        if (Result.isSuccess(kept) && !kept.success.held) return onLost(`the lease is held by ${kept.success.holder ?? "nobody"} now`);
      }
    });
    yield* Effect.forkScoped(keep);
    return { held: true, token: lease.token, fence: `${holder}#${lease.token}`, resume: Effect.map(resume, (l) => l.held) };
  });
