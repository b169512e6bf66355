/**
 * One owner per layer across processes. Every worker started for a layer asks for the layer's
 * lease (Bus.lease); the one that holds it runs the layer's bridge, the others wait as standbys.
 * Every commit of the owner's bridge requires its holding (the fencing token in `fence`), so a
 * deposed owner (paused past its lease, cut off from Redis) writes nothing more: its next commit
 * is refused whole and it steps down. When the owner dies, its lease runs out and a standby takes
 * over within `leaseMs + pollMs`; a owner that stops cleanly gives the lease up at once. The new
 * owner restores the layer from the store and applies what was pending first (the bridge takes
 * over its groups' pending entries before it reads on), so nothing is lost, applied twice, or
 * reordered across the change.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { Clock, Deferred, Effect, Result, type Scope } from "effect";
import type { Bus, BusError, Lease } from "../bus/bus.ts";
import { streams } from "../protocol/streams.ts";
import type { LayerHost } from "../runtime/layer-host.ts";
import { runLayerBridge, type LayerBridge } from "./bridge.ts";
import type { BridgeOptions } from "./options.ts";
import type { BridgeRestoreError, LayerDataLost } from "./restore.ts";
import { layerKeys } from "./store.ts";

export interface LayerOwnerOptions extends Omit<BridgeOptions, "fence"> {
  /** How long a holding lasts unless renewed. A standby takes a dead owner's layer over within `leaseMs + pollMs`. Default 3,000 ms. */
  readonly leaseMs?: number;
  /** How often the owner renews its holding and a standby asks for it. Default 1,000 ms; keep it well under `leaseMs`. */
  readonly pollMs?: number;
  /** Told each time this process starts serving the layer as its owner (its bridge runs), or becomes a standby. */
  readonly onRole?: (change: RoleChange) => void;
}

export const LAYER_OWNER_DEFAULTS = { leaseMs: 3_000, pollMs: 1_000 } as const;

/** A change of this process's role for a layer: owner (with its fencing token), or standby (with who holds the layer). */
export type RoleChange = { readonly role: "owner"; readonly token: number } | { readonly role: "standby"; readonly holder: string | null };

export interface LayerOwner {
  readonly layerId: string;
  /** Who this process is for the layer now. */
  readonly role: () => "starting" | "owner" | "standby";
  /** The layer's bridge while this process owns it. */
  readonly bridge: () => LayerBridge | null;
  /** How many times this process took the layer over. */
  readonly holdings: () => number;
  /** Fails when the layer cannot be served by anyone as it is (its data was lost, its store is unreadable); never succeeds. */
  readonly failed: Effect.Effect<never, LayerDataLost | BridgeRestoreError>;
}

/**
 * Serves `layerId` as its owner whenever this process holds its lease, and waits as a standby
 * otherwise, in the current Scope; `makeHost` makes a fresh LayerHost for each holding. Closing the
 * Scope finishes the batch in hand, stops the bridge and gives the lease up.
 */
export const runLayerOwner = (bus: Bus, layerId: string, makeHost: () => LayerHost, options: LayerOwnerOptions = {}): Effect.Effect<LayerOwner, never, Scope.Scope> =>
  Effect.gen(function* () {
    const leaseMs = options.leaseMs ?? LAYER_OWNER_DEFAULTS.leaseMs;
    const pollMs = options.pollMs ?? LAYER_OWNER_DEFAULTS.pollMs;
    const consumer = options.consumer ?? `${hostname()}-${process.pid}`;
    // Unique to this process's life: a worker restarted under the same consumer name is a new holder.
    const holder = `${consumer}/${randomUUID().slice(0, 8)}`;
    const keys = layerKeys(streams(options.namespace), layerId);
    const ask = (op: "acquire" | "renew" | "release", token?: number): Effect.Effect<Lease, BusError> =>
      bus.lease({ op, key: keys.lease, counter: keys.fence, holder, ttlMs: leaseMs, ...(token !== undefined ? { token } : {}) });
    const clock = yield* Clock.Clock;
    const now = () => clock.currentTimeMillisUnsafe();
    const failed = yield* Deferred.make<never, LayerDataLost | BridgeRestoreError>();
    let role: "starting" | "owner" | "standby" = "starting";
    let heldBy: string | null | undefined;
    let current: LayerBridge | null = null;
    let holdings = 0;
    let served: string | undefined;

    /** Renews holding `token` every pollMs; ends when it is lost, or could not be renewed for a whole lease. */
    const keepHolding = (token: number) => Effect.gen(function* () {
      let renewedAt = now();
      for (;;) {
        yield* Effect.sleep(pollMs);
        const renewal = yield* Effect.result(ask("renew", token));
        if (Result.isSuccess(renewal) && renewal.success.held) renewedAt = now();
        else if (Result.isSuccess(renewal)) return `the lease is held by ${renewal.success.holder ?? "nobody"} now`;
        else if (now() - renewedAt >= leaseMs) return `the lease could not be renewed for ${leaseMs} ms (${renewal.failure.message})`;
      }
    });

    /** One holding: the layer served until the holding ends (or the Scope closes). */
    const serve = (token: number) =>
      Effect.scoped(
        Effect.gen(function* () {
          const host = yield* Effect.acquireRelease(Effect.sync(makeHost), (h) => Effect.sync(() => h.stop()));
          // The generation served before, if any: a store without it lost its data while this process owned the layer.
          const bridge = yield* runLayerBridge(bus, host, { ...options, consumer, fence: `${holder}#${token}`, ...(served !== undefined ? { generation: served } : {}) });
          current = bridge;
          served = bridge.generation;
          holdings++;
          options.onRole?.({ role: "owner", token });
          // Whichever ends first: the holding, a commit refused on it, or the layer's data lost (which fails the owner).
          return yield* Effect.raceFirst(Effect.raceFirst(keepHolding(token), Effect.as(bridge.fenced, "another owner's holding refused this one's commit")), bridge.failed);
        }),
      ).pipe(Effect.ensuring(Effect.sync(() => (current = null))));

    const loop = Effect.gen(function* () {
      for (;;) {
        const asked = yield* Effect.result(ask("acquire"));
        if (Result.isFailure(asked)) {
          yield* Effect.sleep(pollMs); // Redis away: ask again when it is back
          continue;
        }
        const lease = asked.success;
        if (!lease.held) {
          if (role !== "standby" || heldBy !== lease.holder) options.onRole?.({ role: "standby", holder: lease.holder });
          role = "standby";
          heldBy = lease.holder;
          yield* Effect.sleep(pollMs);
          continue;
        }
        role = "owner";
        heldBy = holder;
        const ended = yield* serve(lease.token).pipe(
          // Redis away as the layer starts: give the holding up and ask again.
          Effect.catchTag("BusError", (error) => Effect.succeed(`Redis failed as the layer started (${error.message})`)),
        );
        yield* Effect.logWarning(`layer ${layerId}: ${holder} no longer owns it: ${ended}`);
        role = "standby";
        heldBy = undefined;
      }
    });

    // Given up last (registered first): after the bridge finished its batch and stopped.
    yield* Effect.addFinalizer(() => Effect.ignore(ask("release")));
    yield* Effect.forkScoped(Effect.catch(loop, (error: LayerDataLost | BridgeRestoreError) => Deferred.fail(failed, error)));

    return { layerId, role: () => role, bridge: () => current, holdings: () => holdings, failed: Deferred.await(failed) };
  });
