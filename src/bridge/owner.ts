/**
 * One owner per layer across processes. Every worker started for a layer asks for the layer's
 * lease (Bus.lease); the one that holds it runs the layer's bridge, the others wait as standbys.
 * Every commit of the owner's bridge requires its holding (the fencing token in `fence`), so a
 * deposed owner (paused past its lease, cut off from Redis) writes nothing more: its next commit
 * is refused whole and it steps down. When the owner dies, its lease runs out and a standby takes
 * over within `leaseMs + pollMs`; an owner that stops cleanly gives the lease up at once. The new
 * owner restores the layer from the store and applies what was pending first (the bridge takes
 * over its groups' pending entries before it reads on), so nothing is lost, applied twice, or
 * reordered across the change.
 */
import { hostname } from "node:os";
import { Deferred, Effect, type Scope } from "effect";
import type { Bus } from "../bus/bus.ts";
import { HOLDING_DEFAULTS, whileHolding } from "../coordination/holding.ts";
import { streams } from "../protocol/streams.ts";
import type { LayerHost } from "../runtime/layer-host.ts";
import { runLayerBridge } from "./bridge.ts";
import type { BridgeOptions } from "./options.ts";
import type { BridgeRestoreError, LayerDataLost } from "./restore.ts";
import { layerKeys } from "./store.ts";

export interface LayerOwnerOptions extends Omit<BridgeOptions, "fence" | "generation"> {
  /** How long a holding lasts unless renewed. A standby takes a dead owner's layer over within `leaseMs + pollMs`. Default 3,000 ms. */
  readonly leaseMs?: number;
  /** How often the owner renews its holding and a standby asks for it. Default 1,000 ms; keep it well under `leaseMs`. */
  readonly pollMs?: number;
  /** Told each time this process starts serving the layer as its owner (its bridge runs), or becomes a standby. */
  readonly onRole?: (change: RoleChange) => void;
}

export const LAYER_OWNER_DEFAULTS = HOLDING_DEFAULTS;

/** A change of this process's role for a layer: owner (with its fencing token), or standby (with who holds the layer). */
export type RoleChange = { readonly role: "owner"; readonly token: number } | { readonly role: "standby"; readonly holder: string | null };

export interface LayerOwner {
  readonly layerId: string;
  /** Who this process is for the layer now. */
  readonly role: () => "starting" | "owner" | "standby";
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
    const consumer = options.consumer ?? `${hostname()}-${process.pid}`;
    const keys = layerKeys(streams(options.namespace, options.topology), layerId);
    const failed = yield* Deferred.make<never, LayerDataLost | BridgeRestoreError>();
    // The generation served before, if any: a store without it lost its data while this process owned the layer.
    let served: string | undefined;

    /** One holding: the layer served until the holding ends (or the Scope closes). */
    const serve = (token: number, fence: string) =>
      Effect.gen(function* () {
        const host = yield* Effect.acquireRelease(Effect.sync(makeHost), (h) => Effect.sync(() => h.stop()));
        const bridge = yield* runLayerBridge(bus, host, { ...options, consumer, fence, ...(served !== undefined ? { generation: served } : {}) });
        served = bridge.generation;
        options.onRole?.({ role: "owner", token });
        // Until the holding ends (raced outside), a commit is refused on it, or the layer's data is lost (which fails the owner).
        return yield* Effect.raceFirst(Effect.as(bridge.fenced, "another owner's holding refused this one's commit"), bridge.failed);
      }).pipe(
        // Redis away as the layer starts: give the holding up and ask again.
        Effect.catchTag("BusError", (error) => Effect.as(Effect.sleep(options.pollMs ?? HOLDING_DEFAULTS.pollMs), `Redis failed as the layer started (${error.message})`)),
      );

    const holding = yield* whileHolding(
      bus,
      {
        key: keys.lease,
        counter: keys.fence,
        name: consumer,
        ...(options.leaseMs !== undefined ? { leaseMs: options.leaseMs } : {}),
        ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
        onStandby: (holder) => options.onRole?.({ role: "standby", holder }),
      },
      serve,
      (error: LayerDataLost | BridgeRestoreError) => Deferred.fail(failed, error),
    );

    return {
      layerId,
      role: () => ({ starting: "starting", holder: "owner", standby: "standby" } as const)[holding.role()],
      failed: Deferred.await(failed),
    };
  });
