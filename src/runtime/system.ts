/**
 * The whole control plane in one process, on the embedded bus: one LayerHost (layer actor + its
 * seed actors) and one mailbox bridge per layer, consuming from a MemoryBus (or any Bus given),
 * and a client that sends commands and follows the layers' event streams. The same bridge runs
 * in `esper worker` over Redis, so in-process and distributed behave alike.
 * Its lifetime is an Effect Scope: closing it stops the bridges, the actors and the inspector,
 * in reverse order of acquisition.
 */
import { Cause, Data, Effect, Exit, Scope } from "effect";
import type { GuardOverrides, SeedState } from "../../machines/lifecycle.ts";
import type { Metrics } from "../../machines/seed-rules.ts";
import type { Bus } from "../bus/bus.ts";
import { MemoryBus } from "../bus/memory-bus.ts";
import type { CommandResult, StateTransitionEvent } from "../protocol/messages.ts";
import { StateTable } from "../kasmina/state-table.ts";
import { makeClient } from "./client.ts";
import { inspectionFrom } from "./inspection.ts";
import { LayerHost } from "./layer-host.ts";
import { runLayerBridge, type LayerBridge } from "./mailbox-bridge.ts";
import { commandResult, envelope, lifecycleTransitionCommand, type CommandMessage, type HostedCommand } from "./messages.ts";

export const LAYER_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export interface LayerSpec {
  readonly id: string;
  readonly seeds: number;
  /** Validator thresholds for this layer's seeds (defaults in machines/lifecycle.ts). */
  readonly guards?: GuardOverrides;
  /** The table the data plane reads; made when not given. */
  readonly table?: StateTable;
  /** Blueprint id -> the integer the state table stores (the data plane's registry). */
  readonly blueprintIndex?: (blueprintId: string | null) => number;
}

export interface SystemConfig {
  readonly layers: readonly LayerSpec[];
  /** `source` of the messages this system writes. Default "esper". */
  readonly source?: string;
  /** Inspection target (see inspection.ts); default: ESPER_INSPECT. */
  readonly inspect?: string;
  readonly clock?: () => number;
  /** The bus to run on. Default: a fresh MemoryBus (the embedded bus). */
  readonly bus?: Bus;
  /** Key namespace on the bus. Default "morphogenetic" (ESPER_NAMESPACE). */
  readonly namespace?: string;
}

export type SystemEvent =
  | { readonly type: "transition"; readonly event: StateTransitionEvent }
  | { readonly type: "result"; readonly result: CommandResult }
  | { readonly type: "seed_restarted"; readonly layerId: string; readonly seedId: number; readonly state: SeedState; readonly error: unknown };

export class SystemConfigError extends Data.TaggedError("SystemConfigError")<{
  readonly reason: "invalid_layer_id" | "duplicate_layer" | "invalid_seed_count" | "no_layers";
  readonly message: string;
}> {}

export interface TransitionOptions {
  readonly force?: boolean;
  readonly reason?: string;
  /** Metrics for the validators, e.g. `{ reconstruction_loss: 0.004 }`. */
  readonly metrics?: Metrics;
  readonly timeoutMs?: number;
}

export interface EsperSystem {
  readonly layerIds: readonly string[];
  /** The host of one layer (its state table, seeds' snapshots); throws for an unknown id. */
  readonly layer: (layerId: string) => LayerHost;
  /** Sends any command and resolves with its one CommandResult (never rejects). */
  readonly send: (command: HostedCommand) => Promise<CommandResult>;
  /** Moves one seed, or every seed of the layer when `seedId` is null. */
  readonly transition: (layerId: string, seedId: number | null, target: SeedState, options?: TransitionOptions) => Promise<CommandResult>;
  /** Stops one layer, or every layer when `layerId` is null; applied before anything queued. */
  readonly emergencyStop: (layerId: string | null, reason: string) => Promise<readonly CommandResult[]>;
  /** Lifts a layer's emergency stop. */
  readonly resume: (layerId: string, reason?: string) => Promise<CommandResult>;
  /** Elapsed epochs for every seed of a layer: one message per layer per tick. */
  readonly tick: (layerId: string, epochs?: number) => void;
  readonly reportMetrics: (layerId: string, bySeed: Readonly<Record<number, Metrics>>) => void;
  /** Every transition, result and seed restart, as it happens. Returns an unsubscribe. */
  readonly subscribe: (listener: (event: SystemEvent) => void) => () => void;
  /** How a layer's bridge is doing: entries, applied, duplicates, dead letters, commits. */
  readonly bridgeStats: (layerId: string) => ReturnType<LayerBridge["stats"]>;
}

