/**
 * Discovery and health: a process says who it is on `P.coordination` (ServiceAnnouncement: its
 * type, id and capabilities, e.g. the layers it hosts) and then that it lives (Heartbeat, every
 * `everyMs`, with its status, uptime, load and metrics). The announcement is repeated every
 * `announceEveryMs`, so a reader needs only the stream's recent past to know every live service;
 * a clean stop ends with a last heartbeat marked `stopped`. `esper status` reads them back
 * (status.ts) and flags a service whose heartbeats stopped.
 */
import { loadavg } from "node:os";
import { Clock, Effect, type Scope } from "effect";
import type { Bus } from "../bus/bus.ts";
import type { Codec } from "../protocol/codec.ts";
import { encodeEntry, type HmacKey } from "../protocol/entry.ts";
import type { ServiceStatus } from "../protocol/fields.ts";
import { heartbeat, serviceAnnouncement } from "../protocol/make.ts";
import type { Message } from "../protocol/messages.ts";
import { streams } from "../protocol/streams.ts";

export interface PresenceOptions {
  readonly namespace?: string;
  /** What kind of process: `esper.worker`, `esper.tamiyo`, `esper.trainer`, or your own. */
  readonly serviceType: string;
  /** Unique among live services (a worker's consumer name, say). */
  readonly serviceId: string;
  /** What it offers: a worker names the layers it hosts as `layer:{L}`. */
  readonly capabilities?: readonly string[];
  /** Heartbeat interval. Default 2,000 ms; `esper status` flags a service silent for 3 intervals. */
  readonly everyMs?: number;
  /** Announcement interval. Default 30,000 ms. */
  readonly announceEveryMs?: number;
  /** Figures for each heartbeat (e.g. layers owned). */
  readonly metrics?: () => Readonly<Record<string, number>>;
  /** Status for each heartbeat. Default healthy. */
  readonly status?: () => ServiceStatus;
  readonly codec?: Codec;
  readonly hmacKey?: HmacKey;
}

export const PRESENCE_DEFAULTS = { everyMs: 2_000, announceEveryMs: 30_000, maxLen: 10_000 } as const;

/** Announces the service and beats its heart in the current Scope; closing it sends the last beat (`stopped` = 1). */
export const announcePresence = (bus: Bus, options: PresenceOptions): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const stream = streams(options.namespace).coordination;
    const everyMs = options.everyMs ?? PRESENCE_DEFAULTS.everyMs;
    const clock = yield* Clock.Clock;
    const startedAt = clock.currentTimeMillisUnsafe();
    const source = `${options.serviceType}.${options.serviceId}`;
    const encode = (message: Message) => encodeEntry(message, { stream, ...(options.codec ? { codec: options.codec } : {}), ...(options.hmacKey ? { hmacKey: options.hmacKey } : {}) });
    // A beat that cannot be written is skipped: health is best effort and must never stop the service.
    const send = (message: Message) => Effect.ignore(bus.publish(stream, encode(message), PRESENCE_DEFAULTS.maxLen));
    const announce = Effect.suspend(() =>
      send(
        serviceAnnouncement({
          service_type: options.serviceType,
          service_id: options.serviceId,
          capabilities: [...(options.capabilities ?? [])],
          endpoints: { heartbeat_ms: everyMs, pid: process.pid },
          health_check_endpoint: null,
          source,
        }),
      ),
    );
    const beat = (stopped: boolean) =>
      Effect.suspend(() =>
        send(
          heartbeat({
            service_id: options.serviceId,
            uptime_seconds: (clock.currentTimeMillisUnsafe() - startedAt) / 1000,
            metrics: { ...(options.metrics?.() ?? {}), ...(stopped ? { stopped: 1 } : {}) },
            status: stopped ? "unhealthy" : (options.status?.() ?? "healthy"),
            load: loadavg()[0]!,
            source,
          }),
        ),
      );
    yield* announce;
    yield* beat(false);
    yield* Effect.addFinalizer(() => beat(true));
    const every = (ms: number, effect: Effect.Effect<void>) => Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(ms), effect)));
    yield* every(everyMs, beat(false));
    yield* every(options.announceEveryMs ?? PRESENCE_DEFAULTS.announceEveryMs, announce);
  });
