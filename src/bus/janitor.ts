import { Effect, Schedule, type Scope } from "effect";
import type { Bus, BusError, Entry } from "./bus.ts";

/**
 * The janitor takes back what dead consumers left: entries pending longer than `idleMs` are
 * claimed by a live consumer and handed back for processing, and an entry that has already been
 * delivered `maxDeliveries` times goes to the dead-letter stream instead (docs/protocol.md, "Consumer
 * groups and delivery"). It needs nothing but the Bus interface, so both buses share it.
 */
export interface JanitorOptions {
  readonly stream: string;
  readonly group: string;
  /** The live consumer that takes over idle entries (usually the worker's own reader). */
  readonly consumer: string;
  /** The dead-letter stream for this stream (P.dlq.layer.{L} or P.dlq.all). */
  readonly dlq: string;
  /** Pending longer than this means the consumer holding it is presumed dead. */
  readonly idleMs: number;
  /** Deliveries allowed before an entry is dead-lettered. Default 5. */
  readonly maxDeliveries?: number;
  /** Entries claimed per claim call. Default 128. */
  readonly count?: number;
  /** Claimed entries over this size come back as `oversize` stubs (see ReaderOptions). Default: no limit. */
  readonly maxEntryBytes?: number;
}

export const DEFAULT_MAX_DELIVERIES = 5;
/** A sweep claims again while a batch comes back full, up to this many batches per sweep. */
const MAX_BATCHES_PER_SWEEP = 8;

export interface Sweep {
  /** Claimed, still within their delivery budget, now pending to `consumer`: process and ack them. */
  readonly claimed: readonly Entry[];
  /** Moved to the dead-letter stream (and acked). */
  readonly deadLettered: readonly Entry[];
}

export const maxDeliveriesError = (maxDeliveries: number): string => `exceeded max deliveries (${maxDeliveries})`;

/** One pass: claim idle entries, dead-letter the ones past their budget, return the rest. */
export const sweep = (bus: Bus, options: JanitorOptions): Effect.Effect<Sweep, BusError> =>
  Effect.gen(function* () {
    const maxDeliveries = options.maxDeliveries ?? DEFAULT_MAX_DELIVERIES;
    const count = options.count ?? 128;
    const claimed: Entry[] = [];
    const deadLettered: Entry[] = [];
    // Claimed entries are no longer idle, so a second claim in the same sweep cannot take them again.
    for (let batch = 0; batch < MAX_BATCHES_PER_SWEEP; batch++) {
      const entries = yield* bus.claimIdle(options.stream, options.group, options.consumer, options.idleMs, count, options.maxEntryBytes);
      for (const entry of entries) {
        if (entry.deliveries > maxDeliveries) {
          yield* bus.deadLetter({
            dlq: options.dlq,
            entry,
            group: options.group,
            code: "internal",
            error: maxDeliveriesError(maxDeliveries),
          });
          deadLettered.push(entry);
        } else {
          claimed.push(entry);
        }
      }
      if (entries.length < count || options.idleMs <= 0) break;
    }
    return { claimed, deadLettered };
  });

export interface RunJanitorOptions extends JanitorOptions {
  /** Receives claimed entries; it processes and acks them. A failure leaves them pending, to be claimed again. */
  readonly handle: (entries: readonly Entry[]) => Effect.Effect<void, unknown>;
  /** When to sweep. Default: every `idleMs / 2` (at least 10 ms). */
  readonly every?: Schedule.Schedule<unknown, unknown>;
}

/**
 * Sweeps on a schedule for as long as the Scope lives. A failed sweep (Redis away) or a failed
 * handler is logged and the next sweep runs as planned: the janitor must outlive outages.
 */
export const runJanitor = (bus: Bus, options: RunJanitorOptions): Effect.Effect<void, never, Scope.Scope> => {
  const every = options.every ?? Schedule.spaced(Math.max(10, Math.floor(options.idleMs / 2)));
  const once = sweep(bus, options).pipe(
    Effect.flatMap((result) => (result.claimed.length > 0 ? options.handle(result.claimed) : Effect.void)),
    Effect.catchCause((cause) =>
      Effect.logWarning("janitor sweep failed", { stream: options.stream, group: options.group, cause }),
    ),
  );
  return Effect.asVoid(Effect.forkScoped(Effect.repeat(once, every)));
};