const validate = (config: SystemConfig): Effect.Effect<void, SystemConfigError> =>
  Effect.suspend(() => {
    if (config.layers.length === 0) {
      return Effect.fail(new SystemConfigError({ reason: "no_layers", message: "a system needs at least one layer, e.g. { layers: [{ id: 'dense1', seeds: 16 }] }" }));
    }
    const seen = new Set<string>();
    for (const layer of config.layers) {
      if (!LAYER_ID_PATTERN.test(layer.id)) {
        return Effect.fail(new SystemConfigError({ reason: "invalid_layer_id", message: `layer id ${JSON.stringify(layer.id)} must match ${LAYER_ID_PATTERN} (letters, digits, _ and -, at most 64)` }));
      }
      if (seen.has(layer.id)) {
        return Effect.fail(new SystemConfigError({ reason: "duplicate_layer", message: `layer id ${layer.id} appears twice; layer ids must be unique` }));
      }
      seen.add(layer.id);
      if (!Number.isInteger(layer.seeds) || layer.seeds < 1) {
        return Effect.fail(new SystemConfigError({ reason: "invalid_seed_count", message: `layer ${layer.id}: seeds must be a positive integer, got ${layer.seeds}` }));
      }
    }
    return Effect.void;
  });

/** Spawns the system in the current Scope. */
export const makeSystem = (config: SystemConfig): Effect.Effect<EsperSystem, SystemConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    yield* validate(config);
    const source = config.source ?? "esper";
    const clock = config.clock ?? Date.now;
    const listeners = new Set<(event: SystemEvent) => void>();
    const publish = (event: SystemEvent) => {
      for (const listener of listeners) {
        try {
          listener(event);
        } catch {
          // A listener's failure is its own: it must not break the actors or other listeners.
        }
      }
    };

    const inspection = yield* Effect.acquireRelease(
      Effect.sync(() => inspectionFrom(config.inspect ?? process.env.ESPER_INSPECT)),
      (i) => Effect.promise(() => i?.stop() ?? Promise.resolve()),
    );

    const bus = config.bus ?? new MemoryBus();
    const hosts = new Map<string, LayerHost>();
    const bridges = new Map<string, LayerBridge>();
    for (const spec of config.layers) {
      const host = yield* Effect.acquireRelease(
        Effect.sync(
          () =>
            new LayerHost({
              layerId: spec.id,
              numSeeds: spec.seeds,
              source,
              clock,
              ...(spec.guards ? { guards: spec.guards } : {}),
              ...(spec.table ? { table: spec.table } : {}),
              ...(spec.blueprintIndex ? { blueprintIndex: spec.blueprintIndex } : {}),
              ...(inspection ? { inspect: inspection.observer } : {}),
              onSeedRestart: (seedId, error, state) => publish({ type: "seed_restarted", layerId: spec.id, seedId, state, error }),
            }),
        ),
        (h) => Effect.sync(() => h.stop()),
      );
      hosts.set(spec.id, host);
      bridges.set(spec.id, yield* runLayerBridge(bus, host, { consumer: "in-process", clock, ...(config.namespace ? { namespace: config.namespace } : {}) }).pipe(Effect.orDie));
    }
    const client = yield* makeClient(bus, config.namespace ? { namespace: config.namespace } : {});
    // Subscribers hear what the event streams carry, as a remote controller would.
    for (const layerId of hosts.keys()) {
      yield* Effect.promise(() =>
        client.events(layerId, (message) => {
          if (message.message_type === "StateTransitionEvent") publish({ type: "transition", event: message });
          else if (message.message_type === "CommandResult") publish({ type: "result", result: message });
        }),
      );
    }

    const hostOf = (layerId: string): LayerHost => {
      const host = hosts.get(layerId);
      if (!host) throw new RangeError(`no layer ${layerId}; this system has ${[...hosts.keys()].join(", ")}`);
      return host;
    };

    const unknownLayer = (command: HostedCommand, layerId: string): CommandResult =>
      commandResult({
        source,
        layerId: LAYER_ID_PATTERN.test(layerId) ? layerId : "unknown",
        command,
        seedId: seedOf(command),
        code: "unknown_layer",
        error: `no layer ${layerId} in this system (layers: ${[...hosts.keys()].join(", ")})`,
        details: {},
        elapsedMs: 0,
      });

    const stamp = <T extends { timestamp?: number }>(command: T): T => ({ ...command, timestamp: clock() / 1000 });

    let closed = false;
    yield* Effect.addFinalizer(() => Effect.sync(() => void (closed = true)));

    const sendToLayer = async (command: HostedCommand, layerId: string): Promise<CommandResult> => {
      if (closed) {
        return commandResult({ source, layerId, command, seedId: seedOf(command), code: "internal", error: "the system is closed; start a new one to send commands", details: {}, elapsedMs: 0 });
      }
      if (!hosts.has(layerId)) {
        const result = unknownLayer(command, layerId);
        publish({ type: "result", result });
        return result;
      }
      return client.send(command as CommandMessage);
    };

    const layerIdOf = (command: HostedCommand): string | null =>
      command.message_type === "BatchCommand" ? (command.commands[0]?.layer_id ?? null) : command.layer_id;

    const send = async (command: HostedCommand): Promise<CommandResult> => {
      const layerId = layerIdOf(command);
      if (layerId !== null) return sendToLayer(command, layerId);
      // An emergency stop without a layer reaches every layer through P.control.all; its answer gathers theirs.
      const results = await client.stopAll(command as Extract<CommandMessage, { message_type: "EmergencyStopCommand" }>, [...hosts.keys()]);
      const failed = results.find((r) => !r.success);
      return { ...results[0]!, success: !failed, code: failed?.code ?? "ok", error: failed?.error ?? null, details: { layers: results.map((r) => ({ layer_id: r.layer_id, code: r.code, details: r.details })) } };
    };

    const system: EsperSystem = {
      layerIds: [...hosts.keys()],
      layer: hostOf,
      send,
      transition: (layerId, seedId, target, options = {}) =>
        send(
          lifecycleTransitionCommand({
            source,
            timestamp: clock() / 1000,
            layerId,
            seedId,
            target,
            metrics: options.metrics,
            timeoutMs: options.timeoutMs ?? 5_000,
            force: options.force ?? false,
            reason: options.reason ?? "",
          }),
        ),
      emergencyStop: async (layerId, reason) => {
        const ids = layerId === null ? [...hosts.keys()] : [layerId];
        return Promise.all(
          ids.map((id) =>
            sendToLayer(
              stamp({ ...envelope("EmergencyStopCommand", source), layer_id: id, seed_id: null, reason, priority: "critical" as const, timeout_ms: 1_000 }),
              id,
            ),
          ),
        );
      },
      resume: (layerId, reason = "") =>
        sendToLayer(stamp({ ...envelope("ResumeCommand", source), layer_id: layerId, reason, priority: "high" as const, timeout_ms: 1_000 }), layerId),
      tick: (layerId, epochs = 1) => hostOf(layerId).tick(epochs),
      reportMetrics: (layerId, bySeed) => hostOf(layerId).reportMetrics(bySeed),
      subscribe: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      bridgeStats: (layerId) => {
        const bridge = bridges.get(layerId);
        if (!bridge) throw new RangeError(`no layer ${layerId}`);
        return bridge.stats();
      },
    };
    yield* Effect.addFinalizer(() => Effect.sync(() => listeners.clear()));
    return system;
  });

const seedOf = (command: HostedCommand): number | null =>
  "seed_id" in command && typeof command.seed_id === "number" ? command.seed_id : null;

/** A running system outside Effect code: `await using`-friendly, or call `close()`. */
export interface RunningSystem extends EsperSystem {
  readonly close: () => Promise<void>;
  readonly [Symbol.asyncDispose]: () => Promise<void>;
}

/** Starts a system for Promise-based callers; rejects with SystemConfigError on a bad config. */
export const startSystem = async (config: SystemConfig): Promise<RunningSystem> => {
  const scope = Scope.makeUnsafe();
  const exit = await Effect.runPromiseExit(Scope.provide(makeSystem(config), scope));
  if (Exit.isFailure(exit)) {
    await Effect.runPromise(Scope.close(scope, exit));
    throw Cause.squash(exit.cause);
  }
  const close = () => Effect.runPromise(Scope.close(scope, Exit.void));
  return { ...exit.value, close, [Symbol.asyncDispose]: close };
};
